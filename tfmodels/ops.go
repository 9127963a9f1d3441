package tfmodels

import (
	"fmt"

	tf "github.com/galeone/tensorflow/tensorflow/go"
)

// Ops adds ops to a graph under a scope, with unique readable names
// ("<scope>/Mul", "<scope>/Mul_1"...) and a sticky error: a defence builds its
// graph piece straight through and checks Err once. (The bindings' op package
// names every op of a scope after its type, so a second Const in one scope
// fails, and its builders panic on errors.)
//
//	o := tfmodels.NewOps(m.Graph, "strip")
//	blended := o.Op("AddV2", nil, x, overlays)
//	if err := o.Err(); err != nil { ... }
type Ops struct {
	b graphBuilder
}

// NewOps returns an Ops adding to g under scope ("" for none).
func NewOps(g *tf.Graph, scope string) *Ops { return &Ops{b: graphBuilder{g: g, scope: scope}} }

// Err is the first error met, or nil.
func (o *Ops) Err() error { return o.b.err }

// Scope is the scope the ops are added under.
func (o *Ops) Scope() string { return o.b.scope }

// free returns the first unused name base, base_1, base_2... under the scope.
func (o *Ops) free(base string) string {
	name := base
	for i := 1; o.b.g.Operation(scoped(o.b.scope, name)) != nil; i++ {
		name = fmt.Sprintf("%s_%d", base, i)
	}
	return name
}

// Op adds an op of type typ with one output, named after its type, and
// returns the output.
func (o *Ops) Op(typ string, attrs map[string]interface{}, inputs ...tf.Input) (out tf.Output) {
	defer o.recover(typ)
	return o.b.out(o.free(typ), typ, attrs, inputs...)
}

// Named adds an op under an explicit name (it must be free) and returns its
// first output: the tensors a signature or a caller looks up by name.
func (o *Ops) Named(name, typ string, attrs map[string]interface{}, inputs ...tf.Input) (out tf.Output) {
	defer o.recover(name)
	return o.b.out(name, typ, attrs, inputs...)
}

// Operation adds an op with any number of outputs (and control
// dependencies), named after its type.
func (o *Ops) Operation(typ string, attrs map[string]interface{}, inputs []tf.Input, deps ...*tf.Operation) (op *tf.Operation) {
	defer o.recover(typ)
	return o.b.op(o.free(typ), typ, inputs, attrs, deps...)
}

// Const adds a constant (a Go scalar, slice or *tf.Tensor).
func (o *Ops) Const(value interface{}) tf.Output {
	if t, ok := value.(*tf.Tensor); ok {
		return o.Op("Const", map[string]interface{}{"dtype": t.DataType(), "value": t})
	}
	if o.b.err != nil {
		return tf.Output{}
	}
	t, err := tf.NewTensor(value)
	if err != nil {
		o.b.err = fmt.Errorf("constant: %w", err)
		return tf.Output{}
	}
	return o.Op("Const", map[string]interface{}{"dtype": t.DataType(), "value": t})
}

// Placeholder adds a placeholder under an explicit name.
func (o *Ops) Placeholder(name string, dtype tf.DataType, shape tf.Shape) tf.Output {
	return o.Named(name, "Placeholder", map[string]interface{}{"dtype": dtype, "shape": shape})
}

// Mean and Sum reduce x over axes (all axes when none are given).
func (o *Ops) Mean(x tf.Output, axes ...int32) tf.Output { return o.reduce("Mean", x, axes) }

// Sum: see Mean.
func (o *Ops) Sum(x tf.Output, axes ...int32) tf.Output { return o.reduce("Sum", x, axes) }

func (o *Ops) reduce(typ string, x tf.Output, axes []int32) tf.Output {
	if axes == nil && o.b.err == nil {
		n := x.Shape().NumDimensions()
		if n < 0 {
			o.b.err = fmt.Errorf("%s of %s: rank unknown", typ, x.Op.Name())
			return tf.Output{}
		}
		axes = make([]int32, n)
		for i := range axes {
			axes[i] = int32(i)
		}
	}
	return o.Op(typ, nil, x, o.Const(axes))
}

// CrossEntropy adds the mean softmax cross-entropy of logits [-1, classes]
// to int32 labels [-1] (dense SoftmaxCrossEntropyWithLogits on a one-hot:
// its gradient is in TensorFlow's C++ registry, the sparse op's is not), and
// the per-example losses.
func (o *Ops) CrossEntropy(logits, labels tf.Output, classes int) (mean, perExample tf.Output) {
	onehot := o.Op("OneHot", map[string]interface{}{"axis": int64(-1)}, labels, o.Const(int32(classes)), o.Const(float32(1)), o.Const(float32(0)))
	op := o.Operation("SoftmaxCrossEntropyWithLogits", nil, []tf.Input{logits, onehot})
	if op == nil {
		return tf.Output{}, tf.Output{}
	}
	return o.Mean(op.Output(0), 0), op.Output(0)
}

func (o *Ops) recover(what string) {
	if r := recover(); r != nil && o.b.err == nil {
		o.b.err = fmt.Errorf("adding %s: tensorflow: %v", what, r)
	}
}
