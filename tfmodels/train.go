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

// SoftExamples are Examples that also carry a target distribution over the
// classes per example. Train fits the model to those targets (the
// cross-entropy against a distribution instead of a one-hot label), as in
// knowledge distillation (Hinton, Vinyals and Dean, "Distilling the Knowledge
// in a Neural Network", 2015); accuracy is still counted against the labels.
type SoftExamples interface {
	Examples
	// Targets writes the target distributions of the examples idx, in order,
	// into t (len(idx)*classes float32, each row non-negative and summing
	// to 1).
	Targets(idx []int, classes int, t []float32) error
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
// variable for one epoch of SGD in batches of DefaultBatchSize, shuffled with
// seed 0.
type TrainSettings struct {
	Optimizer OptimizerSettings
	Epochs    int    // zero: 1
	BatchSize int    // zero: DefaultBatchSize
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
	// AfterBatch, if set, is called after every batch's update with the
	// number of updates so far (from 1, across epochs): schedules that change
	// the model between steps (weight-pruning masks) hook in here. An error
	// stops training and is returned.
	AfterBatch func(step int) error
}

// DefaultTrainSettings returns the settings used for zero fields.
func DefaultTrainSettings() TrainSettings {
	return TrainSettings{Epochs: 1, BatchSize: DefaultBatchSize, Optimizer: OptimizerSettings{Kind: SGD, LearningRate: 0.01}}
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
	targets tf.Output // "train/onehot": the labels one-hot, fed directly with soft targets
	loss    tf.Output // "train/loss": mean cross-entropy
	correct tf.Output // "train/correct": number of correct predictions
}

func (m *Model) ensureLoss() (*lossOps, error) {
	m.shared.mu.Lock()
	defer m.shared.mu.Unlock()
	if l, ok := m.shared.losses[m.Scope]; ok {
		return l, nil
	}
	if !m.WhiteBox() {
		return nil, ErrNotWhiteBox
	}
	g := m.Graph
	name := func(n string) string { return scoped(m.Scope, "train/"+n) }
	if op := g.Operation(name("loss")); op != nil { // a reloaded model trained before
		l := &lossOps{labels: g.Operation(name("labels")).Output(0), targets: g.Operation(name("onehot")).Output(0), loss: op.Output(0), correct: g.Operation(name("correct")).Output(0)}
		m.shared.losses[m.Scope] = l
		return l, nil
	}
	b := &graphBuilder{g: g, scope: scoped(m.Scope, "train")}
	l := &lossOps{}
	l.labels = b.placeholder("labels", tf.Int32, tf.MakeShape(-1))
	depth := b.constant("depth", int32(m.NumClasses))
	on := b.constant("on", float32(1))
	off := b.constant("off", float32(0))
	onehot := b.out("onehot", "OneHot", map[string]interface{}{"axis": int64(-1)}, l.labels, depth, on, off)
	l.targets = onehot
	var xent tf.Output
	if op := b.op("xent", "SoftmaxCrossEntropyWithLogits", []tf.Input{m.Logits, onehot}, nil); op != nil {
		xent = op.Output(0)
	}
	axis := b.constant("axis", []int32{0})
	l.loss = b.out("loss", "Mean", nil, xent, axis)
	pred := b.out("argmax", "ArgMax", map[string]interface{}{"output_type": tf.Int32}, m.Logits, b.constant("argmax_axis", int32(1)))
	eq := b.out("equal", "Equal", nil, pred, l.labels)
	eqf := b.out("equal_float", "Cast", map[string]interface{}{"DstT": tf.Float}, eq)
	l.correct = b.out("correct", "Sum", nil, eqf, axis)
	if b.err != nil {
		return nil, fmt.Errorf("adding the loss to the graph: %w", b.err)
	}
	m.shared.losses[m.Scope] = l
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
		bs = DefaultBatchSize
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

// softTargets reads and checks the target distributions of the examples idx.
func (m *Model) softTargets(ex SoftExamples, idx []int) (*tf.Tensor, error) {
	k := m.NumClasses
	t := make([]float32, len(idx)*k)
	if err := ex.Targets(idx, k, t); err != nil {
		return nil, err
	}
	for i := range idx {
		sum := 0.0
		for _, v := range t[i*k : (i+1)*k] {
			if !(v >= 0 && v <= 1) {
				return nil, &InputError{Input: fmt.Sprintf("soft target of example %d", idx[i]), Expected: "probabilities in [0, 1]", Found: fmt.Sprint(v)}
			}
			sum += float64(v)
		}
		if math.Abs(sum-1) > 1e-3 {
			return nil, &InputError{Input: fmt.Sprintf("soft target of example %d", idx[i]), Expected: "probabilities summing to 1", Found: fmt.Sprintf("a sum of %.4g", sum)}
		}
	}
	return float32Tensor(t, []int64{int64(len(idx)), int64(k)})
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
		s.BatchSize = DefaultBatchSize
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
	m.shared.trainMu.Lock()
	defer m.shared.trainMu.Unlock()
	opt, err := m.Minimize(l.loss, vars, s.Optimizer)
	if err != nil {
		return nil, err
	}
	h = &History{}
	best := math.Inf(1)
	var bestWeights Weights
	sinceBest := 0
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
			if soft, ok := ex.(SoftExamples); ok {
				// Feeding the one-hot tensor replaces it for this step: the
				// loss becomes the cross-entropy against the soft targets.
				if feeds[l.targets], err = m.softTargets(soft, idx); err != nil {
					return h, err
				}
			}
			// The loss and accuracy are those of the batch before the update.
			res, err := opt.Step(feeds, l.loss, l.correct)
			if err != nil {
				return h, fmt.Errorf("training: epoch %d batch %d: %w", epoch, bi+1, err)
			}
			bl := float64(res[0].Value().(float32))
			if math.IsNaN(bl) || math.IsInf(bl, 0) {
				return h, fmt.Errorf("training: epoch %d batch %d: the loss diverged (%v); lower the learning rate", epoch, bi+1, bl)
			}
			sumLoss += bl * float64(len(idx))
			if s.AfterBatch != nil {
				if err := s.AfterBatch(opt.Steps()); err != nil {
					return h, err
				}
			}
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
	m.shared.mu.Lock()
	gradOut, ok := m.shared.inputGrads[m.Scope]
	if !ok {
		g, err := m.Graph.AddGradients(freeScope(m.Graph, "input_gradient"), []tf.Output{l.loss}, []tf.Output{m.Input}, nil)
		if err != nil {
			m.shared.mu.Unlock()
			return nil, fmt.Errorf("input gradient: %w", err)
		}
		gradOut = g[0]
		m.shared.inputGrads[m.Scope] = gradOut
	}
	m.shared.mu.Unlock()
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
	res, err := m.Session.Run(feeds, []tf.Output{gradOut}, nil)
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
