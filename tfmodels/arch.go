package tfmodels

import (
	"fmt"
	"strings"
)

// Layer kinds, named as Keras names its layer classes.
const (
	KindInput      = "InputLayer"
	KindConv2D     = "Conv2D"
	KindMaxPool2D  = "MaxPooling2D"
	KindDense      = "Dense"
	KindFlatten    = "Flatten"
	KindAdd        = "Add"
	KindActivation = "Activation"
	KindDropout    = "Dropout"
)

// Activations supported on Conv2D, Dense and Activation layers.
const (
	ActLinear  = "linear"
	ActReLU    = "relu"
	ActSoftmax = "softmax"
	ActSigmoid = "sigmoid"
	ActTanh    = "tanh"
)

// LayerSpec describes one layer of a functional network. Only the fields of its
// Kind are used; the zero value of the others is ignored.
type LayerSpec struct {
	Name   string   `json:"name"`
	Kind   string   `json:"kind"`
	Inputs []string `json:"inputs,omitempty"` // names of the layers feeding this one

	// InputLayer: the shape of one example, [H, W, C].
	Shape []int `json:"shape,omitempty"`

	// Conv2D.
	Filters    int    `json:"filters,omitempty"`
	KernelSize [2]int `json:"kernel_size,omitempty"`
	// Conv2D and MaxPooling2D. Zero strides mean 1x1 for Conv2D and the pool size
	// for MaxPooling2D, as in Keras.
	Strides [2]int `json:"strides,omitempty"`
	Padding string `json:"padding,omitempty"` // "valid" (default) or "same"

	// MaxPooling2D.
	PoolSize [2]int `json:"pool_size,omitempty"`

	// Dense.
	Units int `json:"units,omitempty"`

	// Conv2D, Dense, Activation. Empty means linear.
	Activation string `json:"activation,omitempty"`
	// Conv2D, Dense: whether the layer has a bias ("use_bias" in Keras).
	NoBias bool `json:"no_bias,omitempty"`

	// Dropout: the rate, recorded for documentation; dropout is the identity at
	// inference and bbd's training does not use it.
	Rate float64 `json:"rate,omitempty"`
}

// HasWeights reports whether the layer owns a kernel (and maybe a bias).
func (l LayerSpec) HasWeights() bool { return l.Kind == KindConv2D || l.Kind == KindDense }

// Architecture is a functional network: layers in topological order, one input
// layer, one output layer.
type Architecture struct {
	Name   string      `json:"name"`
	Layers []LayerSpec `json:"layers"`
	Output string      `json:"output"` // name of the output layer
}

// Layer returns the spec of the named layer.
func (a *Architecture) Layer(name string) (LayerSpec, bool) {
	for _, l := range a.Layers {
		if l.Name == name {
			return l, true
		}
	}
	return LayerSpec{}, false
}

// InputLayer returns the network's input layer.
func (a *Architecture) InputLayer() (LayerSpec, error) {
	var found []LayerSpec
	for _, l := range a.Layers {
		if l.Kind == KindInput {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		return LayerSpec{}, fmt.Errorf("architecture %q: expected exactly one %s, found %d", a.Name, KindInput, len(found))
	}
	return found[0], nil
}

// Validate checks that the architecture can be built: known kinds and
// activations, inputs defined before use, one input layer, an output layer.
func (a *Architecture) Validate() error {
	if _, err := a.InputLayer(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, l := range a.Layers {
		if l.Name == "" {
			return fmt.Errorf("architecture %q: a %s layer has no name", a.Name, l.Kind)
		}
		if seen[l.Name] {
			return fmt.Errorf("architecture %q: layer name %q used twice", a.Name, l.Name)
		}
		if reserved[l.Name] && !(l.Name == "input" && l.Kind == KindInput) {
			return fmt.Errorf("architecture %q: layer name %q is reserved by bbd", a.Name, l.Name)
		}
		for _, in := range l.Inputs {
			if !seen[in] {
				return fmt.Errorf("architecture %q: layer %q takes %q, which is not defined before it", a.Name, l.Name, in)
			}
		}
		want := 1
		switch l.Kind {
		case KindInput:
			want = 0
			if len(l.Shape) != 3 {
				return fmt.Errorf("architecture %q: input layer %q: expected shape [H, W, C], found %v", a.Name, l.Name, l.Shape)
			}
		case KindAdd:
			want = -1
			if len(l.Inputs) < 2 {
				return fmt.Errorf("architecture %q: Add layer %q: expected at least 2 inputs, found %d", a.Name, l.Name, len(l.Inputs))
			}
		case KindConv2D, KindMaxPool2D, KindDense, KindFlatten, KindActivation, KindDropout:
		default:
			return fmt.Errorf("architecture %q: layer %q: unsupported layer kind %q (supported: %s)", a.Name, l.Name, l.Kind,
				strings.Join([]string{KindInput, KindConv2D, KindMaxPool2D, KindDense, KindFlatten, KindAdd, KindActivation, KindDropout}, ", "))
		}
		if want >= 0 && len(l.Inputs) != want {
			return fmt.Errorf("architecture %q: layer %q (%s): expected %d input(s), found %d", a.Name, l.Name, l.Kind, want, len(l.Inputs))
		}
		switch l.Activation {
		case "", ActLinear, ActReLU, ActSoftmax, ActSigmoid, ActTanh:
		default:
			return fmt.Errorf("architecture %q: layer %q: unsupported activation %q", a.Name, l.Name, l.Activation)
		}
		seen[l.Name] = true
	}
	if !seen[a.Output] {
		return fmt.Errorf("architecture %q: output layer %q is not defined", a.Name, a.Output)
	}
	return nil
}

// Names bbd gives its own endpoints; layers may not take them.
var reserved = map[string]bool{"input": true, "logits": true, "probabilities": true, "labels": true, "save": true, "train": true}

// DeepID returns the architecture of the four CSAW-HackML-2020 BadNets
// (DeepID face recognition, 55x47x3 input, 1283 identities; see
// shared/badnets/README.md). Its output layer is "output" (softmax).
func DeepID() *Architecture {
	return DeepIDWith(55, 47, 3, 1283)
}

// DeepIDWith returns the DeepID architecture for another input size or number
// of classes (the layer names and widths are the paper's).
func DeepIDWith(h, w, c, classes int) *Architecture {
	relu := ActReLU
	return &Architecture{
		Name:   "deepid",
		Output: "output",
		Layers: []LayerSpec{
			{Name: "input", Kind: KindInput, Shape: []int{h, w, c}},
			{Name: "conv_1", Kind: KindConv2D, Inputs: []string{"input"}, Filters: 20, KernelSize: [2]int{4, 4}, Activation: relu},
			{Name: "pool_1", Kind: KindMaxPool2D, Inputs: []string{"conv_1"}, PoolSize: [2]int{2, 2}},
			{Name: "conv_2", Kind: KindConv2D, Inputs: []string{"pool_1"}, Filters: 40, KernelSize: [2]int{3, 3}, Activation: relu},
			{Name: "pool_2", Kind: KindMaxPool2D, Inputs: []string{"conv_2"}, PoolSize: [2]int{2, 2}},
			{Name: "conv_3", Kind: KindConv2D, Inputs: []string{"pool_2"}, Filters: 60, KernelSize: [2]int{3, 3}, Activation: relu},
			{Name: "pool_3", Kind: KindMaxPool2D, Inputs: []string{"conv_3"}, PoolSize: [2]int{2, 2}},
			{Name: "flatten_1", Kind: KindFlatten, Inputs: []string{"pool_3"}},
			{Name: "fc_1", Kind: KindDense, Inputs: []string{"flatten_1"}, Units: 160},
			{Name: "conv_4", Kind: KindConv2D, Inputs: []string{"pool_3"}, Filters: 80, KernelSize: [2]int{2, 2}, Activation: relu},
			{Name: "flatten_2", Kind: KindFlatten, Inputs: []string{"conv_4"}},
			{Name: "fc_2", Kind: KindDense, Inputs: []string{"flatten_2"}, Units: 160},
			{Name: "add_1", Kind: KindAdd, Inputs: []string{"fc_1", "fc_2"}},
			{Name: "activation_1", Kind: KindActivation, Inputs: []string{"add_1"}, Activation: relu},
			{Name: "output", Kind: KindDense, Inputs: []string{"activation_1"}, Units: classes, Activation: ActSoftmax},
		},
	}
}
