package tfmodels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	tf "github.com/galeone/tensorflow/tensorflow/go"
)

// Weights maps variable names ("conv_1/kernel") to their values.
type Weights map[string]*WeightTensor

// WeightTensor is one variable's value: a shape and row-major float32 data
// (TensorFlow layouts: conv kernels [h, w, in, out], dense kernels [in, out]).
type WeightTensor struct {
	Shape  []int64
	Values []float32
}

// BuildOptions configures [Build]. The zero value is usable: see each field.
type BuildOptions struct {
	// Masks lists layers whose output is multiplied by a mask variable
	// "<layer>/mask" (ones at first) shaped like one example of the output.
	// Pruning defences set it; training keeps masked units at zero. Zero: none.
	Masks []string
	// Seed for the random initial weights used where Weights has none
	// (Glorot-uniform kernels, zero biases, as Keras). Ignored when every
	// weight is given.
	Seed uint64
	// Source names where the weights come from (a file), for error messages.
	Source string
	// BatchSize for inference; zero means 128.
	BatchSize int
	// Session configures the TensorFlow session (device placement, threads);
	// nil means TensorFlow's defaults: every device the library supports.
	Session *tf.SessionOptions
	// Frozen builds the weights (and masks) as constants instead of variables:
	// an inference-only model (SetWeights, Train and export are refused) that
	// predicts about 20% faster on CPU, since oneDNN can keep constant filters
	// in its own layout. Weights must then be given. See Model.Freeze.
	Frozen bool
}

// DefaultBuildOptions returns the options used when none are given.
func DefaultBuildOptions() BuildOptions { return BuildOptions{BatchSize: 128} }

// Build builds arch as a TensorFlow graph, opens a session and initialises the
// variables: from weights where given, otherwise at random from opts.Seed.
// Missing weights are an error unless weights is nil (all random).
func Build(arch *Architecture, weights Weights, opts BuildOptions) (m *Model, err error) {
	defer recoverTF(&err, "building "+arch.Name)
	if err := arch.Validate(); err != nil {
		return nil, err
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 128
	}
	if opts.Frozen && weights == nil {
		return nil, fmt.Errorf("building a frozen %s: expected weights, found none", arch.Name)
	}
	b := &graphBuilder{g: tf.NewGraph()}
	m = &Model{Graph: b.g, Arch: arch, BatchSize: opts.BatchSize, layers: map[string]tf.Output{},
		sessionOptions: opts.Session}
	if opts.Frozen {
		m.frozen = weights
	}
	masks := map[string]bool{}
	for _, name := range opts.Masks {
		if _, ok := arch.Layer(name); !ok {
			return nil, fmt.Errorf("mask on layer %q: no such layer in %s (layers: %s)", name, arch.Name, strings.Join(arch.LayerNames(), ", "))
		}
		masks[name] = true
	}
	var preOutput tf.Output // pre-activation of the output layer
	for _, l := range arch.Layers {
		var ins []tf.Output
		for _, in := range l.Inputs {
			ins = append(ins, m.layers[in])
		}
		var out, pre tf.Output
		switch l.Kind {
		case KindInput:
			out = b.placeholder("input", tf.Float, tf.MakeShape(-1, int64(l.Shape[0]), int64(l.Shape[1]), int64(l.Shape[2])))
			m.Input = out
			m.InputShape = [3]int{l.Shape[0], l.Shape[1], l.Shape[2]}
			m.layers[l.Name] = out
			m.layerOrder = append(m.layerOrder, l.Name)
			continue
		case KindConv2D:
			inC, err := lastDim(ins[0], l.Name)
			if err != nil {
				return nil, err
			}
			kernel := m.addVar(b, l.Name+"/kernel", []int64{int64(l.KernelSize[0]), int64(l.KernelSize[1]), inC, int64(l.Filters)}, true)
			s := strides(l.Strides, [2]int{1, 1})
			pre = b.out(l.Name+"/Conv2D", "Conv2D", map[string]interface{}{"strides": []int64{1, s[0], s[1], 1}, "padding": padding(l.Padding)}, ins[0], kernel.Value)
			if !l.NoBias {
				bias := m.addVar(b, l.Name+"/bias", []int64{int64(l.Filters)}, true)
				pre = b.out(l.Name+"/BiasAdd", "BiasAdd", nil, pre, bias.Value)
			}
			out = activation(b, l.Name, l.Activation, pre)
		case KindDense:
			inN, err := lastDim(ins[0], l.Name)
			if err != nil {
				return nil, err
			}
			kernel := m.addVar(b, l.Name+"/kernel", []int64{inN, int64(l.Units)}, true)
			pre = b.out(l.Name+"/MatMul", "MatMul", nil, ins[0], kernel.Value)
			if !l.NoBias {
				bias := m.addVar(b, l.Name+"/bias", []int64{int64(l.Units)}, true)
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
			n, err := exampleSize(ins[0], l.Name)
			if err != nil {
				return nil, err
			}
			shape := b.constant(l.Name+"/shape", []int32{-1, int32(n)})
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
		if masks[l.Name] {
			shape, err := out.Shape().ToSlice()
			if err != nil || len(shape) < 2 {
				return nil, fmt.Errorf("mask on layer %q: output shape unknown", l.Name)
			}
			mask := m.addVar(b, l.Name+"/mask", shape[1:], false)
			out = b.out(l.Name+"/masked", "Mul", nil, out, mask.Value)
		}
		m.layers[l.Name] = b.identity(l.Name, out)
		m.layerOrder = append(m.layerOrder, l.Name)
		if l.Name == arch.Output {
			preOutput = pre
		}
		if b.err != nil {
			return nil, fmt.Errorf("building layer %q (%s): %w", l.Name, l.Kind, b.err)
		}
	}
	outSpec, _ := arch.Layer(arch.Output)
	final := m.layers[arch.Output]
	if outSpec.Activation == ActSoftmax && !masks[arch.Output] {
		m.Logits = b.identity("logits", preOutput)
		m.Probabilities = b.identity("probabilities", final)
	} else {
		m.Logits = b.identity("logits", final)
		m.Probabilities = b.out("probabilities", "Softmax", nil, m.Logits)
	}
	if b.err != nil {
		return nil, fmt.Errorf("building %s outputs: %w", arch.Name, b.err)
	}
	shape, err := m.Probabilities.Shape().ToSlice()
	if err != nil || len(shape) != 2 {
		return nil, fmt.Errorf("building %s: output %q must be [batch, classes], found %v", arch.Name, arch.Output, m.Probabilities.Shape())
	}
	m.NumClasses = int(shape[1])

	// Check the given weights before opening a session.
	if weights != nil {
		if err := checkWeights(m.vars, weights, opts.Source); err != nil {
			return nil, err
		}
	}
	if m.Session, err = tf.NewSession(m.Graph, opts.Session); err != nil {
		return nil, fmt.Errorf("opening a TensorFlow session for %s: %w", arch.Name, err)
	}
	if m.Frozen() {
		return m, nil
	}
	init := randomWeights(m.vars, opts.Seed)
	for name, w := range weights {
		init[name] = w
	}
	if err := m.SetWeights(init); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

func (m *Model) addVar(b *graphBuilder, name string, shape []int64, trainable bool) *Variable {
	var v *Variable
	if m.frozen == nil {
		v = b.variable(name, shape, trainable)
	} else {
		// A constant named like the variable; masks not given are ones.
		w, ok := m.frozen[name]
		if !ok && !trainable {
			w = randomWeights([]*Variable{{Name: name, Shape: shape}}, 0)[name]
		}
		v = &Variable{Name: name, Shape: shape, Trainable: trainable}
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
	}
	m.vars = append(m.vars, v)
	return v
}

// Frozen reports whether the model's weights are constants (BuildOptions.Frozen).
func (m *Model) Frozen() bool { return m.frozen != nil }

// Freeze returns an inference-only copy of a white-box model with its current
// weights and masks as constants (see BuildOptions.Frozen), in a session of
// its own: Close both. bbd's batch inference (bbd predict) uses it.
func (m *Model) Freeze() (*Model, error) {
	if !m.WhiteBox() {
		return nil, ErrNotWhiteBox
	}
	if m.Frozen() {
		return nil, fmt.Errorf("freezing %s: the model is frozen already", m.Arch.Name)
	}
	w, err := m.GetWeights()
	if err != nil {
		return nil, err
	}
	var masks []string
	for _, v := range m.vars {
		if layer, ok := strings.CutSuffix(v.Name, "/mask"); ok && !v.Trainable {
			masks = append(masks, layer)
		}
	}
	return Build(m.Arch, w, BuildOptions{Masks: masks, BatchSize: m.BatchSize, Session: m.sessionOptions, Frozen: true})
}

// checkWeights verifies that weights has every trainable variable of vars with
// the right shape, and nothing else.
func checkWeights(vars []*Variable, weights Weights, source string) error {
	if source == "" {
		source = "weights"
	}
	known := map[string]bool{}
	var missing []string
	for _, v := range vars {
		known[v.Name] = true
		w, ok := weights[v.Name]
		if !ok {
			if v.Trainable {
				missing = append(missing, v.Name)
			}
			continue
		}
		if !sameShape(w.Shape, v.Shape) || len(w.Values) != v.Size() {
			return &InputError{Input: source + ": " + v.Name, Expected: fmt.Sprintf("shape %v", v.Shape), Found: fmt.Sprintf("shape %v (%d values)", w.Shape, len(w.Values))}
		}
		if i := firstNonFinite(w.Values); i >= 0 {
			return &InputError{Input: source + ": " + v.Name, Expected: "finite values", Found: fmt.Sprint(w.Values[i])}
		}
	}
	if len(missing) > 0 {
		return &InputError{Input: source, Expected: "weights " + strings.Join(missing, ", "), Found: "none for them"}
	}
	for name := range weights {
		if !known[name] {
			return &InputError{Input: source + ": " + name, Expected: "a variable of the architecture", Found: "a weight with no variable"}
		}
	}
	return nil
}

func sameShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// randomWeights initialises like Keras: Glorot-uniform kernels, zero biases,
// masks of ones. Deterministic in seed.
func randomWeights(vars []*Variable, seed uint64) Weights {
	rng := rand.New(rand.NewPCG(seed, 0x62626421))
	w := Weights{}
	for _, v := range vars {
		vals := make([]float32, v.Size())
		switch {
		case strings.HasSuffix(v.Name, "/kernel"):
			fanIn, fanOut := v.Shape[len(v.Shape)-2], v.Shape[len(v.Shape)-1]
			receptive := int64(1)
			for _, d := range v.Shape[:len(v.Shape)-2] {
				receptive *= d
			}
			limit := math.Sqrt(6 / float64((fanIn+fanOut)*receptive))
			for i := range vals {
				vals[i] = float32((rng.Float64()*2 - 1) * limit)
			}
		case strings.HasSuffix(v.Name, "/mask"):
			for i := range vals {
				vals[i] = 1
			}
		}
		w[v.Name] = &WeightTensor{Shape: append([]int64(nil), v.Shape...), Values: vals}
	}
	return w
}

func activation(b *graphBuilder, layer, act string, x tf.Output) tf.Output {
	switch act {
	case ActReLU:
		return b.out(layer+"/Relu", "Relu", nil, x)
	case ActSoftmax:
		return b.out(layer+"/Softmax", "Softmax", nil, x)
	case ActSigmoid:
		return b.out(layer+"/Sigmoid", "Sigmoid", nil, x)
	case ActTanh:
		return b.out(layer+"/Tanh", "Tanh", nil, x)
	}
	return x
}

func padding(p string) string {
	if strings.EqualFold(p, "same") {
		return "SAME"
	}
	return "VALID"
}

func strides(s, def [2]int) [2]int64 {
	if s == [2]int{} {
		s = def
	}
	return [2]int64{int64(s[0]), int64(s[1])}
}

func lastDim(x tf.Output, layer string) (int64, error) {
	shape, err := x.Shape().ToSlice()
	if err != nil || len(shape) == 0 || shape[len(shape)-1] < 0 {
		return 0, fmt.Errorf("layer %q: the last dimension of its input is unknown (%v)", layer, x.Shape())
	}
	return shape[len(shape)-1], nil
}

func exampleSize(x tf.Output, layer string) (int64, error) {
	shape, err := x.Shape().ToSlice()
	if err != nil || len(shape) < 2 {
		return 0, fmt.Errorf("layer %q: input shape unknown (%v)", layer, x.Shape())
	}
	n := int64(1)
	for _, d := range shape[1:] {
		if d < 0 {
			return 0, fmt.Errorf("layer %q: input shape not static (%v)", layer, x.Shape())
		}
		n *= d
	}
	return n, nil
}

// LayerNames lists the layer names in order.
func (a *Architecture) LayerNames() []string {
	names := make([]string, len(a.Layers))
	for i, l := range a.Layers {
		names[i] = l.Name
	}
	return names
}
