package tfmodels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	tf "github.com/galeone/tensorflow/tensorflow/go"
)

// Examples is a labelled data set that training and evaluation draw batches
// from. *data.Images implements it.
type Examples interface {
	Len() int
	// Gather writes the examples idx, in order, into x (len(idx)*H*W*C float32,
	// channels-last, pixels in [0, 1]) and their labels into labels.
	Gather(idx []int, x []float32, labels []int32) error
}

// Optimizer kinds.
const (
	SGD  = "sgd"
	Adam = "adam"
)

// OptimizerSettings configures the optimizer. Zero values take Keras'
// defaults: SGD learning rate 0.01, no momentum; Adam learning rate 0.001,
// beta1 0.9, beta2 0.999, epsilon 1e-7.
type OptimizerSettings struct {
	Kind         string  // SGD (default) or Adam
	LearningRate float64 // zero: 0.01 for SGD, 0.001 for Adam
	Momentum     float64 // SGD momentum (Keras semantics: v = m*v - lr*g; w += v)
	Nesterov     bool    // SGD Nesterov momentum
	Beta1, Beta2 float64 // Adam; zero: 0.9 and 0.999
	Epsilon      float64 // Adam; zero: 1e-7
}

// TrainSettings configures Train. The zero value trains every trainable
// variable for one epoch of SGD in batches of 32, shuffled with seed 0.
type TrainSettings struct {
	Optimizer OptimizerSettings
	Epochs    int    // zero: 1
	BatchSize int    // zero: 32
	Seed      uint64 // seed of the per-epoch shuffling
	NoShuffle bool   // visit the examples in order (for reproducing other tools' batches)

	// Train lists the layers ("fc_1") or variables ("fc_1/kernel") to train;
	// empty means all trainable variables. Freeze removes layers or variables
	// from that set. Masks are never trained.
	Train, Freeze []string

	// Validation, if set, is evaluated after each epoch.
	Validation Examples
	// Patience > 0 enables early stopping: training stops once the validation
	// loss (the training loss when there is no validation set) has not improved
	// by more than MinDelta for Patience epochs. RestoreBest then puts back the
	// weights of the best epoch.
	Patience    int
	MinDelta    float64
	RestoreBest bool

	// Progress, if set, is called after every batch (for progress bars).
	Progress func(p TrainProgress)
}

// DefaultTrainSettings returns the settings used for zero fields.
func DefaultTrainSettings() TrainSettings {
	return TrainSettings{Epochs: 1, BatchSize: 32, Optimizer: OptimizerSettings{Kind: SGD, LearningRate: 0.01}}
}

// TrainProgress reports where training is.
type TrainProgress struct {
	Epoch, Epochs  int // 1-based epoch
	Batch, Batches int // 1-based batch within the epoch
	Loss, Accuracy float64
	ExamplesPerSec float64
}

// EpochStats are the figures of one epoch.
type EpochStats struct {
	Epoch        int
	Loss         float64 // mean training loss over the epoch's examples
	Accuracy     float64 // training accuracy over the epoch
	ValLoss      float64 `json:",omitempty"` // zero without a validation set
	ValAccuracy  float64 `json:",omitempty"`
	Duration     time.Duration
	ExamplesPerS float64
}

// History is what Train returns: one entry per epoch run.
type History struct {
	Epochs    []EpochStats
	Stopped   bool // early stopping ended training
	BestEpoch int  // 1-based epoch with the best monitored loss
}

// lossOps are the evaluation ops shared by training and Evaluate.
type lossOps struct {
	labels  tf.Output // "train/labels": int32 [-1]
	loss    tf.Output // "train/loss": mean cross-entropy
	correct tf.Output // "train/correct": number of correct predictions
}

func (m *Model) ensureLoss() (*lossOps, error) {
	if m.loss != nil {
		return m.loss, nil
	}
	if !m.WhiteBox() {
		return nil, ErrNotWhiteBox
	}
	g := m.Graph
	if op := g.Operation("train/loss"); op != nil { // a reloaded model trained before
		m.loss = &lossOps{labels: g.Operation("train/labels").Output(0), loss: op.Output(0), correct: g.Operation("train/correct").Output(0)}
		return m.loss, nil
	}
	b := &graphBuilder{g: g}
	l := &lossOps{}
	l.labels = b.placeholder("train/labels", tf.Int32, tf.MakeShape(-1))
	depth := b.constant("train/depth", int32(m.NumClasses))
	on := b.constant("train/on", float32(1))
	off := b.constant("train/off", float32(0))
	onehot := b.out("train/onehot", "OneHot", map[string]interface{}{"axis": int64(-1)}, l.labels, depth, on, off)
	var xent tf.Output
	if op := b.op("train/xent", "SoftmaxCrossEntropyWithLogits", []tf.Input{m.Logits, onehot}, nil); op != nil {
		xent = op.Output(0)
	}
	axis := b.constant("train/axis", []int32{0})
	l.loss = b.out("train/loss", "Mean", nil, xent, axis)
	pred := b.out("train/argmax", "ArgMax", map[string]interface{}{"output_type": tf.Int32}, m.Logits, b.constant("train/argmax_axis", int32(1)))
	eq := b.out("train/equal", "Equal", nil, pred, l.labels)
	eqf := b.out("train/equal_float", "Cast", map[string]interface{}{"DstT": tf.Float}, eq)
	l.correct = b.out("train/correct", "Sum", nil, eqf, axis)
	if b.err != nil {
		return nil, fmt.Errorf("adding the loss to the graph: %w", b.err)
	}
	m.loss = l
	return l, nil
}

// Evaluate returns the mean cross-entropy loss and the accuracy of the model
// on ex, in batches of m.BatchSize.
func (m *Model) Evaluate(ex Examples) (loss, accuracy float64, err error) {
	defer recoverTF(&err, "evaluating")
	l, err := m.ensureLoss()
	if err != nil {
		return 0, 0, err
	}
	n := ex.Len()
	if n == 0 {
		return 0, 0, fmt.Errorf("evaluating: no examples")
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	bs := m.BatchSize
	if bs <= 0 {
		bs = 128
	}
	var sumLoss, sumCorrect float64
	for start := 0; start < n; start += bs {
		batch := idx[start:min(start+bs, n)]
		feeds, err := m.feeds(ex, batch, l.labels)
		if err != nil {
			return 0, 0, err
		}
		res, err := m.Session.Run(feeds, []tf.Output{l.loss, l.correct}, nil)
		if err != nil {
			return 0, 0, fmt.Errorf("evaluating: %w", err)
		}
		sumLoss += float64(res[0].Value().(float32)) * float64(len(batch))
		sumCorrect += float64(res[1].Value().(float32))
	}
	return sumLoss / float64(n), sumCorrect / float64(n), nil
}

func (m *Model) feeds(ex Examples, idx []int, labels tf.Output) (map[tf.Output]*tf.Tensor, error) {
	h, w, c := m.InputShape[0], m.InputShape[1], m.InputShape[2]
	x := make([]float32, len(idx)*h*w*c)
	y := make([]int32, len(idx))
	if err := ex.Gather(idx, x, y); err != nil {
		return nil, err
	}
	for i, l := range y {
		if l < 0 || int(l) >= m.NumClasses {
			return nil, &InputError{Input: fmt.Sprintf("label of example %d", idx[i]), Expected: fmt.Sprintf("a class in [0, %d)", m.NumClasses), Found: fmt.Sprint(l)}
		}
	}
	if i := firstNonFinite(x); i >= 0 {
		return nil, &InputError{Input: fmt.Sprintf("example %d", idx[i/(h*w*c)]), Expected: "finite pixel values", Found: fmt.Sprint(x[i])}
	}
	xt, err := float32Tensor(x, []int64{int64(len(idx)), int64(h), int64(w), int64(c)})
	if err != nil {
		return nil, err
	}
	yt, err := tf.NewTensor(y)
	if err != nil {
		return nil, err
	}
	return map[tf.Output]*tf.Tensor{m.Input: xt, labels: yt}, nil
}

// trainOps is one optimizer over one set of variables.
type trainOps struct {
	step     *tf.Operation // runs one update of every trained variable
	lr       tf.Output     // learning-rate placeholder
	b1p      tf.Output     // Adam: beta1^t placeholder
	b2p      tf.Output     // Adam: beta2^t placeholder
	slots    []*Variable
	settings OptimizerSettings
}

// trainable resolves TrainSettings.Train/Freeze to variables.
func (m *Model) trainable(s TrainSettings) ([]*Variable, error) {
	// A name selects a variable ("fc_1/kernel") or every variable of a layer ("fc_1").
	selects := func(v *Variable, names []string) bool {
		for _, n := range names {
			if v.Name == n || strings.HasPrefix(v.Name, n+"/") {
				return true
			}
		}
		return false
	}
	for _, n := range append(append([]string{}, s.Train...), s.Freeze...) {
		if !slices.ContainsFunc(m.vars, func(v *Variable) bool { return selects(v, []string{n}) }) {
			return nil, fmt.Errorf("training: %q is neither a layer with weights nor a variable of %s", n, m.Arch.Name)
		}
	}
	var out []*Variable
	for _, v := range m.vars {
		if !v.Trainable {
			continue
		}
		if (len(s.Train) > 0 && !selects(v, s.Train)) || selects(v, s.Freeze) {
			continue
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("training: no variable left to train")
	}
	return out, nil
}

// optimizerKey identifies an optimizer's graph: the same variables and the same
// constants reuse the same ops (the learning rate and Adam's step are fed).
func optimizerKey(vars []*Variable, o OptimizerSettings) string {
	names := make([]string, len(vars))
	for i, v := range vars {
		names[i] = v.Name
	}
	return fmt.Sprintf("%s %g %v %g %g %g | %s", o.Kind, o.Momentum, o.Nesterov, o.Beta1, o.Beta2, o.Epsilon, strings.Join(names, ","))
}

// optimizer returns the update ops for vars, adding them to the graph the first
// time (gradients and the optimizer's ops are built once per model and
// configuration: adding them, and TensorFlow's first run of a new subgraph,
// cost more than an epoch of a small data set), with its state reset to zero:
// each Train call starts a fresh optimizer, as a new Keras compile does.
func (m *Model) optimizer(vars []*Variable, o OptimizerSettings, loss tf.Output) (*trainOps, error) {
	key := optimizerKey(vars, o)
	t, ok := m.optimizers[key]
	if !ok {
		var err error
		if t, err = m.addOptimizer(vars, o, loss); err != nil {
			return nil, err
		}
		if m.optimizers == nil {
			m.optimizers = map[string]*trainOps{}
		}
		m.optimizers[key] = t
	}
	feeds := map[tf.Output]*tf.Tensor{}
	var targets []*tf.Operation
	for _, s := range t.slots {
		z, err := float32Tensor(make([]float32, s.Size()), s.Shape)
		if err != nil {
			return nil, err
		}
		feeds[s.Initial] = z
		targets = append(targets, s.Assign)
	}
	if len(targets) > 0 {
		if _, err := m.Session.Run(feeds, nil, targets); err != nil {
			return nil, fmt.Errorf("training: initialising optimizer state: %w", err)
		}
	}
	return t, nil
}

// addOptimizer adds gradients and update ops for vars under the first free
// scope "train/opt_<n>" (a model reloaded from a SavedModel may carry the
// optimizers it was trained with).
func (m *Model) addOptimizer(vars []*Variable, o OptimizerSettings, loss tf.Output) (*trainOps, error) {
	n := 1
	for m.Graph.Operation(fmt.Sprintf("train/opt_%d/learning_rate", n)) != nil {
		n++
	}
	scope := fmt.Sprintf("train/opt_%d", n)
	xs := make([]tf.Output, len(vars))
	for i, v := range vars {
		xs[i] = v.Value
	}
	grads, err := m.Graph.AddGradients(scope+"/gradients", []tf.Output{loss}, xs, nil)
	if err != nil {
		return nil, fmt.Errorf("training: computing gradients: %w", err)
	}
	b := &graphBuilder{g: m.Graph}
	t := &trainOps{settings: o}
	t.lr = b.placeholder(scope+"/learning_rate", tf.Float, tf.ScalarShape())
	var updates []*tf.Operation
	switch o.Kind {
	case SGD:
		mom := b.constant(scope+"/momentum", float32(o.Momentum))
		for i, v := range vars {
			if grads[i].Op == nil {
				return nil, fmt.Errorf("training: no gradient reaches %s", v.Name)
			}
			if o.Momentum == 0 {
				updates = append(updates, b.op(scope+"/"+v.Name+"/ResourceApplyGradientDescent", "ResourceApplyGradientDescent",
					[]tf.Input{v.Handle, t.lr, grads[i]}, nil))
				continue
			}
			acc := b.variable(scope+"/"+v.Name+"/momentum", v.Shape, false)
			t.slots = append(t.slots, acc)
			updates = append(updates, b.op(scope+"/"+v.Name+"/ResourceApplyKerasMomentum", "ResourceApplyKerasMomentum",
				[]tf.Input{v.Handle, acc.Handle, t.lr, grads[i], mom}, map[string]interface{}{"use_nesterov": o.Nesterov}))
		}
	case Adam:
		t.b1p = b.placeholder(scope+"/beta1_power", tf.Float, tf.ScalarShape())
		t.b2p = b.placeholder(scope+"/beta2_power", tf.Float, tf.ScalarShape())
		b1 := b.constant(scope+"/beta1", float32(o.Beta1))
		b2 := b.constant(scope+"/beta2", float32(o.Beta2))
		eps := b.constant(scope+"/epsilon", float32(o.Epsilon))
		for i, v := range vars {
			if grads[i].Op == nil {
				return nil, fmt.Errorf("training: no gradient reaches %s", v.Name)
			}
			mv := b.variable(scope+"/"+v.Name+"/m", v.Shape, false)
			vv := b.variable(scope+"/"+v.Name+"/v", v.Shape, false)
			t.slots = append(t.slots, mv, vv)
			updates = append(updates, b.op(scope+"/"+v.Name+"/ResourceApplyAdam", "ResourceApplyAdam",
				[]tf.Input{v.Handle, mv.Handle, vv.Handle, t.b1p, t.b2p, t.lr, b1, b2, eps, grads[i]}, nil))
		}
	default:
		return nil, fmt.Errorf("training: unknown optimizer %q (want %q or %q)", o.Kind, SGD, Adam)
	}
	t.step = b.op(scope+"/step", "NoOp", nil, nil, updates...)
	if b.err != nil {
		return nil, fmt.Errorf("training: adding the optimizer: %w", b.err)
	}
	return t, nil
}

func (o OptimizerSettings) withDefaults() OptimizerSettings {
	if o.Kind == "" {
		o.Kind = SGD
	}
	o.Kind = strings.ToLower(o.Kind)
	if o.LearningRate == 0 {
		o.LearningRate = 0.01
		if o.Kind == Adam {
			o.LearningRate = 0.001
		}
	}
	if o.Beta1 == 0 {
		o.Beta1 = 0.9
	}
	if o.Beta2 == 0 {
		o.Beta2 = 0.999
	}
	if o.Epsilon == 0 {
		o.Epsilon = 1e-7
	}
	return o
}

// Train fits the model to ex by minibatch gradient descent on the softmax
// cross-entropy of its logits (dense SoftmaxCrossEntropyWithLogits, whose
// gradient TensorFlow's C++ registry has), with gradients from
// Graph.AddGradients and the optimizer as TensorFlow ops. Masked units stay
// at zero: masks multiply layer outputs and are never trained.
func (m *Model) Train(ex Examples, s TrainSettings) (h *History, err error) {
	defer recoverTF(&err, "training")
	if !m.WhiteBox() {
		return nil, ErrNotWhiteBox
	}
	if m.Frozen() {
		return nil, ErrFrozen
	}
	if s.Epochs <= 0 {
		s.Epochs = 1
	}
	if s.BatchSize <= 0 {
		s.BatchSize = 32
	}
	s.Optimizer = s.Optimizer.withDefaults()
	n := ex.Len()
	if n == 0 {
		return nil, fmt.Errorf("training: no examples")
	}
	l, err := m.ensureLoss()
	if err != nil {
		return nil, err
	}
	vars, err := m.trainable(s)
	if err != nil {
		return nil, err
	}
	opt, err := m.optimizer(vars, s.Optimizer, l.loss)
	if err != nil {
		return nil, err
	}
	h = &History{}
	best := math.Inf(1)
	var bestWeights Weights
	sinceBest := 0
	step := 0
	batches := (n + s.BatchSize - 1) / s.BatchSize
	for epoch := 1; epoch <= s.Epochs; epoch++ {
		start := time.Now()
		order := make([]int, n)
		for i := range order {
			order[i] = i
		}
		if !s.NoShuffle {
			rng := rand.New(rand.NewPCG(s.Seed, uint64(epoch)))
			rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		var sumLoss, sumCorrect float64
		for bi := 0; bi < batches; bi++ {
			idx := order[bi*s.BatchSize : min((bi+1)*s.BatchSize, n)]
			feeds, err := m.feeds(ex, idx, l.labels)
			if err != nil {
				return h, err
			}
			step++
			lr, _ := tf.NewTensor(float32(s.Optimizer.LearningRate))
			feeds[opt.lr] = lr
			if s.Optimizer.Kind == Adam {
				p1, _ := tf.NewTensor(float32(math.Pow(s.Optimizer.Beta1, float64(step))))
				p2, _ := tf.NewTensor(float32(math.Pow(s.Optimizer.Beta2, float64(step))))
				feeds[opt.b1p], feeds[opt.b2p] = p1, p2
			}
			// The loss and accuracy are those of the batch before the update.
			res, err := m.Session.Run(feeds, []tf.Output{l.loss, l.correct}, []*tf.Operation{opt.step})
			if err != nil {
				return h, fmt.Errorf("training: epoch %d batch %d: %w", epoch, bi+1, err)
			}
			bl := float64(res[0].Value().(float32))
			if math.IsNaN(bl) || math.IsInf(bl, 0) {
				return h, fmt.Errorf("training: epoch %d batch %d: the loss diverged (%v); lower the learning rate", epoch, bi+1, bl)
			}
			sumLoss += bl * float64(len(idx))
			sumCorrect += float64(res[1].Value().(float32))
			if s.Progress != nil {
				seen := float64(min((bi+1)*s.BatchSize, n))
				s.Progress(TrainProgress{Epoch: epoch, Epochs: s.Epochs, Batch: bi + 1, Batches: batches,
					Loss: sumLoss / seen, Accuracy: sumCorrect / seen, ExamplesPerSec: seen / time.Since(start).Seconds()})
			}
		}
		st := EpochStats{Epoch: epoch, Loss: sumLoss / float64(n), Accuracy: sumCorrect / float64(n)}
		st.Duration = time.Since(start)
		st.ExamplesPerS = float64(n) / st.Duration.Seconds()
		monitored := st.Loss
		if s.Validation != nil {
			if st.ValLoss, st.ValAccuracy, err = m.Evaluate(s.Validation); err != nil {
				return h, err
			}
			monitored = st.ValLoss
		}
		h.Epochs = append(h.Epochs, st)
		if monitored < best-s.MinDelta {
			best, sinceBest, h.BestEpoch = monitored, 0, epoch
			if s.Patience > 0 && s.RestoreBest {
				if bestWeights, err = m.GetWeights(); err != nil {
					return h, err
				}
			}
		} else {
			sinceBest++
		}
		if s.Patience > 0 && sinceBest >= s.Patience {
			h.Stopped = true
			break
		}
	}
	if bestWeights != nil && h.BestEpoch != len(h.Epochs) {
		if err := m.SetWeights(bestWeights); err != nil {
			return h, err
		}
	}
	return h, nil
}

// InputGradient returns the gradient of the mean cross-entropy loss of the n
// examples x (labelled labels) with respect to the input pixels: n*H*W*C
// values, channels-last. Trigger reverse-engineering (Neural Cleanse) and
// adversarial methods build on it.
func (m *Model) InputGradient(x []float32, labels []int32) (grad []float32, err error) {
	defer recoverTF(&err, "input gradient")
	l, err := m.ensureLoss()
	if err != nil {
		return nil, err
	}
	if m.inputGrad.Op == nil {
		g, err := m.Graph.AddGradients("train/input_gradient", []tf.Output{l.loss}, []tf.Output{m.Input}, nil)
		if err != nil {
			return nil, fmt.Errorf("input gradient: %w", err)
		}
		m.inputGrad = g[0]
	}
	ex := &floatExamples{x: x, labels: labels, per: m.InputShape[0] * m.InputShape[1] * m.InputShape[2]}
	if len(x) != len(labels)*ex.per {
		return nil, &InputError{Input: "model input", Expected: fmt.Sprintf("%d values for %d labels", len(labels)*ex.per, len(labels)), Found: fmt.Sprintf("%d values", len(x))}
	}
	idx := make([]int, len(labels))
	for i := range idx {
		idx[i] = i
	}
	feeds, err := m.feeds(ex, idx, l.labels)
	if err != nil {
		return nil, err
	}
	res, err := m.Session.Run(feeds, []tf.Output{m.inputGrad}, nil)
	if err != nil {
		return nil, fmt.Errorf("input gradient: %w", err)
	}
	return tensorFloats(res[0]), nil
}

// floatExamples are examples already converted to float32.
type floatExamples struct {
	x      []float32
	labels []int32
	per    int
}

func (e *floatExamples) Len() int { return len(e.labels) }

func (e *floatExamples) Gather(idx []int, x []float32, labels []int32) error {
	for k, i := range idx {
		copy(x[k*e.per:(k+1)*e.per], e.x[i*e.per:(i+1)*e.per])
		labels[k] = e.labels[i]
	}
	return nil
}
