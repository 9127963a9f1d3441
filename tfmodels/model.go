package tfmodels

import (
	"fmt"
	"sort"
	"strings"
	"unsafe"

	tf "github.com/galeone/tensorflow/tensorflow/go"
)

// Model is a network as a TensorFlow graph plus the session that runs it.
// Build, ImportKerasH5 and LoadSavedModel make one; Close frees it.
//
// White-box models (built by bbd, or loaded from a SavedModel bbd wrote) have an
// Architecture, named layers and variables. Black-box models (foreign
// SavedModels) have only Input and Probabilities.
type Model struct {
	Graph   *tf.Graph
	Session *tf.Session
	Arch    *Architecture // nil for black-box models

	Input         tf.Output // float32 [-1, H, W, C], pixels in [0, 1]
	Logits        tf.Output // pre-softmax scores; zero Output for black-box models
	Probabilities tf.Output // [-1, NumClasses]
	InputShape    [3]int    // H, W, C of one example
	NumClasses    int
	BatchSize     int // inference batch size

	layers     map[string]tf.Output
	layerOrder []string
	vars       []*Variable
	closed     bool
	loss       *lossOps  // training and evaluation ops, added on first use
	inputGrad  tf.Output // d loss / d input, added on first use
	frozen     Weights   // the constants of a frozen model; nil otherwise
	// sessionOptions the model was built or loaded with (Freeze reuses them).
	sessionOptions *tf.SessionOptions
	optimizers     map[string]*trainOps // optimizer ops added so far, by optimizerKey
}

// Close frees the session (and with it the graph's resources). Safe to call
// more than once.
func (m *Model) Close() error {
	if m == nil || m.closed || m.Session == nil {
		return nil
	}
	m.closed = true
	return m.Session.Close()
}

// WhiteBox reports whether the model's layers and variables are reachable.
func (m *Model) WhiteBox() bool { return m.Arch != nil }

// Layer returns the output of the named layer (e.g. "pool_3"), or of the
// endpoints "input", "logits" and "probabilities".
func (m *Model) Layer(name string) (tf.Output, error) {
	switch name {
	case "input":
		return m.Input, nil
	case "probabilities":
		return m.Probabilities, nil
	case "logits":
		if m.WhiteBox() {
			return m.Logits, nil
		}
	}
	if !m.WhiteBox() {
		return tf.Output{}, fmt.Errorf("layer %q: %w", name, ErrNotWhiteBox)
	}
	out, ok := m.layers[name]
	if !ok {
		return tf.Output{}, fmt.Errorf("layer %q: no such layer (layers: %s)", name, strings.Join(m.layerOrder, ", "))
	}
	return out, nil
}

// LayerNames lists the named layers in graph order.
func (m *Model) LayerNames() []string { return append([]string(nil), m.layerOrder...) }

// Variables lists the model's variables (weights and masks) in creation order.
func (m *Model) Variables() []*Variable { return append([]*Variable(nil), m.vars...) }

// Variable returns the named variable ("conv_1/kernel", "flatten_1/mask").
func (m *Model) Variable(name string) (*Variable, error) {
	for _, v := range m.vars {
		if v.Name == name {
			return v, nil
		}
	}
	if !m.WhiteBox() {
		return nil, fmt.Errorf("variable %q: %w", name, ErrNotWhiteBox)
	}
	return nil, fmt.Errorf("variable %q: no such variable in %s", name, m.Arch.Name)
}

// ParamCount is the number of trainable parameters (masks excluded), the figure
// Keras reports.
func (m *Model) ParamCount() int {
	n := 0
	for _, v := range m.vars {
		if v.Trainable {
			n += v.Size()
		}
	}
	return n
}

// LayerInfo describes one named layer.
type LayerInfo struct {
	Name   string
	Kind   string
	Shape  []int64 // output shape, -1 for the batch dimension
	Params int     // trainable parameters owned by the layer
}

// Layers describes every named layer: kind, output shape and parameters.
func (m *Model) Layers() ([]LayerInfo, error) {
	if !m.WhiteBox() {
		return nil, ErrNotWhiteBox
	}
	var infos []LayerInfo
	for _, l := range m.Arch.Layers {
		out := m.layers[l.Name]
		shape, _ := out.Shape().ToSlice()
		info := LayerInfo{Name: l.Name, Kind: l.Kind, Shape: shape}
		for _, v := range m.vars {
			if v.Trainable && strings.HasPrefix(v.Name, l.Name+"/") {
				info.Params += v.Size()
			}
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// SetWeights assigns the given variables. Names not in the model and wrong
// shapes are errors; variables not named keep their values.
func (m *Model) SetWeights(w Weights) (err error) {
	defer recoverTF(&err, "setting weights")
	if m.Frozen() {
		return ErrFrozen
	}
	feeds := map[tf.Output]*tf.Tensor{}
	var targets []*tf.Operation
	byName := map[string]*Variable{}
	for _, v := range m.vars {
		byName[v.Name] = v
	}
	names := make([]string, 0, len(w))
	for name := range w {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
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

// GetWeights reads the current value of every variable.
func (m *Model) GetWeights() (w Weights, err error) {
	defer recoverTF(&err, "reading weights")
	if len(m.vars) == 0 {
		return nil, ErrNotWhiteBox
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

// Labels returns the most probable class of each example of probs
// (n*classes values).
func Labels(probs []float32, classes int) []int {
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

// Run evaluates outputs (any tensors of the graph whose first dimension is the
// batch) on n examples x, in batches, and returns each output's values for all
// examples, concatenated.
func (m *Model) Run(x []float32, n int, outputs ...tf.Output) (res [][]float32, err error) {
	defer recoverTF(&err, "running the model")
	if m.closed {
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
		bs = 128
	}
	res = make([][]float32, len(outputs))
	for start := 0; start < n; start += bs {
		end := min(start+bs, n)
		t, err := float32Tensor(x[start*per:end*per], []int64{int64(end - start), int64(h), int64(w), int64(c)})
		if err != nil {
			return nil, err
		}
		outs, err := m.Session.Run(map[tf.Output]*tf.Tensor{m.Input: t}, outputs, nil)
		if err != nil {
			return nil, fmt.Errorf("running the model on examples %d..%d: %w", start, end-1, err)
		}
		for i, o := range outs {
			// Each output's values for all n examples go into one slice,
			// allocated at the first batch, which the tensor is copied into.
			size := int(numElements(o.Shape()[1:]))
			if res[i] == nil {
				res[i] = make([]float32, n*size)
			}
			dst := res[i][start*size : end*size]
			if _, err := o.WriteContentsTo(&float32Sink{dst: dst}); err != nil {
				return nil, fmt.Errorf("reading output %d: %w", i, err)
			}
		}
	}
	return res, nil
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
