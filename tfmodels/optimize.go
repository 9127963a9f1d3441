package tfmodels

import (
	"fmt"
	"math"
	"strings"

	tf "github.com/galeone/tensorflow/tensorflow/go"
)

// Minimizer minimises one scalar loss over a set of variables with an
// optimizer whose update ops live in the graph (ResourceApplyKerasMomentum,
// ResourceApplyGradientDescent or ResourceApplyAdam, with gradients from
// Graph.AddGradients). [Model.Minimize] makes one; [Model.Train] uses one.
//
// A Minimizer is not safe for concurrent use.
type Minimizer struct {
	m        *Model
	loss     tf.Output
	vars     []*Variable
	settings OptimizerSettings
	step     *tf.Operation // runs one update of every variable
	lr       tf.Output     // learning-rate placeholder
	b1p, b2p tf.Output     // Adam: beta1^t and beta2^t placeholders
	slots    []*Variable   // optimizer state (momentum, Adam's m and v)
	steps    int           // updates since the last Reset
}

// Minimize returns a Minimizer of loss (a float32 scalar of the model's graph)
// over vars, adding the gradients and the optimizer's ops to the graph the first
// time: the same loss, variables and optimizer constants give back the same
// Minimizer (building the ops, and TensorFlow's first run of a new subgraph,
// cost more than an epoch of a small data set). Its state starts at zero;
// Reset zeroes it again. The learning rate and Adam's step are fed at each
// step, so they can change between steps (SetLearningRate).
//
// Gradients come from TensorFlow's C++ gradient registry, which lacks some
// ops (SparseSoftmaxCrossEntropyWithLogits, for one): an op without a gradient
// is an error here, not at the first step.
func (m *Model) Minimize(loss tf.Output, vars []*Variable, o OptimizerSettings) (z *Minimizer, err error) {
	defer recoverTF(&err, "minimizing")
	o = o.withDefaults()
	if loss.Op == nil {
		return nil, fmt.Errorf("minimizing: no loss given")
	}
	if loss.DataType() != tf.Float || loss.Shape().NumDimensions() > 0 {
		return nil, &InputError{Input: "loss " + loss.Op.Name(), Expected: "a float32 scalar", Found: fmt.Sprintf("%v %v", loss.DataType(), loss.Shape())}
	}
	if len(vars) == 0 {
		return nil, fmt.Errorf("minimizing %s: no variables given", loss.Op.Name())
	}
	for _, v := range vars {
		if v.Handle.Op == nil {
			return nil, fmt.Errorf("minimizing %s: %s is a constant: %w", loss.Op.Name(), v.GraphName, ErrFrozen)
		}
	}
	m.shared.mu.Lock()
	defer m.shared.mu.Unlock()
	key := minimizerKey(loss, vars, o)
	if z, ok := m.shared.minimizers[key]; ok {
		z.m = m
		return z, z.reset()
	}
	z = &Minimizer{m: m, loss: loss, vars: vars, settings: o}
	if err := z.build(); err != nil {
		return nil, err
	}
	m.shared.minimizers[key] = z
	return z, z.reset()
}

// minimizerKey identifies a Minimizer's ops: the same loss, variables and
// constants reuse them (the learning rate and Adam's step are fed).
func minimizerKey(loss tf.Output, vars []*Variable, o OptimizerSettings) string {
	names := make([]string, len(vars))
	for i, v := range vars {
		names[i] = v.GraphName
	}
	return fmt.Sprintf("%s:%d | %s %g %v %g %g %g | %s", loss.Op.Name(), loss.Index, o.Kind, o.Momentum, o.Nesterov, o.Beta1, o.Beta2, o.Epsilon, strings.Join(names, ","))
}

// build adds gradients and update ops under the first free scope "opt_<n>"
// (a model reloaded from a SavedModel may carry the optimizers it was trained
// with).
func (z *Minimizer) build() error {
	g := z.m.Graph
	scope := freeScope(g, "opt")
	xs := make([]tf.Output, len(z.vars))
	for i, v := range z.vars {
		xs[i] = v.Value
	}
	grads, err := g.AddGradients(scope+"/gradients", []tf.Output{z.loss}, xs, nil)
	if err != nil {
		return fmt.Errorf("minimizing %s: computing gradients: %w", z.loss.Op.Name(), err)
	}
	for i, v := range z.vars {
		if grads[i].Op == nil {
			return fmt.Errorf("minimizing %s: no gradient reaches %s", z.loss.Op.Name(), v.GraphName)
		}
	}
	o := z.settings
	b := &graphBuilder{g: g, scope: scope}
	z.lr = b.placeholder("learning_rate", tf.Float, tf.ScalarShape())
	var updates []*tf.Operation
	switch o.Kind {
	case SGD:
		mom := b.constant("momentum", float32(o.Momentum))
		for i, v := range z.vars {
			if o.Momentum == 0 {
				updates = append(updates, b.op(v.GraphName+"/ResourceApplyGradientDescent", "ResourceApplyGradientDescent",
					[]tf.Input{v.Handle, z.lr, grads[i]}, nil))
				continue
			}
			acc := b.variable(v.GraphName+"/momentum", v.Shape, false)
			z.slots = append(z.slots, acc)
			updates = append(updates, b.op(v.GraphName+"/ResourceApplyKerasMomentum", "ResourceApplyKerasMomentum",
				[]tf.Input{v.Handle, acc.Handle, z.lr, grads[i], mom}, map[string]interface{}{"use_nesterov": o.Nesterov}))
		}
	case Adam:
		z.b1p = b.placeholder("beta1_power", tf.Float, tf.ScalarShape())
		z.b2p = b.placeholder("beta2_power", tf.Float, tf.ScalarShape())
		b1 := b.constant("beta1", float32(o.Beta1))
		b2 := b.constant("beta2", float32(o.Beta2))
		eps := b.constant("epsilon", float32(o.Epsilon))
		for i, v := range z.vars {
			mv := b.variable(v.GraphName+"/m", v.Shape, false)
			vv := b.variable(v.GraphName+"/v", v.Shape, false)
			z.slots = append(z.slots, mv, vv)
			updates = append(updates, b.op(v.GraphName+"/ResourceApplyAdam", "ResourceApplyAdam",
				[]tf.Input{v.Handle, mv.Handle, vv.Handle, z.b1p, z.b2p, z.lr, b1, b2, eps, grads[i]}, nil))
		}
	default:
		return fmt.Errorf("minimizing: unknown optimizer %q (want %q or %q)", o.Kind, SGD, Adam)
	}
	z.step = b.op("step", "NoOp", nil, nil, updates...)
	if b.err != nil {
		return fmt.Errorf("minimizing: adding the optimizer: %w", b.err)
	}
	return nil
}

// Reset zeroes the optimizer's state (momentum, Adam's moments and step): the
// next Step starts afresh, as after a new Keras compile.
func (z *Minimizer) Reset() (err error) {
	defer recoverTF(&err, "resetting the optimizer")
	return z.reset()
}

func (z *Minimizer) reset() error {
	z.steps = 0
	feeds := map[tf.Output]*tf.Tensor{}
	var targets []*tf.Operation
	for _, s := range z.slots {
		t, err := float32Tensor(make([]float32, s.Size()), s.Shape)
		if err != nil {
			return err
		}
		feeds[s.Initial] = t
		targets = append(targets, s.Assign)
	}
	if len(targets) == 0 {
		return nil
	}
	if _, err := z.m.Session.Run(feeds, nil, targets); err != nil {
		return fmt.Errorf("initialising optimizer state: %w", err)
	}
	return nil
}

// Settings returns the optimizer settings, defaults filled in.
func (z *Minimizer) Settings() OptimizerSettings { return z.settings }

// SetLearningRate changes the learning rate from the next step on.
func (z *Minimizer) SetLearningRate(lr float64) { z.settings.LearningRate = lr }

// Steps is the number of updates since the last Reset.
func (z *Minimizer) Steps() int { return z.steps }

// Step runs one update of every variable, with feeds (the placeholders the
// loss depends on: images, labels...), and returns the fetches' values
// computed in the same run, before the update.
func (z *Minimizer) Step(feeds map[tf.Output]*tf.Tensor, fetches ...tf.Output) (res []*tf.Tensor, err error) {
	defer recoverTF(&err, "optimizer step")
	all := map[tf.Output]*tf.Tensor{}
	for k, v := range feeds {
		all[k] = v
	}
	z.steps++
	lr, err := tf.NewTensor(float32(z.settings.LearningRate))
	if err != nil {
		return nil, err
	}
	all[z.lr] = lr
	if z.settings.Kind == Adam {
		p1, _ := tf.NewTensor(float32(math.Pow(z.settings.Beta1, float64(z.steps))))
		p2, _ := tf.NewTensor(float32(math.Pow(z.settings.Beta2, float64(z.steps))))
		all[z.b1p], all[z.b2p] = p1, p2
	}
	res, err = z.m.Session.Run(all, fetches, []*tf.Operation{z.step})
	if err != nil {
		return nil, fmt.Errorf("optimizer step %d: %w", z.steps, err)
	}
	return res, nil
}

// Gradients adds to the graph the gradients of y (summed over its elements)
// with respect to each of xs, and returns them (d y / d x, shaped like x).
// An x that y does not depend on, or that a gradient-less op separates from
// y, is an error.
func (m *Model) Gradients(y tf.Output, xs ...tf.Output) (grads []tf.Output, err error) {
	defer recoverTF(&err, "gradients")
	if y.Op == nil || len(xs) == 0 {
		return nil, fmt.Errorf("gradients: expected a tensor and at least one tensor to differentiate by")
	}
	m.shared.mu.Lock()
	defer m.shared.mu.Unlock()
	grads, err = m.Graph.AddGradients(freeScope(m.Graph, "gradients"), []tf.Output{y}, xs, nil)
	if err != nil {
		return nil, fmt.Errorf("gradients of %s: %w", y.Op.Name(), err)
	}
	for i, g := range grads {
		if g.Op == nil {
			return nil, fmt.Errorf("gradients of %s: %s does not reach it", y.Op.Name(), xs[i].Op.Name())
		}
	}
	return grads, nil
}

// freeScope returns the first "<base>_<n>" (n = 1, 2...) that no op of g is
// named by or under.
func freeScope(g *tf.Graph, base string) string {
	used := map[string]bool{}
	for _, op := range g.Operations() {
		name := op.Name()
		if i := strings.IndexByte(name, '/'); i >= 0 {
			name = name[:i]
		}
		used[name] = true
	}
	for n := 1; ; n++ {
		if s := fmt.Sprintf("%s_%d", base, n); !used[s] {
			return s
		}
	}
}
