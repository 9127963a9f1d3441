package tfmodels

import (
	"fmt"

	tf "github.com/galeone/tensorflow/tensorflow/go"
)

// graphBuilder adds ops with explicit, stable names to a graph, under an
// optional scope ("badnet" makes "conv_1" the op "badnet/conv_1"). The first
// error sticks: later calls do nothing and return nil, so building code can run
// straight through and check b.err once.
type graphBuilder struct {
	g     *tf.Graph
	scope string
	err   error
}

// scoped returns name under scope: "scope/name", or name when scope is empty.
func scoped(scope, name string) string {
	if scope == "" {
		return name
	}
	return scope + "/" + name
}

func (b *graphBuilder) op(name, typ string, inputs []tf.Input, attrs map[string]interface{}, deps ...*tf.Operation) *tf.Operation {
	if b.err != nil {
		return nil
	}
	name = scoped(b.scope, name)
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
	// Name is the variable's name within its network, as Keras names the
	// weight ("conv_1/kernel"), without the network's scope: the key of
	// [Weights].
	Name string
	// GraphName is the VarHandleOp's name in the graph, scope included
	// ("badnet/conv_1/kernel"); it is unique in the graph, it is the variable's
	// shared_name (so that networks under two scopes never share a value) and
	// its key in SavedModel checkpoints.
	GraphName string
	Shape     []int64 // full static shape
	Trainable bool    // weights are trainable; masks and optimizer state are not

	Handle  tf.Output     // the VarHandleOp; zero for the constants of a frozen net
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

// variable adds a resource variable named name under the builder's scope. Its
// shared_name is its full op name: an empty shared_name would make every
// variable of the session share one resource, and an unscoped one would make
// two networks under two scopes share their weights.
func (b *graphBuilder) variable(name string, shape []int64, trainable bool) *Variable {
	full := scoped(b.scope, name)
	v := &Variable{Name: name, GraphName: full, Shape: shape, Trainable: trainable}
	v.Handle = b.out(name, "VarHandleOp", map[string]interface{}{"dtype": tf.Float, "shape": tf.MakeShape(shape...), "shared_name": full})
	v.Value = b.out(name+"/Read/ReadVariableOp", "ReadVariableOp", map[string]interface{}{"dtype": tf.Float}, v.Handle)
	v.Initial = b.placeholder(name+"/initial_value", tf.Float, tf.MakeShape(shape...))
	v.Assign = b.op(name+"/Assign", "AssignVariableOp", []tf.Input{v.Handle, v.Initial}, nil)
	return v
}

// AddVariable adds a float32 resource variable to g under the op name name
// ("trigger/mask"), with the ops bbd uses to read and set it: name (the
// VarHandleOp), name+"/Read/ReadVariableOp" (its value, what other ops should
// take as input), name+"/initial_value" (a placeholder) and name+"/Assign".
// The variable has no value until it is assigned: [Model.NewVariable] adds and
// assigns in one call, [Model.AssignVariable] sets an added one. Defences use
// it for what they train in the graph (a trigger in front of a net, a batch of
// masks).
func AddVariable(g *tf.Graph, name string, shape []int64, trainable bool) (v *Variable, err error) {
	defer recoverTF(&err, "adding variable "+name)
	for _, d := range shape {
		if d <= 0 {
			return nil, &InputError{Input: "variable " + name, Expected: "a static shape of positive sizes", Found: fmt.Sprint(shape)}
		}
	}
	b := &graphBuilder{g: g}
	v = b.variable(name, append([]int64(nil), shape...), trainable)
	if b.err != nil {
		return nil, b.err
	}
	return v, nil
}

// variableFromGraph finds the ops of a variable added by [graphBuilder.variable]
// (graph name full) in a graph loaded from a SavedModel written by bbd; its
// Name is full without the net's scope.
func variableFromGraph(g *tf.Graph, full, scope string, trainable bool) (*Variable, error) {
	h, r, i, a := g.Operation(full), g.Operation(full+"/Read/ReadVariableOp"), g.Operation(full+"/initial_value"), g.Operation(full+"/Assign")
	if h == nil || r == nil || i == nil || a == nil {
		return nil, fmt.Errorf("variable %q: expected ops %q, %q, %q, %q in the graph, some are missing", full,
			full, full+"/Read/ReadVariableOp", full+"/initial_value", full+"/Assign")
	}
	shape, err := i.Output(0).Shape().ToSlice()
	if err != nil {
		return nil, fmt.Errorf("variable %q: shape unknown: %w", full, err)
	}
	name := full
	if scope != "" {
		name = full[len(scope)+1:]
	}
	return &Variable{Name: name, GraphName: full, Shape: shape, Trainable: trainable, Handle: h.Output(0), Value: r.Output(0), Initial: i.Output(0), Assign: a}, nil
}
