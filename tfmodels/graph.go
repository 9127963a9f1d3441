package tfmodels

import (
	"fmt"

	tf "github.com/galeone/tensorflow/tensorflow/go"
)

// graphBuilder adds ops with explicit, stable names to a graph. The first error
// sticks: later calls do nothing and return nil, so building code can run
// straight through and check b.err once.
type graphBuilder struct {
	g   *tf.Graph
	err error
}

func (b *graphBuilder) op(name, typ string, inputs []tf.Input, attrs map[string]interface{}, deps ...*tf.Operation) *tf.Operation {
	if b.err != nil {
		return nil
	}
	if b.g.Operation(name) != nil {
		b.err = fmt.Errorf("graph already has an op named %q", name)
		return nil
	}
	op, err := b.g.AddOperation(tf.OpSpec{Name: name, Type: typ, Input: inputs, Attrs: attrs, ControlDependencies: deps})
	if err != nil {
		b.err = fmt.Errorf("adding %s op %q: %w", typ, name, err)
		return nil
	}
	return op
}

// out adds a single-output op and returns its output.
func (b *graphBuilder) out(name, typ string, attrs map[string]interface{}, inputs ...tf.Input) tf.Output {
	op := b.op(name, typ, inputs, attrs)
	if op == nil {
		return tf.Output{}
	}
	return op.Output(0)
}

func (b *graphBuilder) constant(name string, value interface{}) tf.Output {
	if b.err != nil {
		return tf.Output{}
	}
	t, err := tf.NewTensor(value)
	if err != nil {
		b.err = fmt.Errorf("constant %q: %w", name, err)
		return tf.Output{}
	}
	return b.out(name, "Const", map[string]interface{}{"dtype": t.DataType(), "value": t})
}

func (b *graphBuilder) placeholder(name string, dtype tf.DataType, shape tf.Shape) tf.Output {
	return b.out(name, "Placeholder", map[string]interface{}{"dtype": dtype, "shape": shape})
}

func (b *graphBuilder) identity(name string, x tf.Output) tf.Output {
	return b.out(name, "Identity", nil, x)
}

// Variable is a float32 resource variable of a bbd graph, with the ops to read
// it and to set it from Go.
type Variable struct {
	Name      string  // e.g. "conv_1/kernel": the VarHandleOp's name
	Shape     []int64 // full static shape
	Trainable bool    // weights are trainable; masks are not

	Handle  tf.Output     // the VarHandleOp
	Value   tf.Output     // "<name>/Read/ReadVariableOp": the variable's value
	Initial tf.Output     // "<name>/initial_value": placeholder fed by Assign
	Assign  *tf.Operation // "<name>/Assign": sets the variable from Initial
}

// Size is the number of elements.
func (v *Variable) Size() int {
	n := 1
	for _, d := range v.Shape {
		n *= int(d)
	}
	return n
}

// variable adds a resource variable. Its shared_name is its name (an empty
// shared_name would make every variable of the session share one resource),
// so graphs imported together under prefixes must rename or freeze them.
func (b *graphBuilder) variable(name string, shape []int64, trainable bool) *Variable {
	v := &Variable{Name: name, Shape: shape, Trainable: trainable}
	v.Handle = b.out(name, "VarHandleOp", map[string]interface{}{"dtype": tf.Float, "shape": tf.MakeShape(shape...), "shared_name": name})
	v.Value = b.out(name+"/Read/ReadVariableOp", "ReadVariableOp", map[string]interface{}{"dtype": tf.Float}, v.Handle)
	v.Initial = b.placeholder(name+"/initial_value", tf.Float, tf.MakeShape(shape...))
	v.Assign = b.op(name+"/Assign", "AssignVariableOp", []tf.Input{v.Handle, v.Initial}, nil)
	return v
}

// variableFromGraph finds the ops of a variable added by [graphBuilder.variable]
// in a graph loaded from a SavedModel written by bbd.
func variableFromGraph(g *tf.Graph, name string, trainable bool) (*Variable, error) {
	h, r, i, a := g.Operation(name), g.Operation(name+"/Read/ReadVariableOp"), g.Operation(name+"/initial_value"), g.Operation(name+"/Assign")
	if h == nil || r == nil || i == nil || a == nil {
		return nil, fmt.Errorf("variable %q: expected ops %q, %q, %q, %q in the graph, some are missing", name,
			name, name+"/Read/ReadVariableOp", name+"/initial_value", name+"/Assign")
	}
	shape, err := i.Output(0).Shape().ToSlice()
	if err != nil {
		return nil, fmt.Errorf("variable %q: shape unknown: %w", name, err)
	}
	return &Variable{Name: name, Shape: shape, Trainable: trainable, Handle: h.Output(0), Value: r.Output(0), Initial: i.Output(0), Assign: a}, nil
}
