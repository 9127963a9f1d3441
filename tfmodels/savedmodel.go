package tfmodels

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	tf "github.com/galeone/tensorflow/tensorflow/go"
	varpb "github.com/galeone/tensorflow/tensorflow/go/core/framework/variable_go_proto"
	pb "github.com/galeone/tensorflow/tensorflow/go/core/protobuf/for_core_protos_go_proto"
	"google.golang.org/protobuf/proto"
)

// NetsCollection is the MetaGraphDef collection in which bbd records the nets
// of a SavedModel it writes, one JSON [NetRecord] each, in order (the model's
// own net first): what makes a reload white-box.
const NetsCollection = "bbd_nets"

// ArchitectureCollection is the collection of SavedModels written by earlier
// bbd versions: one net, unscoped, its Architecture as JSON. Still read.
const ArchitectureCollection = "bbd_architecture"

// NetRecord is what a SavedModel records of each net (collection
// [NetsCollection]).
type NetRecord struct {
	Scope        string        `json:"scope"`
	Input        string        `json:"input"` // the tensor the net reads, "input:0"
	Architecture *Architecture `json:"architecture"`
}

// Record returns the net's NetRecord.
func (n *Net) Record() NetRecord {
	return NetRecord{Scope: n.Scope, Input: fmt.Sprintf("%s:%d", n.Input.Op.Name(), n.Input.Index), Architecture: n.Arch}
}

// LoadOptions configures LoadSavedModel. The zero value is usable.
type LoadOptions struct {
	// Tag of the MetaGraph to load; empty means "serve".
	Tag string
	// BatchSize for inference; zero means [DefaultBatchSize].
	BatchSize int
	// Session options (device placement, threads); nil means defaults.
	Session *tf.SessionOptions
}

// LoadSavedModel loads the SavedModel in dir. A SavedModel written by bbd
// comes back white-box: every net it holds (each under its scope), with named
// layers, variables and masks as built; the first is the model's own, the
// others are reached with [Model.View]. Any other (Keras,
// tf.saved_model.save) is black-box: its "serving_default" signature must take
// one float32 [-1, H, W, C] image input and give probabilities (the output
// named "probabilities", or "output_0", or its only output). Either way
// m.Outputs holds every output of serving_default.
//
// The session is opened with the Go bindings' LoadSavedModel rather than
// tfgo.LoadModel, which panics on errors and can only be closed by a finalizer.
func LoadSavedModel(dir string, opts LoadOptions) (m *Model, err error) {
	defer recoverTF(&err, "loading SavedModel "+dir)
	mg, err := ReadMetaGraph(dir, opts.Tag)
	if err != nil {
		return nil, err
	}
	tag := mg.GetMetaInfoDef().GetTags()[0]
	sig, ok := mg.SignatureDef["serving_default"]
	if !ok {
		found := slices.Sorted(maps.Keys(mg.SignatureDef))
		return nil, &InputError{Input: dir, Expected: "a SavedModel with a serving_default signature", Found: fmt.Sprintf("signatures [%s]", strings.Join(found, ", "))}
	}
	if len(sig.Inputs) != 1 {
		return nil, &InputError{Input: dir + " serving_default", Expected: "one input (an image batch)", Found: fmt.Sprintf("%d inputs", len(sig.Inputs))}
	}
	records, err := netRecords(dir, mg)
	if err != nil {
		return nil, err
	}
	if n := len(mg.CollectionDef["variables"].GetBytesList().GetValue()); n > 0 {
		if _, err := os.Stat(filepath.Join(dir, "variables", "variables.index")); err != nil {
			return nil, &InputError{Input: dir, Expected: fmt.Sprintf("variables/variables.index (the SavedModel declares %d variables)", n), Found: "none"}
		}
	}
	saved, err := tf.LoadSavedModel(dir, []string{tag}, opts.Session)
	if err != nil {
		return nil, fmt.Errorf("loading SavedModel %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			saved.Session.Close()
		}
	}()
	var in *pb.TensorInfo
	for _, ti := range sig.Inputs {
		in = ti
	}
	input, err := outputByName(saved.Graph, in.GetName())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	var nets []*Net
	if records != nil {
		nets, err = attachNets(dir, saved.Graph, records, mg)
	} else {
		var n *Net
		n, err = attachSignature(dir, saved.Graph, input, in, sig)
		nets = []*Net{n}
	}
	if err != nil {
		return nil, err
	}
	m = newModel(saved.Graph, saved.Session, input, nets, ModelOptions{BatchSize: opts.BatchSize, Session: opts.Session})
	m.Outputs = map[string]tf.Output{}
	for key, ti := range sig.Outputs {
		if m.Outputs[key], err = outputByName(saved.Graph, ti.GetName()); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
	}
	return m, nil
}

// netRecords returns the nets a bbd SavedModel records, or nil for a foreign one.
func netRecords(dir string, mg *pb.MetaGraphDef) ([]NetRecord, error) {
	if coll, ok := mg.CollectionDef[NetsCollection]; ok {
		var records []NetRecord
		for _, raw := range coll.GetBytesList().GetValue() {
			var r NetRecord
			if err := json.Unmarshal(raw, &r); err != nil || r.Architecture == nil {
				return nil, &InputError{Input: dir, Expected: "bbd net records (JSON) in collection " + NetsCollection, Found: fmt.Sprintf("%.80q", raw)}
			}
			records = append(records, r)
		}
		if len(records) == 0 {
			return nil, &InputError{Input: dir, Expected: "at least one net in collection " + NetsCollection, Found: "none"}
		}
		return records, nil
	}
	coll, ok := mg.CollectionDef[ArchitectureCollection]
	if !ok {
		return nil, nil
	}
	list := coll.GetBytesList().GetValue()
	if len(list) != 1 {
		return nil, &InputError{Input: dir, Expected: "one architecture in collection " + ArchitectureCollection, Found: fmt.Sprintf("%d entries", len(list))}
	}
	arch := &Architecture{}
	if err := json.Unmarshal(list[0], arch); err != nil {
		return nil, &InputError{Input: dir, Expected: "a bbd architecture (JSON)", Found: err.Error()}
	}
	return []NetRecord{{Input: "input:0", Architecture: arch}}, nil
}

// attachNets finds the recorded nets' layers and variables in a loaded graph.
// Each variable of the SavedModel goes to the net with the longest scope that
// prefixes its name.
func attachNets(dir string, g *tf.Graph, records []NetRecord, mg *pb.MetaGraphDef) ([]*Net, error) {
	get := func(name string) (tf.Output, error) {
		out, err := outputByName(g, name)
		if err != nil {
			return tf.Output{}, &InputError{Input: dir, Expected: fmt.Sprintf("a tensor %q in the bbd graph", name), Found: "none"}
		}
		return out, nil
	}
	var nets []*Net
	for _, r := range records {
		if err := r.Architecture.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		n := &Net{Scope: r.Scope, Arch: r.Architecture, layers: map[string]tf.Output{}}
		var err error
		if n.Input, err = get(r.Input); err != nil {
			return nil, err
		}
		if n.Logits, err = get(scoped(r.Scope, "logits")); err != nil {
			return nil, err
		}
		if n.Probabilities, err = get(scoped(r.Scope, "probabilities")); err != nil {
			return nil, err
		}
		for _, l := range r.Architecture.Layers {
			if l.Kind == KindInput {
				n.layers[l.Name] = n.Input
				n.InputShape = [3]int{l.Shape[0], l.Shape[1], l.Shape[2]}
			} else if n.layers[l.Name], err = get(scoped(r.Scope, l.Name)); err != nil {
				return nil, err
			}
			n.layerOrder = append(n.layerOrder, l.Name)
		}
		shape, err := n.Probabilities.Shape().ToSlice()
		if err != nil || len(shape) != 2 || shape[1] <= 0 {
			return nil, &InputError{Input: dir, Expected: "probabilities of shape [batch, classes]", Found: n.Probabilities.Shape().String()}
		}
		n.NumClasses = int(shape[1])
		nets = append(nets, n)
	}
	for _, raw := range mg.CollectionDef["variables"].GetBytesList().GetValue() {
		vd := &varpb.VariableDef{}
		if err := proto.Unmarshal(raw, vd); err != nil {
			return nil, &InputError{Input: dir, Expected: "VariableDef protos in the variables collection", Found: err.Error()}
		}
		full := strings.TrimSuffix(vd.VariableName, ":0")
		var owner *Net
		for _, n := range nets {
			if (n.Scope == "" || strings.HasPrefix(full, n.Scope+"/")) && (owner == nil || len(n.Scope) > len(owner.Scope)) {
				owner = n
			}
		}
		if owner == nil {
			continue // a variable of no net (a defence's own)
		}
		v, err := variableFromGraph(g, full, owner.Scope, vd.Trainable)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		owner.vars = append(owner.vars, v)
	}
	return nets, nil
}

// attachSignature sets up a black-box net through the serving_default signature.
func attachSignature(dir string, g *tf.Graph, input tf.Output, in *pb.TensorInfo, sig *pb.SignatureDef) (*Net, error) {
	var out *pb.TensorInfo
	for _, key := range []string{"probabilities", "output_0", "output"} {
		if ti, ok := sig.Outputs[key]; ok {
			out = ti
			break
		}
	}
	if out == nil && len(sig.Outputs) == 1 {
		for _, ti := range sig.Outputs {
			out = ti
		}
	}
	if out == nil {
		keys := slices.Sorted(maps.Keys(sig.Outputs))
		return nil, &InputError{Input: dir + " serving_default", Expected: `an output "probabilities" or "output_0", or a single output`, Found: fmt.Sprintf("outputs [%s]", strings.Join(keys, ", "))}
	}
	n := &Net{Input: input, layers: map[string]tf.Output{}}
	var err error
	if n.Probabilities, err = outputByName(g, out.GetName()); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	dims := in.GetTensorShape().GetDim()
	if len(dims) != 4 || dims[1].Size <= 0 || dims[2].Size <= 0 || dims[3].Size <= 0 {
		return nil, &InputError{Input: dir + " serving_default input", Expected: "shape [-1, H, W, C] with known H, W, C", Found: fmt.Sprint(in.GetTensorShape())}
	}
	if in.Dtype != 1 { // DT_FLOAT
		return nil, &InputError{Input: dir + " serving_default input", Expected: "float32", Found: in.Dtype.String()}
	}
	n.InputShape = [3]int{int(dims[1].Size), int(dims[2].Size), int(dims[3].Size)}
	od := out.GetTensorShape().GetDim()
	if len(od) != 2 || od[1].Size <= 0 {
		return nil, &InputError{Input: dir + " serving_default output", Expected: "shape [-1, classes]", Found: fmt.Sprint(out.GetTensorShape())}
	}
	n.NumClasses = int(od[1].Size)
	return n, nil
}

// ReadMetaGraph reads dir/saved_model.pb and returns its MetaGraph tagged tag
// ("serve" when empty), checking that dir is a SavedModel folder. It is the one
// parser of saved_model.pb in bbd.
func ReadMetaGraph(dir, tag string) (*pb.MetaGraphDef, error) {
	if tag == "" {
		tag = "serve"
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, &InputError{Input: dir, Expected: "a SavedModel directory", Found: "no such directory"}
	}
	if !st.IsDir() {
		return nil, &InputError{Input: dir, Expected: "a SavedModel directory", Found: "a file"}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "saved_model.pb"))
	if err != nil {
		return nil, &InputError{Input: dir, Expected: "a SavedModel directory with saved_model.pb", Found: "no saved_model.pb"}
	}
	sm := &pb.SavedModel{}
	if err := proto.Unmarshal(raw, sm); err != nil {
		return nil, &InputError{Input: filepath.Join(dir, "saved_model.pb"), Expected: "a SavedModel protocol buffer", Found: "undecodable bytes: " + err.Error()}
	}
	var tags []string
	for _, mg := range sm.MetaGraphs {
		for _, t := range mg.GetMetaInfoDef().GetTags() {
			if t == tag {
				return mg, nil
			}
			tags = append(tags, t)
		}
	}
	return nil, &InputError{Input: dir, Expected: fmt.Sprintf("a MetaGraph tagged %q", tag), Found: fmt.Sprintf("tags %v", tags)}
}

func outputByName(g *tf.Graph, name string) (tf.Output, error) {
	op, idx := name, 0
	if i := strings.LastIndex(name, ":"); i >= 0 {
		op = name[:i]
		n, err := strconv.Atoi(name[i+1:])
		if err != nil {
			return tf.Output{}, fmt.Errorf("tensor name %q: bad output index", name)
		}
		idx = n
	}
	o := g.Operation(op)
	if o == nil || idx >= o.NumOutputs() {
		return tf.Output{}, fmt.Errorf("tensor %q named by the signature is not in the graph", name)
	}
	return o.Output(idx), nil
}
