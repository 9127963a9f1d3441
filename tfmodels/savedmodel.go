package tfmodels

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	tf "github.com/galeone/tensorflow/tensorflow/go"
	varpb "github.com/galeone/tensorflow/tensorflow/go/core/framework/variable_go_proto"
	pb "github.com/galeone/tensorflow/tensorflow/go/core/protobuf/for_core_protos_go_proto"
	"google.golang.org/protobuf/proto"
)

// ArchitectureCollection is the MetaGraphDef collection in which bbd stores a
// model's Architecture (JSON), marking the SavedModel as white-box.
const ArchitectureCollection = "bbd_architecture"

// LoadOptions configures LoadSavedModel. The zero value is usable.
type LoadOptions struct {
	// Tag of the MetaGraph to load; empty means "serve".
	Tag string
	// BatchSize for inference; zero means 128.
	BatchSize int
	// Session options (device placement, threads); nil means defaults.
	Session *tf.SessionOptions
}

// LoadSavedModel loads the SavedModel in dir. A SavedModel written by bbd
// comes back white-box: named layers, variables and masks as built. Any other
// (Keras, tf.saved_model.save) is black-box: its "serving_default" signature
// must take one float32 [-1, H, W, C] image input and give probabilities
// (the output named "probabilities", or "output_0", or its only output).
//
// The session is opened with the Go bindings' LoadSavedModel rather than
// tfgo.LoadModel, which panics on errors and can only be closed by a finalizer.
func LoadSavedModel(dir string, opts LoadOptions) (m *Model, err error) {
	defer recoverTF(&err, "loading SavedModel "+dir)
	tag := opts.Tag
	if tag == "" {
		tag = "serve"
	}
	mg, err := ReadMetaGraph(dir, tag)
	if err != nil {
		return nil, err
	}
	sig, ok := mg.SignatureDef["serving_default"]
	if !ok {
		var found []string
		for k := range mg.SignatureDef {
			found = append(found, k)
		}
		sort.Strings(found)
		return nil, &InputError{Input: dir, Expected: "a SavedModel with a serving_default signature", Found: fmt.Sprintf("signatures [%s]", strings.Join(found, ", "))}
	}
	saved, err := tf.LoadSavedModel(dir, []string{tag}, opts.Session)
	if err != nil {
		return nil, fmt.Errorf("loading SavedModel %s: %w", dir, err)
	}
	m = &Model{Graph: saved.Graph, Session: saved.Session, BatchSize: opts.BatchSize, layers: map[string]tf.Output{},
		sessionOptions: opts.Session}
	if m.BatchSize <= 0 {
		m.BatchSize = 128
	}
	if coll, ok := mg.CollectionDef[ArchitectureCollection]; ok {
		err = m.attachWhiteBox(dir, coll, mg)
	} else {
		err = m.attachSignature(dir, sig)
	}
	if err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
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

func (m *Model) attachWhiteBox(dir string, coll *pb.CollectionDef, mg *pb.MetaGraphDef) error {
	list := coll.GetBytesList().GetValue()
	if len(list) != 1 {
		return &InputError{Input: dir, Expected: "one architecture in collection " + ArchitectureCollection, Found: fmt.Sprintf("%d entries", len(list))}
	}
	arch := &Architecture{}
	if err := json.Unmarshal(list[0], arch); err != nil {
		return &InputError{Input: dir, Expected: "a bbd architecture (JSON)", Found: err.Error()}
	}
	if err := arch.Validate(); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	m.Arch = arch
	g := m.Graph
	get := func(name string) (tf.Output, error) {
		op := g.Operation(name)
		if op == nil {
			return tf.Output{}, &InputError{Input: dir, Expected: fmt.Sprintf("an op %q in the bbd graph", name), Found: "none"}
		}
		return op.Output(0), nil
	}
	var err error
	if m.Input, err = get("input"); err != nil {
		return err
	}
	if m.Logits, err = get("logits"); err != nil {
		return err
	}
	if m.Probabilities, err = get("probabilities"); err != nil {
		return err
	}
	for _, l := range arch.Layers {
		name := l.Name
		if l.Kind == KindInput {
			m.layers[name] = m.Input
			m.InputShape = [3]int{l.Shape[0], l.Shape[1], l.Shape[2]}
		} else if m.layers[name], err = get(name); err != nil {
			return err
		}
		m.layerOrder = append(m.layerOrder, name)
	}
	for _, raw := range mg.CollectionDef["variables"].GetBytesList().GetValue() {
		vd := &varpb.VariableDef{}
		if err := proto.Unmarshal(raw, vd); err != nil {
			return &InputError{Input: dir, Expected: "VariableDef protos in the variables collection", Found: err.Error()}
		}
		v, err := variableFromGraph(g, strings.TrimSuffix(vd.VariableName, ":0"), vd.Trainable)
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		m.vars = append(m.vars, v)
	}
	shape, err := m.Probabilities.Shape().ToSlice()
	if err != nil || len(shape) != 2 {
		return &InputError{Input: dir, Expected: "probabilities of shape [batch, classes]", Found: m.Probabilities.Shape().String()}
	}
	m.NumClasses = int(shape[1])
	return nil
}

// attachSignature sets up black-box use through the serving_default signature.
func (m *Model) attachSignature(dir string, sig *pb.SignatureDef) error {
	if len(sig.Inputs) != 1 {
		return &InputError{Input: dir + " serving_default", Expected: "one input (an image batch)", Found: fmt.Sprintf("%d inputs", len(sig.Inputs))}
	}
	var in *pb.TensorInfo
	for _, ti := range sig.Inputs {
		in = ti
	}
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
		return &InputError{Input: dir + " serving_default", Expected: `an output "probabilities" or "output_0", or a single output`, Found: fmt.Sprintf("outputs [%s]", strings.Join(keys, ", "))}
	}
	var err error
	if m.Input, err = outputByName(m.Graph, in.GetName()); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if m.Probabilities, err = outputByName(m.Graph, out.GetName()); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	dims := in.GetTensorShape().GetDim()
	if len(dims) != 4 || dims[1].Size <= 0 || dims[2].Size <= 0 || dims[3].Size <= 0 {
		return &InputError{Input: dir + " serving_default input", Expected: "shape [-1, H, W, C] with known H, W, C", Found: fmt.Sprint(in.GetTensorShape())}
	}
	if in.Dtype != 1 { // DT_FLOAT
		return &InputError{Input: dir + " serving_default input", Expected: "float32", Found: in.Dtype.String()}
	}
	m.InputShape = [3]int{int(dims[1].Size), int(dims[2].Size), int(dims[3].Size)}
	od := out.GetTensorShape().GetDim()
	if len(od) != 2 || od[1].Size <= 0 {
		return &InputError{Input: dir + " serving_default output", Expected: "shape [-1, classes]", Found: fmt.Sprint(out.GetTensorShape())}
	}
	m.NumClasses = int(od[1].Size)
	return nil
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
