package tfmodels

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/bbd-workbench/bbd/internal/h5"
)

// KerasFile is what a Keras HDF5 file holds: an architecture (from its
// model_config, or the one given for weights-only files) and the weights.
type KerasFile struct {
	Path         string
	Architecture *Architecture
	Weights      Weights
	FullModel    bool // the file carried a model_config
}

// Limits of ReadKerasH5, checked on the declared sizes before anything is
// allocated: a hostile file cannot make bbd allocate more than this.
const (
	// MaxWeightValues is the most weight values (all layers together) of a
	// model read from a Keras file: 2^28 float32 values, 1 GiB.
	MaxWeightValues = 1 << 28
	// MaxExampleValues is the most values one example may have at any layer
	// (the input included): 2^26 float32 values, 256 MiB.
	MaxExampleValues = 1 << 26
	// maxConfigBytes bounds the model_config attribute.
	maxConfigBytes = 16 << 20
)

// ReadKerasH5 reads a Keras HDF5 file: a full model saved with model.save
// (architecture from its "model_config" attribute, weights under
// "model_weights") or a weights-only file saved with save_weights (weights at
// the root; arch gives the architecture, nil meaning [DeepID]). When arch is
// given it is used even for a full-model file.
//
// Files are treated as hostile: each layer group must hold exactly one kernel
// dataset ("kernel", "kernel:0") and at most one bias, of the shape the
// architecture gives, checked before the values are read; weights stored as
// float16, float64 or big-endian are converted to float32 by HDF5 (a value
// beyond float32's range is an error); only hard links are followed, each
// object once; sizes are bounded by [MaxWeightValues] and [MaxExampleValues].
// The file is read by a child process (internal/h5.File): one that crashes
// the HDF5 C library, makes it loop or take gigabytes is an *h5.CrashError
// naming it, and libhdf5 never reads it in this process.
func ReadKerasH5(file string, arch *Architecture) (kf *KerasFile, err error) {
	f, err := h5.OpenFile(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	kf = &KerasFile{Path: file}

	cfg, full, err := f.StringAttribute("/", "model_config", maxConfigBytes)
	if err != nil {
		return nil, withFile(file, err)
	}
	kf.FullModel = full
	if arch == nil && cfg != "" {
		if arch, err = ParseKerasConfig([]byte(cfg)); err != nil {
			return nil, fmt.Errorf("%s: model_config: %w", file, err)
		}
	}
	if arch == nil {
		arch = DeepID()
	}
	if err := arch.Validate(); err != nil {
		return nil, err
	}
	kf.Architecture = arch
	shapes, err := WeightShapes(arch)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}

	weightsRoot := "/"
	link, err := f.Link("model_weights")
	if err != nil {
		return nil, withFile(file, err)
	}
	switch link {
	case h5.HardLink:
		weightsRoot = "/model_weights"
	case h5.SoftLink, h5.ExternalLink:
		return nil, &InputError{Input: file + ": /model_weights", Expected: "a group", Found: "a soft or external link (bbd follows hard links only)"}
	}
	kf.Weights = Weights{}
	var missing []string
	for _, l := range arch.Layers {
		if !l.HasWeights() {
			continue
		}
		group := path.Join(weightsRoot, l.Name)
		if ok, err := f.HardLinkExists(group); err != nil {
			return nil, withFile(file, err)
		} else if !ok {
			missing = append(missing, l.Name)
			continue
		}
		found := map[string]string{} // "kernel"/"bias" -> dataset
		err := f.Walk(group, func(ds string) error {
			kind := weightKind(path.Base(ds))
			if kind == "" {
				return &InputError{Input: file + ": " + ds, Expected: "a kernel or bias dataset", Found: path.Base(ds)}
			}
			if prev, dup := found[kind]; dup {
				return &InputError{Input: file + ": layer " + l.Name, Expected: "one " + kind + " dataset", Found: fmt.Sprintf("two: %s and %s", prev, ds)}
			}
			found[kind] = ds
			return nil
		})
		if err != nil {
			var ie *InputError
			if errors.As(err, &ie) || errors.Is(err, h5.ErrFile) {
				return nil, err
			}
			return nil, fmt.Errorf("%s: layer %q: %w", file, l.Name, err)
		}
		for _, kind := range []string{"kernel", "bias"} {
			ds, ok := found[kind]
			if !ok {
				continue // a missing weight is reported by Build, naming every one
			}
			name := l.Name + "/" + kind
			want, ok := shapes[name]
			if !ok {
				return nil, &InputError{Input: file + ": " + ds, Expected: fmt.Sprintf("no %s (layer %q has use_bias false)", kind, l.Name), Found: "one"}
			}
			w, err := readWeights(f, ds, want)
			if err != nil {
				return nil, withFile(file, err)
			}
			kf.Weights[name] = w
		}
	}
	if len(missing) > 0 {
		found, err := f.Members(weightsRoot)
		if errors.Is(err, h5.ErrFile) {
			return nil, err
		}
		return nil, &InputError{Input: file, Expected: fmt.Sprintf("Keras weights for the layers %s of architecture %q", strings.Join(missing, ", "), arch.Name),
			Found: fmt.Sprintf("groups [%s] under %s", strings.Join(found, ", "), weightsRoot)}
	}
	return kf, nil
}

// ImportKerasH5 reads a Keras HDF5 file (see [ReadKerasH5]) and builds it.
func ImportKerasH5(file string, arch *Architecture, opts BuildOptions) (*Model, error) {
	kf, err := ReadKerasH5(file, arch)
	if err != nil {
		return nil, err
	}
	opts.Source = file
	return Build(kf.Architecture, kf.Weights, opts)
}

// weightRE matches the names Keras gives weight datasets: "kernel", "bias"
// (Keras 3), "kernel:0" (Keras 2), "kernel_1:0" (a TF1 session's renaming).
var weightRE = regexp.MustCompile(`^(kernel|bias)(_[0-9]+)?(:[0-9]+)?$`)

// weightKind returns "kernel" or "bias" for a weight dataset's name, or "".
func weightKind(base string) string {
	if m := weightRE.FindStringSubmatch(base); m != nil {
		return m[1]
	}
	return ""
}

// withFile puts the file's name before err, unless err names it already
// (h5.ErrFile: the child crashed on it, say).
func withFile(file string, err error) error {
	if errors.Is(err, h5.ErrFile) {
		return err
	}
	return fmt.Errorf("%s: %w", file, err)
}

// readWeights reads a float dataset after checking its shape against want.
func readWeights(f *h5.File, name string, want []int64) (*WeightTensor, error) {
	hdr, err := f.Dataset(name)
	if err != nil {
		if errors.Is(err, h5.ErrFile) {
			return nil, err
		}
		return nil, fmt.Errorf("opening dataset %s: %w", name, err)
	}
	if hdr.DimsErr != "" {
		return nil, fmt.Errorf("dataset %s: reading its shape: %s", name, hdr.DimsErr)
	}
	dims := hdr.Dims
	shape := make([]int64, len(dims))
	for i, d := range dims {
		shape[i] = int64(d)
	}
	if !slices.Equal(shape, want) {
		found := fmt.Sprintf("shape %v", shape)
		if len(dims) == 0 {
			found = "a scalar"
		}
		return nil, &InputError{Input: "dataset " + name, Expected: fmt.Sprintf("shape %v", want), Found: found}
	}
	if !hdr.Float {
		return nil, &InputError{Input: "dataset " + name, Expected: "floating-point weights", Found: hdr.Type}
	}
	n, _ := product(shape, MaxWeightValues) // shape == want, checked by WeightShapes
	values, err := f.ReadFloat32(name, int(n))
	if err != nil {
		if errors.Is(err, h5.ErrFile) {
			return nil, err
		}
		return nil, &InputError{Input: "dataset " + name, Expected: "float weights within float32's range", Found: fmt.Sprintf("%s values that do not convert (%v)", hdr.Type, err)}
	}
	return &WeightTensor{Shape: shape, Values: values}, nil
}

// WeightShapes returns the shape of every weight of arch ("conv_1/kernel":
// [h, w, in, out], "fc_1/kernel": [in, out], biases [out]), as Build makes
// them, computed from the layer specs alone so that a file's weights can be
// checked before they are read. It fails on layers whose output would be
// empty, on more than [MaxWeightValues] weights and on layers of more than
// [MaxExampleValues] values per example.
func WeightShapes(arch *Architecture) (map[string][]int64, error) {
	out := map[string][]int64{}
	shapes := map[string][]int64{} // each layer's output, per example
	total := int64(0)
	add := func(name string, shape ...int64) error {
		if slices.ContainsFunc(shape, func(d int64) bool { return d <= 0 }) {
			return fmt.Errorf("architecture %q: weight %s: expected positive dimensions, found shape %v", arch.Name, name, shape)
		}
		n, ok := product(shape, MaxWeightValues)
		if !ok || total+n > MaxWeightValues {
			return fmt.Errorf("architecture %q: weight %s of shape %v: expected at most %d weight values in all", arch.Name, name, shape, MaxWeightValues)
		}
		total += n
		out[name] = shape
		return nil
	}
	for _, l := range arch.Layers {
		var in []int64
		if len(l.Inputs) > 0 {
			in = shapes[l.Inputs[0]]
		}
		image := func() error {
			if len(in) != 3 {
				return fmt.Errorf("architecture %q: layer %q (%s): expected an image input [H, W, C], found shape %v", arch.Name, l.Name, l.Kind, in)
			}
			return nil
		}
		var s []int64
		switch l.Kind {
		case KindInput:
			s = []int64{int64(l.Shape[0]), int64(l.Shape[1]), int64(l.Shape[2])}
		case KindConv2D:
			if err := image(); err != nil {
				return nil, err
			}
			k, st := l.KernelSize, l.Strides
			if st == [2]int{} {
				st = [2]int{1, 1}
			}
			if err := add(l.Name+"/kernel", int64(k[0]), int64(k[1]), in[2], int64(l.Filters)); err != nil {
				return nil, err
			}
			if !l.NoBias {
				if err := add(l.Name+"/bias", int64(l.Filters)); err != nil {
					return nil, err
				}
			}
			s = []int64{windowOut(in[0], k[0], st[0], l.Padding), windowOut(in[1], k[1], st[1], l.Padding), int64(l.Filters)}
		case KindMaxPool2D:
			if err := image(); err != nil {
				return nil, err
			}
			p := l.PoolSize
			if p == [2]int{} {
				p = [2]int{2, 2}
			}
			st := l.Strides
			if st == [2]int{} {
				st = p
			}
			s = []int64{windowOut(in[0], p[0], st[0], l.Padding), windowOut(in[1], p[1], st[1], l.Padding), in[2]}
		case KindDense:
			if len(in) == 0 {
				return nil, fmt.Errorf("architecture %q: layer %q: input shape unknown", arch.Name, l.Name)
			}
			if err := add(l.Name+"/kernel", in[len(in)-1], int64(l.Units)); err != nil {
				return nil, err
			}
			if !l.NoBias {
				if err := add(l.Name+"/bias", int64(l.Units)); err != nil {
					return nil, err
				}
			}
			s = append(slices.Clone(in[:len(in)-1]), int64(l.Units))
		case KindFlatten:
			n, ok := product(in, MaxExampleValues)
			if !ok {
				return nil, fmt.Errorf("architecture %q: layer %q: expected at most %d values per example, found shape %v", arch.Name, l.Name, MaxExampleValues, in)
			}
			s = []int64{n}
		default: // Add, Activation, Dropout keep their input's shape
			s = in
		}
		if n, ok := product(s, MaxExampleValues); !ok || n == 0 {
			return nil, fmt.Errorf("architecture %q: layer %q (%s): output shape %v per example: expected between 1 and %d values", arch.Name, l.Name, l.Kind, s, MaxExampleValues)
		}
		shapes[l.Name] = s
	}
	return out, nil
}

// windowOut is the output size of a convolution or pooling window of size k
// and stride s over n inputs (Keras "valid" or "same" padding); 0 when the
// window does not fit or the sizes are not positive.
func windowOut(n int64, k, s int, padding string) int64 {
	if n <= 0 || k <= 0 || s <= 0 {
		return 0
	}
	if strings.EqualFold(padding, "same") {
		return (n + int64(s) - 1) / int64(s)
	}
	if n < int64(k) {
		return 0
	}
	return (n-int64(k))/int64(s) + 1
}

// product multiplies positive dimensions, reporting false if one is not
// positive or the product exceeds limit (checked before it can overflow).
func product(dims []int64, limit int64) (int64, bool) {
	n := int64(1)
	for _, d := range dims {
		if d <= 0 || d > limit/n {
			return 0, false
		}
		n *= d
	}
	return n, true
}

// ParseKerasConfig turns a Keras model_config JSON (Keras 2 or 3; functional
// "Model"/"Functional" or "Sequential") into an Architecture. Supported layers:
// InputLayer, Conv2D, MaxPooling2D, Dense, Flatten, Add, Activation, Dropout.
func ParseKerasConfig(js []byte) (*Architecture, error) {
	var top struct {
		ClassName string          `json:"class_name"`
		Config    json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(js, &top); err != nil {
		return nil, fmt.Errorf("expected Keras model JSON: %w", err)
	}
	var cfg struct {
		Name   string `json:"name"`
		Layers []struct {
			ClassName    string                     `json:"class_name"`
			Name         string                     `json:"name"`
			Config       map[string]json.RawMessage `json:"config"`
			InboundNodes json.RawMessage            `json:"inbound_nodes"`
		} `json:"layers"`
		OutputLayers json.RawMessage `json:"output_layers"`
	}
	if err := json.Unmarshal(top.Config, &cfg); err != nil {
		return nil, fmt.Errorf("expected a Keras model config with layers: %w", err)
	}
	sequential := top.ClassName == "Sequential"
	switch top.ClassName {
	case "Model", "Functional", "Sequential":
	default:
		return nil, fmt.Errorf("expected a Keras Model, Functional or Sequential config, found class %q", top.ClassName)
	}
	arch := &Architecture{Name: cfg.Name}
	prev := ""
	for i, l := range cfg.Layers {
		name := l.Name
		if name == "" {
			_ = json.Unmarshal(l.Config["name"], &name)
		}
		spec := LayerSpec{Name: name, Kind: l.ClassName}
		get := func(key string, v interface{}) bool {
			raw, ok := l.Config[key]
			if !ok || string(raw) == "null" {
				return false
			}
			return json.Unmarshal(raw, v) == nil
		}
		var shape []*int
		if get("batch_input_shape", &shape) || get("batch_shape", &shape) {
			if len(shape) == 4 && shape[1] != nil && shape[2] != nil && shape[3] != nil {
				if l.ClassName != KindInput && sequential && i == 0 {
					// Keras 2 Sequential: the first layer carries the input shape.
					arch.Layers = append(arch.Layers, LayerSpec{Name: "input", Kind: KindInput, Shape: []int{*shape[1], *shape[2], *shape[3]}})
					prev = "input"
				}
				spec.Shape = []int{*shape[1], *shape[2], *shape[3]}
			}
		}
		var df string
		if get("data_format", &df) && df != "" && df != "channels_last" {
			return nil, fmt.Errorf("layer %q: expected data_format channels_last, found %q", name, df)
		}
		var dil []int
		if get("dilation_rate", &dil) && (len(dil) != 2 || dil[0] != 1 || dil[1] != 1) {
			return nil, fmt.Errorf("layer %q: dilated convolutions are not supported (dilation_rate %v)", name, dil)
		}
		var act interface{}
		if get("activation", &act) {
			s, ok := act.(string)
			if !ok {
				return nil, fmt.Errorf("layer %q: expected the activation as a name, found %v", name, act)
			}
			spec.Activation = s
		}
		useBias := true
		get("use_bias", &useBias)
		spec.NoBias = !useBias
		get("filters", &spec.Filters)
		get("units", &spec.Units)
		get("padding", &spec.Padding)
		get("rate", &spec.Rate)
		pair := func(key string, dst *[2]int) error {
			var v interface{}
			if !get(key, &v) {
				return nil
			}
			switch t := v.(type) {
			case float64:
				*dst = [2]int{int(t), int(t)}
			case []interface{}:
				if len(t) != 2 {
					return fmt.Errorf("layer %q: expected %s of 2 values, found %v", name, key, t)
				}
				a, ok1 := t[0].(float64)
				b, ok2 := t[1].(float64)
				if !ok1 || !ok2 {
					return fmt.Errorf("layer %q: expected %s of 2 numbers, found %v", name, key, t)
				}
				*dst = [2]int{int(a), int(b)}
			default:
				return fmt.Errorf("layer %q: unexpected %s %v", name, key, v)
			}
			return nil
		}
		for key, dst := range map[string]*[2]int{"kernel_size": &spec.KernelSize, "strides": &spec.Strides, "pool_size": &spec.PoolSize} {
			if err := pair(key, dst); err != nil {
				return nil, err
			}
		}
		if l.ClassName == KindInput {
			spec.Shape = append([]int(nil), spec.Shape...)
			if len(spec.Shape) != 3 {
				return nil, fmt.Errorf("input layer %q: expected an input shape [H, W, C], found none", name)
			}
		} else if sequential {
			if prev != "" {
				spec.Inputs = []string{prev}
			}
			spec.Shape = nil
		} else {
			ins, err := inboundLayers(l.InboundNodes)
			if err != nil {
				return nil, fmt.Errorf("layer %q: %w", name, err)
			}
			spec.Inputs = ins
			spec.Shape = nil
		}
		arch.Layers = append(arch.Layers, spec)
		prev = name
	}
	if sequential {
		arch.Output = prev
	} else {
		outs, err := layerRefs(cfg.OutputLayers)
		if err != nil || len(outs) != 1 {
			return nil, fmt.Errorf("expected one output layer, found %s", string(cfg.OutputLayers))
		}
		arch.Output = outs[0]
	}
	if arch.Name == "" {
		arch.Name = "keras_model"
	}
	return arch, arch.Validate()
}

// inboundLayers extracts the names of the layers feeding a layer from Keras 2
// ([[["name", 0, 0, {}], ...]]) or Keras 3 ([{"args": [...keras_history...]}])
// inbound_nodes.
func inboundLayers(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" || string(raw) == "[]" {
		return nil, fmt.Errorf("expected inbound nodes, found none")
	}
	var nodes []json.RawMessage
	if err := json.Unmarshal(raw, &nodes); err != nil {
		return nil, fmt.Errorf("reading inbound_nodes: %w", err)
	}
	if len(nodes) != 1 {
		return nil, fmt.Errorf("expected a layer used once, found %d inbound nodes (shared layers are not supported)", len(nodes))
	}
	var v interface{}
	_ = json.Unmarshal(nodes[0], &v)
	var names []string
	collectHistory(v, &names)
	if len(names) == 0 {
		var k2 [][]interface{}
		if err := json.Unmarshal(nodes[0], &k2); err == nil {
			for _, ref := range k2 {
				if len(ref) > 0 {
					if s, ok := ref[0].(string); ok {
						names = append(names, s)
					}
				}
			}
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no input layer found in inbound_nodes %s", string(raw))
	}
	return names, nil
}

// collectHistory finds Keras 3 "keras_history": ["layer", node, index] entries.
func collectHistory(v interface{}, names *[]string) {
	switch t := v.(type) {
	case map[string]interface{}:
		if h, ok := t["keras_history"].([]interface{}); ok && len(h) > 0 {
			if s, ok := h[0].(string); ok {
				*names = append(*names, s)
				return
			}
		}
		for _, k := range slices.Sorted(maps.Keys(t)) { // "args" before "kwargs"
			collectHistory(t[k], names)
		}
	case []interface{}:
		for _, e := range t {
			collectHistory(e, names)
		}
	}
}

// layerRefs reads [["name", 0, 0], ...] (or a single ["name", 0, 0]).
func layerRefs(raw json.RawMessage) ([]string, error) {
	var many [][]interface{}
	if err := json.Unmarshal(raw, &many); err == nil {
		var out []string
		for _, r := range many {
			if len(r) > 0 {
				if s, ok := r[0].(string); ok {
					out = append(out, s)
				}
			}
		}
		return out, nil
	}
	var one []interface{}
	if err := json.Unmarshal(raw, &one); err != nil || len(one) == 0 {
		return nil, fmt.Errorf("unexpected output_layers %s", string(raw))
	}
	s, _ := one[0].(string)
	return []string{s}, nil
}
