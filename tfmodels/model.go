package tfmodels

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unsafe"

	tf "github.com/galeone/tensorflow/tensorflow/go"
)

// Model is a TensorFlow graph holding one or more networks ([Net]) plus the
// session that runs it. Build, ImportKerasH5, LoadSavedModel and NewModel make
// one; Close frees it.
//
// The model's own net (the first) is embedded: m.Arch, m.Logits,
// m.Probabilities, m.Layer("pool_3"), m.Variables()... are its. A graph with
// several nets (a BadNet and its repaired copy under two scopes, say) gives
// the others through [Model.View].
//
// White-box models (built by bbd, or loaded from a SavedModel bbd wrote) have
// an Architecture, named layers and variables. Black-box models (foreign
// SavedModels) have only Input and Probabilities.
//
// Concurrency: Predict, Run, RunWith, Evaluate and InputGradient may be called
// from several goroutines at once (TensorFlow sessions are safe for concurrent
// Run calls, and the graph pieces these add on first use are built under a
// lock). Train, SetWeights, Minimizer steps and Close change the model: do not
// run them concurrently with anything else on the same model (Train takes a
// lock, so two Train calls wait for each other).
type Model struct {
	Graph   *tf.Graph
	Session *tf.Session
	*Net
	// Input is the placeholder the images are fed to: float32 [-1, H, W, C],
	// pixels in [0, 1]. Usually the net's own input; a net may also read a
	// tensor computed from it (a trigger stamped on the images).
	Input     tf.Output
	BatchSize int // inference batch size
	// Outputs are the outputs of the serving_default signature of a loaded
	// SavedModel, by key ("probabilities", "label"...); nil for built models.
	Outputs map[string]tf.Output

	shared *modelShared
	view   bool // a View: Close does nothing
}

// modelShared is what a model and its views share.
type modelShared struct {
	mu             sync.Mutex // guards the graph pieces added on first use
	trainMu        sync.Mutex // one Train at a time
	nets           []*Net
	closed         bool
	sessionOptions *tf.SessionOptions
	losses         map[string]*lossOps   // by net scope
	inputGrads     map[string]tf.Output  // by net scope
	minimizers     map[string]*Minimizer // by minimizerKey
}

func newModel(g *tf.Graph, sess *tf.Session, input tf.Output, nets []*Net, opts ModelOptions) *Model {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	return &Model{Graph: g, Session: sess, Net: nets[0], Input: input, BatchSize: opts.BatchSize,
		shared: &modelShared{nets: nets, sessionOptions: opts.Session, losses: map[string]*lossOps{},
			inputGrads: map[string]tf.Output{}, minimizers: map[string]*Minimizer{}}}
}

// Close frees the session (and with it the graph's resources). Safe to call
// more than once; a View's Close does nothing (close the model it came from).
func (m *Model) Close() error {
	if m == nil || m.view || m.shared == nil || m.shared.closed || m.Session == nil {
		return nil
	}
	m.shared.closed = true
	return m.Session.Close()
}

// Nets lists the nets of the model's graph, the model's own first.
func (m *Model) Nets() []*Net { return append([]*Net(nil), m.shared.nets...) }

// View returns a Model for the net under scope that shares m's graph, session
// and input: Predict, Train, SetWeights, Freeze... then work on that net.
// Closing a view does nothing; closing m closes every view.
func (m *Model) View(scope string) (*Model, error) {
	var found []string
	for _, n := range m.shared.nets {
		if n.Scope == scope {
			v := *m
			v.Net, v.view, v.Outputs = n, true, nil
			return &v, nil
		}
		found = append(found, fmt.Sprintf("%q", n.Scope))
	}
	return nil, fmt.Errorf("view of net %q: no such net in the model (nets: %s)", scope, strings.Join(found, ", "))
}

// Labels returns the most probable class of each example of probs
// (n*classes values); nil when classes is not positive.
func Labels(probs []float32, classes int) []int {
	if classes <= 0 {
		return nil
	}
	labels := make([]int, len(probs)/classes)
	for i := range labels {
		row := probs[i*classes : (i+1)*classes]
		best := 0
		for j, p := range row {
			if p > row[best] {
				best = j
			}
		}
		labels[i] = best
	}
	return labels
}

// SetWeights assigns the given variables of the model's net (names within the
// net, "conv_1/kernel"). Names not in the net and wrong shapes are errors;
// variables not named keep their values.
func (m *Model) SetWeights(w Weights) (err error) {
	defer recoverTF(&err, "setting weights")
	if m.Frozen() {
		return ErrFrozen
	}
	return m.setWeights(m.Net, w)
}

func (m *Model) setWeights(n *Net, w Weights) error {
	feeds := map[tf.Output]*tf.Tensor{}
	var targets []*tf.Operation
	byName := map[string]*Variable{}
	for _, v := range n.vars {
		byName[v.Name] = v
	}
	for _, name := range slices.Sorted(maps.Keys(w)) {
		v, ok := byName[name]
		if !ok {
			return &InputError{Input: "weight " + name, Expected: "a variable of the model", Found: "no such variable"}
		}
		val := w[name]
		if !sameShape(val.Shape, v.Shape) || len(val.Values) != v.Size() {
			return &InputError{Input: "weight " + name, Expected: fmt.Sprintf("shape %v", v.Shape), Found: fmt.Sprintf("shape %v (%d values)", val.Shape, len(val.Values))}
		}
		t, err := float32Tensor(val.Values, v.Shape)
		if err != nil {
			return err
		}
		feeds[v.Initial] = t
		targets = append(targets, v.Assign)
	}
	if len(targets) == 0 {
		return nil
	}
	if _, err := m.Session.Run(feeds, nil, targets); err != nil {
		return fmt.Errorf("assigning weights: %w", err)
	}
	return nil
}

// GetWeights reads the current value of every variable of the model's net.
func (m *Model) GetWeights() (w Weights, err error) {
	defer recoverTF(&err, "reading weights")
	if len(m.vars) == 0 {
		return nil, ErrNotWhiteBox
	}
	if m.Frozen() {
		return nil, ErrFrozen
	}
	fetches := make([]tf.Output, len(m.vars))
	for i, v := range m.vars {
		fetches[i] = v.Value
	}
	res, err := m.Session.Run(nil, fetches, nil)
	if err != nil {
		return nil, fmt.Errorf("reading weights: %w", err)
	}
	w = Weights{}
	for i, v := range m.vars {
		w[v.Name] = &WeightTensor{Shape: append([]int64(nil), v.Shape...), Values: tensorFloats(res[i])}
	}
	return w, nil
}

// NewVariable adds a float32 variable to the model's graph (see [AddVariable]
// for the ops it makes) and sets it to values (row-major, len = product of
// shape). Defences add what they train this way: a trigger, a batch of masks.
func (m *Model) NewVariable(name string, shape []int64, trainable bool, values []float32) (v *Variable, err error) {
	m.shared.mu.Lock()
	v, err = AddVariable(m.Graph, name, shape, trainable)
	m.shared.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := m.AssignVariable(v, values); err != nil {
		return nil, err
	}
	return v, nil
}

// AssignVariable sets v (a variable of the model's graph) to values.
func (m *Model) AssignVariable(v *Variable, values []float32) (err error) {
	defer recoverTF(&err, "assigning "+v.GraphName)
	if v.Assign == nil {
		return fmt.Errorf("assigning %s: %w", v.GraphName, ErrFrozen)
	}
	if len(values) != v.Size() {
		return &InputError{Input: "values of " + v.GraphName, Expected: fmt.Sprintf("%d values (shape %v)", v.Size(), v.Shape), Found: fmt.Sprintf("%d values", len(values))}
	}
	if i := firstNonFinite(values); i >= 0 {
		return &InputError{Input: "values of " + v.GraphName, Expected: "finite values", Found: fmt.Sprint(values[i])}
	}
	t, err := float32Tensor(values, v.Shape)
	if err != nil {
		return err
	}
	if _, err := m.Session.Run(map[tf.Output]*tf.Tensor{v.Initial: t}, nil, []*tf.Operation{v.Assign}); err != nil {
		return fmt.Errorf("assigning %s: %w", v.GraphName, err)
	}
	return nil
}

// VariableValue reads v's current value, row-major.
func (m *Model) VariableValue(v *Variable) (values []float32, err error) {
	defer recoverTF(&err, "reading "+v.GraphName)
	res, err := m.Session.Run(nil, []tf.Output{v.Value}, nil)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", v.GraphName, err)
	}
	return tensorFloats(res[0]), nil
}

// Predict returns the class probabilities of n examples x (n*H*W*C float32,
// channels-last, pixels in [0, 1]) as n*NumClasses values, running batches of
// m.BatchSize.
func (m *Model) Predict(x []float32, n int) ([]float32, error) {
	outs, err := m.Run(x, n, m.Probabilities)
	if err != nil {
		return nil, err
	}
	return outs[0], nil
}

// Run evaluates outputs (any tensors of the graph whose first dimension is the
// batch) on n examples x, in batches, and returns each output's values for all
// examples, concatenated.
func (m *Model) Run(x []float32, n int, outputs ...tf.Output) ([][]float32, error) {
	return m.RunWith(nil, x, n, outputs...)
}

// RunWith is Run with extra feeds given to every batch (a threshold, a trigger,
// a learning phase...), besides the images fed to m.Input.
func (m *Model) RunWith(feeds map[tf.Output]*tf.Tensor, x []float32, n int, outputs ...tf.Output) (res [][]float32, err error) {
	defer recoverTF(&err, "running the model")
	if m.shared.closed {
		return nil, fmt.Errorf("running the model: the model is closed")
	}
	h, w, c := m.InputShape[0], m.InputShape[1], m.InputShape[2]
	per := h * w * c
	if n < 0 || len(x) != n*per {
		return nil, &InputError{Input: "model input", Expected: fmt.Sprintf("%d examples of %dx%dx%d (%d values)", n, h, w, c, n*per), Found: fmt.Sprintf("%d values", len(x))}
	}
	if i := firstNonFinite(x); i >= 0 {
		return nil, &InputError{Input: "model input", Expected: "finite pixel values", Found: fmt.Sprintf("%v in example %d", x[i], i/per)}
	}
	bs := m.BatchSize
	if bs <= 0 {
		bs = DefaultBatchSize
	}
	res = make([][]float32, len(outputs))
	for start := 0; start < n; start += bs {
		end := min(start+bs, n)
		t, err := float32Tensor(x[start*per:end*per], []int64{int64(end - start), int64(h), int64(w), int64(c)})
		if err != nil {
			return nil, err
		}
		batchFeeds := map[tf.Output]*tf.Tensor{m.Input: t}
		for k, v := range feeds {
			batchFeeds[k] = v
		}
		outs, err := m.Session.Run(batchFeeds, outputs, nil)
		if err != nil {
			return nil, fmt.Errorf("running the model on examples %d..%d: %w", start, end-1, err)
		}
		for i, o := range outs {
			shape := o.Shape()
			if len(shape) == 0 || shape[0] != int64(end-start) {
				return nil, fmt.Errorf("running the model: output %s: expected a first dimension of %d (the batch), found shape %v", outputs[i].Op.Name(), end-start, shape)
			}
			// Each output's values for all n examples go into one slice,
			// allocated at the first batch, which the tensor is copied into.
			size := int(numElements(shape[1:]))
			if res[i] == nil {
				res[i] = make([]float32, n*size)
			}
			dst := res[i][start*size : end*size]
			switch o.DataType() {
			case tf.Float:
				if _, err := o.WriteContentsTo(&float32Sink{dst: dst}); err != nil {
					return nil, fmt.Errorf("reading output %d: %w", i, err)
				}
			case tf.Int32, tf.Int64: // labels, counts: exact as float32 below 2^24
				for j, v := range intValues(o) {
					dst[j] = float32(v)
				}
			default:
				return nil, fmt.Errorf("running the model: output %s: expected float32, int32 or int64, found %v", outputs[i].Op.Name(), o.DataType())
			}
		}
	}
	return res, nil
}

// intValues flattens an int32 or int64 tensor of rank 1 to 4.
func intValues(t *tf.Tensor) []int64 {
	var out []int64
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		if v.Kind() == reflect.Slice {
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i))
			}
			return
		}
		out = append(out, v.Int())
	}
	walk(reflect.ValueOf(t.Value()))
	return out
}

// firstNonFinite returns the index of the first NaN or infinite value, or -1.
func firstNonFinite(x []float32) int {
	for i, v := range x {
		if v-v != 0 { // NaN - NaN and Inf - Inf are NaN; finite - itself is 0
			return i
		}
	}
	return -1
}

// float32Sink is an io.Writer that copies a tensor's raw bytes into a float32
// slice (native byte order, as TensorFlow stores them).
type float32Sink struct {
	dst []float32
	off int // bytes written so far
}

func (s *float32Sink) Write(p []byte) (int, error) {
	var raw []byte
	if len(s.dst) > 0 {
		raw = unsafe.Slice((*byte)(unsafe.Pointer(&s.dst[0])), 4*len(s.dst))
	}
	if s.off+len(p) > len(raw) {
		return 0, fmt.Errorf("tensor larger than expected: %d bytes for %d values", s.off+len(p), len(s.dst))
	}
	s.off += copy(raw[s.off:], p)
	return len(p), nil
}

// float32Tensor makes a tensor of the given shape from row-major values.
// (tf.NewTensor copies a flat slice in one block; tf.ReadTensor is ~20x slower.)
func float32Tensor(values []float32, shape []int64) (*tf.Tensor, error) {
	t, err := tf.NewTensor(values)
	if err == nil {
		err = t.Reshape(shape)
	}
	if err != nil {
		return nil, fmt.Errorf("making a %v tensor: %w", shape, err)
	}
	return t, nil
}

// tensorFloats copies a float32 tensor's values out, row-major.
func tensorFloats(t *tf.Tensor) []float32 {
	out := make([]float32, numElements(t.Shape()))
	if _, err := t.WriteContentsTo(&float32Sink{dst: out}); err != nil {
		return nil
	}
	return out
}

func numElements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}
