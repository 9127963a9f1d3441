package tfmodels

import (
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"

	"gonum.org/v1/hdf5"

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

// ReadKerasH5 reads a Keras HDF5 file: a full model saved with model.save
// (architecture from its "model_config" attribute, weights under
// "model_weights") or a weights-only file saved with save_weights (weights at
// the root; arch gives the architecture, nil meaning [DeepID]). When arch is
// given it is used even for a full-model file.
func ReadKerasH5(file string, arch *Architecture) (kf *KerasFile, err error) {
	f, err := h5.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	kf = &KerasFile{Path: file}

	root, err := f.OpenGroup("/")
	if err != nil {
		return nil, fmt.Errorf("%s: opening the root group: %w", file, err)
	}
	defer root.Close()
	var cfg string
	if h5.AttributeExists(root, "model_config") {
		a, err := root.OpenAttribute("model_config")
		if err != nil {
			return nil, fmt.Errorf("%s: reading model_config: %w", file, err)
		}
		err = a.Read(&cfg, nil)
		a.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: reading model_config: %w", file, err)
		}
		kf.FullModel = true
	}
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

	weightsRoot := "/"
	if f.LinkExists("model_weights") {
		weightsRoot = "/model_weights"
	}
	kf.Weights = Weights{}
	var missing []string
	for _, l := range arch.Layers {
		if !l.HasWeights() {
			continue
		}
		group := path.Join(weightsRoot, l.Name)
		if !f.LinkExists(strings.TrimPrefix(group, "/")) {
			missing = append(missing, l.Name)
			continue
		}
		datasets, err := listDatasets(f, group)
		if err != nil {
			return nil, fmt.Errorf("%s: layer %q: %w", file, l.Name, err)
		}
		for _, ds := range datasets {
			base := path.Base(ds)
			var kind string
			switch {
			case strings.HasPrefix(base, "kernel"):
				kind = "kernel"
			case strings.HasPrefix(base, "bias"):
				kind = "bias"
			default:
				return nil, &InputError{Input: file + ": " + ds, Expected: "a kernel or bias dataset", Found: base}
			}
			w, err := readFloatDataset(f, ds)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			kf.Weights[l.Name+"/"+kind] = w
		}
	}
	if len(missing) > 0 {
		found, _ := listGroups(f, weightsRoot)
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

// eachMember calls fn with the name and type of each member of group, in
// index order, while the group is open.
func eachMember(f *hdf5.File, group string, fn func(name string, typ hdf5.GType) error) error {
	g, err := f.OpenGroup(group)
	if err != nil {
		return err
	}
	defer g.Close()
	n, err := g.NumObjects()
	if err != nil {
		return err
	}
	for i := uint(0); i < n; i++ {
		name, err := g.ObjectNameByIndex(i)
		if err != nil {
			return err
		}
		typ, err := g.ObjectTypeByIndex(i)
		if err != nil {
			return err
		}
		if err := fn(name, typ); err != nil {
			return err
		}
	}
	return nil
}

// listDatasets returns the full paths of the datasets under group, recursively.
func listDatasets(f *hdf5.File, group string) ([]string, error) {
	var out []string
	err := eachMember(f, group, func(name string, typ hdf5.GType) error {
		full := path.Join(group, name)
		switch typ {
		case hdf5.H5G_DATASET:
			out = append(out, full)
		case hdf5.H5G_GROUP:
			sub, err := listDatasets(f, full)
			if err != nil {
				return err
			}
			out = append(out, sub...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}

// listGroups returns the names of the members of group (groups or not), in
// index order.
func listGroups(f *hdf5.File, group string) ([]string, error) {
	var out []string
	err := eachMember(f, group, func(name string, _ hdf5.GType) error {
		out = append(out, name)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func readFloatDataset(f *hdf5.File, name string) (*WeightTensor, error) {
	ds, err := f.OpenDataset(name)
	if err != nil {
		return nil, fmt.Errorf("opening dataset %s: %w", name, err)
	}
	defer ds.Close()
	space := ds.Space()
	defer space.Close()
	dims, _, err := space.SimpleExtentDims()
	if err != nil {
		return nil, fmt.Errorf("dataset %s: reading its shape: %w", name, err)
	}
	shape := make([]int64, len(dims))
	n := 1
	for i, d := range dims {
		shape[i] = int64(d)
		n *= int(d)
	}
	dt, err := ds.Datatype()
	if err != nil {
		return nil, fmt.Errorf("dataset %s: reading its type: %w", name, err)
	}
	class := dt.Class()
	dt.Close()
	if class != hdf5.T_FLOAT {
		return nil, &InputError{Input: "dataset " + name, Expected: "floating-point weights", Found: fmt.Sprintf("HDF5 type class %v", class)}
	}
	values := make([]float32, n)
	if n > 0 {
		if err := ds.Read(&values); err != nil {
			return nil, fmt.Errorf("reading dataset %s: %w", name, err)
		}
	}
	return &WeightTensor{Shape: shape, Values: values}, nil
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
