package tfmodels

import (
	"fmt"
	"strings"

	tf "github.com/galeone/tensorflow/tensorflow/go"
)

// Kinds of pruning masks, each a non-trainable variable multiplied into the
// network, ones at first. Training never changes a mask, and what a zero masks
// stays zero through training (its gradient is zero) and export.
const (
	// MaskOutput masks a layer's whole output, unit by unit: "<layer>/mask",
	// shaped like one example of the output (for DeepID's flatten_2, [960]).
	// The Bimodel paper's authors pruned flattened units this way.
	MaskOutput = "mask"
	// MaskChannel masks the channels (last dimension) of a layer's output:
	// "<layer>/channel_mask", shape [C]; the Fine-Pruning paper prunes whole
	// channels of the last convolutional layer.
	MaskChannel = "channel_mask"
	// MaskKernel masks a Conv2D or Dense kernel element by element:
	// "<layer>/kernel_mask", shaped like the kernel; the layer computes with
	// kernel * mask (weight-magnitude pruning).
	MaskKernel = "kernel_mask"
)

// NetOptions configures [AddNet]. The zero value adds a net without scope,
// masks or given weights (random ones from Seed 0), with variables.
type NetOptions struct {
	// Scope prefixes every op of the net ("badnet" gives "badnet/conv_1",
	// "badnet/probabilities", variables "badnet/conv_1/kernel"). Nets in one
	// graph need distinct scopes; empty means no prefix.
	Scope string
	// Weights are the initial values, by variable name within the net
	// ("conv_1/kernel"). They are checked here (every trainable weight, right
	// shapes, finite values) and assigned when [NewModel] opens the session.
	// Nil means random weights from Seed (Glorot-uniform kernels, zero biases,
	// as Keras). Masks not given are ones.
	Weights Weights
	// Seed of the random initial weights used when Weights is nil.
	Seed uint64
	// Masks, ChannelMasks and KernelMasks name the layers that get a mask of
	// that kind (see [MaskOutput], [MaskChannel], [MaskKernel]). Empty: none.
	Masks, ChannelMasks, KernelMasks []string
	// Frozen adds the weights and masks as constants instead of variables:
	// an inference-only net that predicts about 20% faster on CPU (oneDNN keeps
	// constant filters in its own layout). Weights must be given.
	Frozen bool
	// Source names where the weights come from (a file), for error messages.
	Source string
}

// Net is one network inside a graph: the outputs of its named layers and its
// variables, under a scope. [AddNet] adds one; a [Model] runs one or more nets
// of one graph in one session.
//
// Black-box nets (foreign SavedModels) have only Input and Probabilities.
type Net struct {
	Scope string        // "" or the prefix of every op of the net
	Arch  *Architecture // nil for black-box nets

	Input         tf.Output // the tensor the net reads: float32 [-1, H, W, C]
	Logits        tf.Output // pre-softmax scores; zero Output for black-box nets
	Probabilities tf.Output // [-1, NumClasses]
	InputShape    [3]int    // H, W, C of one example
	NumClasses    int

	layers     map[string]tf.Output
	layerOrder []string
	vars       []*Variable
	frozen     bool
	initial    Weights // values NewModel assigns; nil once assigned
	seed       uint64
}

// AddInput adds the float32 placeholder name ("input") of shape [-1, H, W, C]
// that a model's images are fed to.
func AddInput(g *tf.Graph, name string, shape [3]int) (out tf.Output, err error) {
	defer recoverTF(&err, "adding input "+name)
	b := &graphBuilder{g: g}
	out = b.placeholder(name, tf.Float, tf.MakeShape(-1, int64(shape[0]), int64(shape[1]), int64(shape[2])))
	return out, b.err
}

// AddNet builds arch into g under opts.Scope, reading input (float32 [-1, H, W,
// C] with the H, W, C of arch's input layer: the model's input placeholder, or
// any tensor computed from it, such as a trigger stamped on it). Every layer's
// output is an Identity op named "<scope>/<layer>"; "<scope>/logits" and
// "<scope>/probabilities" are the net's outputs.
//
// Several nets can share one graph and one input under distinct scopes; each
// keeps its own variables. Open a session on the graph with [NewModel], which
// assigns the initial weights.
func AddNet(g *tf.Graph, arch *Architecture, input tf.Output, opts NetOptions) (n *Net, err error) {
	defer recoverTF(&err, "adding "+arch.Name)
	if err := arch.Validate(); err != nil {
		return nil, err
	}
	inSpec, _ := arch.InputLayer()
	want := []int64{-1, int64(inSpec.Shape[0]), int64(inSpec.Shape[1]), int64(inSpec.Shape[2])}
	if input.Op == nil {
		return nil, &InputError{Input: arch.Name + " input", Expected: fmt.Sprintf("a float32 tensor %v", want), Found: "none"}
	}
	got, _ := input.Shape().ToSlice()
	if input.DataType() != tf.Float || len(got) != 4 || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		return nil, &InputError{Input: arch.Name + " input " + input.Op.Name(), Expected: fmt.Sprintf("a float32 tensor %v", want),
			Found: fmt.Sprintf("%v %v", input.DataType(), input.Shape())}
	}
	if opts.Frozen && opts.Weights == nil {
		return nil, fmt.Errorf("adding a frozen %s: expected weights, found none", arch.Name)
	}
	if opts.Scope != "" && g.Operation(scoped(opts.Scope, "probabilities")) != nil {
		return nil, fmt.Errorf("adding %s: the graph already has a net under scope %q", arch.Name, opts.Scope)
	}
	b := &graphBuilder{g: g, scope: opts.Scope}
	n = &Net{Scope: opts.Scope, Arch: arch, Input: input, InputShape: [3]int{inSpec.Shape[0], inSpec.Shape[1], inSpec.Shape[2]},
		layers: map[string]tf.Output{}, frozen: opts.Frozen, seed: opts.Seed, initial: opts.Weights}
	masks := map[string]map[string]bool{MaskOutput: {}, MaskChannel: {}, MaskKernel: {}}
	for kind, names := range map[string][]string{MaskOutput: opts.Masks, MaskChannel: opts.ChannelMasks, MaskKernel: opts.KernelMasks} {
		for _, name := range names {
			l, ok := arch.Layer(name)
			if !ok || l.Kind == KindInput {
				return nil, fmt.Errorf("%s on layer %q: no such layer in %s (layers: %s)", kind, name, arch.Name, strings.Join(arch.LayerNames()[1:], ", "))
			}
			if kind == MaskKernel && !l.HasWeights() {
				return nil, fmt.Errorf("%s on layer %q: a %s layer has no kernel", kind, name, l.Kind)
			}
			masks[kind][name] = true
		}
	}
	var preOutput tf.Output // pre-activation of the output layer
	for _, l := range arch.Layers {
		var ins []tf.Output
		for _, in := range l.Inputs {
			ins = append(ins, n.layers[in])
		}
		var out, pre tf.Output
		switch l.Kind {
		case KindInput:
			n.layers[l.Name] = input
			n.layerOrder = append(n.layerOrder, l.Name)
			continue
		case KindConv2D:
			inC, err := lastDim(ins[0], l.Name)
			if err != nil {
				return nil, err
			}
			kernel := n.kernel(b, l.Name, []int64{int64(l.KernelSize[0]), int64(l.KernelSize[1]), inC, int64(l.Filters)}, masks[MaskKernel][l.Name])
			s := strides(l.Strides, [2]int{1, 1})
			pre = b.out(l.Name+"/Conv2D", "Conv2D", map[string]interface{}{"strides": []int64{1, s[0], s[1], 1}, "padding": padding(l.Padding)}, ins[0], kernel)
			if !l.NoBias {
				bias := n.addVar(b, l.Name+"/bias", []int64{int64(l.Filters)}, true)
				pre = b.out(l.Name+"/BiasAdd", "BiasAdd", nil, pre, bias.Value)
			}
			out = activation(b, l.Name, l.Activation, pre)
		case KindDense:
			inN, err := lastDim(ins[0], l.Name)
			if err != nil {
				return nil, err
			}
			kernel := n.kernel(b, l.Name, []int64{inN, int64(l.Units)}, masks[MaskKernel][l.Name])
			pre = b.out(l.Name+"/MatMul", "MatMul", nil, ins[0], kernel)
			if !l.NoBias {
				bias := n.addVar(b, l.Name+"/bias", []int64{int64(l.Units)}, true)
				pre = b.out(l.Name+"/BiasAdd", "BiasAdd", nil, pre, bias.Value)
			}
			out = activation(b, l.Name, l.Activation, pre)
		case KindMaxPool2D:
			p := l.PoolSize
			if p == [2]int{} {
				p = [2]int{2, 2}
			}
			s := strides(l.Strides, p)
			out = b.out(l.Name+"/MaxPool", "MaxPool", map[string]interface{}{
				"ksize": []int64{1, int64(p[0]), int64(p[1]), 1}, "strides": []int64{1, s[0], s[1], 1}, "padding": padding(l.Padding)}, ins[0])
		case KindFlatten:
			size, err := exampleSize(ins[0], l.Name)
			if err != nil {
				return nil, err
			}
			shape := b.constant(l.Name+"/shape", []int32{-1, int32(size)})
			out = b.out(l.Name+"/Reshape", "Reshape", nil, ins[0], shape)
		case KindAdd:
			// A chain of AddV2 rather than one AddN: Grappler's MLIR pass rejects
			// AddN built through the C API ("has an empty op name").
			out = ins[0]
			for i, in := range ins[1:] {
				name := l.Name + "/add"
				if i > 0 {
					name = fmt.Sprintf("%s/add_%d", l.Name, i)
				}
				out = b.out(name, "AddV2", nil, out, in)
			}
		case KindActivation:
			pre = ins[0]
			out = activation(b, l.Name, l.Activation, pre)
		case KindDropout:
			out = ins[0] // identity at inference
		}
		if b.err != nil {
			return nil, fmt.Errorf("building layer %q (%s): %w", l.Name, l.Kind, b.err)
		}
		if masks[MaskChannel][l.Name] {
			c, err := lastDim(out, l.Name)
			if err != nil {
				return nil, err
			}
			mask := n.addVar(b, l.Name+"/"+MaskChannel, []int64{c}, false)
			out = b.out(l.Name+"/channel_masked", "Mul", nil, out, mask.Value)
		}
		if masks[MaskOutput][l.Name] {
			shape, err := out.Shape().ToSlice()
			if err != nil || len(shape) < 2 {
				return nil, fmt.Errorf("mask on layer %q: output shape unknown", l.Name)
			}
			mask := n.addVar(b, l.Name+"/"+MaskOutput, shape[1:], false)
			out = b.out(l.Name+"/masked", "Mul", nil, out, mask.Value)
		}
		n.layers[l.Name] = b.identity(l.Name, out)
		n.layerOrder = append(n.layerOrder, l.Name)
		if l.Name == arch.Output {
			preOutput = pre
		}
		if b.err != nil {
			return nil, fmt.Errorf("building layer %q (%s): %w", l.Name, l.Kind, b.err)
		}
	}
	outSpec, _ := arch.Layer(arch.Output)
	final := n.layers[arch.Output]
	if outSpec.Activation == ActSoftmax && !masks[MaskOutput][arch.Output] && !masks[MaskChannel][arch.Output] {
		n.Logits = b.identity("logits", preOutput)
		n.Probabilities = b.identity("probabilities", final)
	} else {
		n.Logits = b.identity("logits", final)
		n.Probabilities = b.out("probabilities", "Softmax", nil, n.Logits)
	}
	if b.err != nil {
		return nil, fmt.Errorf("building %s outputs: %w", arch.Name, b.err)
	}
	shape, err := n.Probabilities.Shape().ToSlice()
	if err != nil || len(shape) != 2 {
		return nil, fmt.Errorf("building %s: output %q must be [batch, classes], found %v", arch.Name, arch.Output, n.Probabilities.Shape())
	}
	n.NumClasses = int(shape[1])
	if opts.Frozen {
		n.initial = nil // in the graph as constants
	} else if opts.Weights != nil {
		if err := checkWeights(n.vars, opts.Weights, opts.Source); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// kernel adds a layer's kernel variable and returns what the layer multiplies
// by: the kernel, or kernel * kernel_mask.
func (n *Net) kernel(b *graphBuilder, layer string, shape []int64, masked bool) tf.Output {
	k := n.addVar(b, layer+"/kernel", shape, true)
	if !masked {
		return k.Value
	}
	mask := n.addVar(b, layer+"/"+MaskKernel, shape, false)
	return b.out(layer+"/masked_kernel", "Mul", nil, k.Value, mask.Value)
}

// addVar adds a variable of the net, or for a frozen net a constant named
// like it (masks not given are ones).
func (n *Net) addVar(b *graphBuilder, name string, shape []int64, trainable bool) *Variable {
	if !n.frozen {
		v := b.variable(name, shape, trainable)
		n.vars = append(n.vars, v)
		return v
	}
	v := &Variable{Name: name, GraphName: scoped(b.scope, name), Shape: shape, Trainable: trainable}
	w, ok := n.initial[name]
	if !ok && !trainable {
		w = randomWeights([]*Variable{v}, 0)[name]
	}
	if w == nil || !sameShape(w.Shape, shape) || len(w.Values) != v.Size() {
		if b.err == nil {
			b.err = &InputError{Input: "weight " + name, Expected: fmt.Sprintf("shape %v", shape), Found: "none or another shape"}
		}
		return v
	}
	if t, err := float32Tensor(w.Values, shape); err != nil {
		b.err = err
	} else {
		v.Value = b.out(name, "Const", map[string]interface{}{"dtype": tf.Float, "value": t})
	}
	n.vars = append(n.vars, v)
	return v
}

// Frozen reports whether the net's weights are constants (NetOptions.Frozen).
func (n *Net) Frozen() bool { return n.frozen }

// WhiteBox reports whether the net's layers and variables are reachable.
func (n *Net) WhiteBox() bool { return n.Arch != nil }

// Layer returns the output of the named layer (e.g. "pool_3"), or of the
// endpoints "input", "logits" and "probabilities".
func (n *Net) Layer(name string) (tf.Output, error) {
	switch name {
	case "input":
		return n.Input, nil
	case "probabilities":
		return n.Probabilities, nil
	case "logits":
		if n.WhiteBox() {
			return n.Logits, nil
		}
	}
	if !n.WhiteBox() {
		return tf.Output{}, fmt.Errorf("layer %q: %w", name, ErrNotWhiteBox)
	}
	out, ok := n.layers[name]
	if !ok {
		return tf.Output{}, fmt.Errorf("layer %q: no such layer (layers: %s)", name, strings.Join(n.layerOrder, ", "))
	}
	return out, nil
}

// LayerNames lists the named layers in graph order.
func (n *Net) LayerNames() []string { return append([]string(nil), n.layerOrder...) }

// Variables lists the net's variables (weights and masks) in creation order.
func (n *Net) Variables() []*Variable { return append([]*Variable(nil), n.vars...) }

// Variable returns the named variable ("conv_1/kernel", "flatten_1/mask").
func (n *Net) Variable(name string) (*Variable, error) {
	for _, v := range n.vars {
		if v.Name == name {
			return v, nil
		}
	}
	if !n.WhiteBox() {
		return nil, fmt.Errorf("variable %q: %w", name, ErrNotWhiteBox)
	}
	return nil, fmt.Errorf("variable %q: no such variable in %s", name, n.Arch.Name)
}

// Masks lists the net's masks as kind -> layers, in creation order.
func (n *Net) Masks() map[string][]string {
	out := map[string][]string{}
	for _, v := range n.vars {
		if v.Trainable {
			continue
		}
		for _, kind := range []string{MaskOutput, MaskChannel, MaskKernel} {
			if layer, ok := strings.CutSuffix(v.Name, "/"+kind); ok {
				out[kind] = append(out[kind], layer)
			}
		}
	}
	return out
}

// ParamCount is the number of trainable parameters (masks excluded), the figure
// Keras reports.
func (n *Net) ParamCount() int {
	c := 0
	for _, v := range n.vars {
		if v.Trainable {
			c += v.Size()
		}
	}
	return c
}

// LayerInfo describes one named layer.
type LayerInfo struct {
	Name   string
	Kind   string
	Shape  []int64 // output shape, -1 for the batch dimension
	Params int     // trainable parameters owned by the layer
}

// Layers describes every named layer: kind, output shape and parameters.
func (n *Net) Layers() (infos []LayerInfo, err error) {
	defer recoverTF(&err, "describing layers")
	if !n.WhiteBox() {
		return nil, ErrNotWhiteBox
	}
	for _, l := range n.Arch.Layers {
		out, ok := n.layers[l.Name]
		if !ok || out.Op == nil {
			return nil, fmt.Errorf("layer %q: not in the graph", l.Name)
		}
		shape, _ := out.Shape().ToSlice()
		info := LayerInfo{Name: l.Name, Kind: l.Kind, Shape: shape}
		for _, v := range n.vars {
			if v.Trainable && strings.HasPrefix(v.Name, l.Name+"/") {
				info.Params += v.Size()
			}
		}
		infos = append(infos, info)
	}
	return infos, nil
}
