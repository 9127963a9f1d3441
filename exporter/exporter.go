package exporter

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	tf "github.com/galeone/tensorflow/tensorflow/go"
	graphpb "github.com/galeone/tensorflow/tensorflow/go/core/framework/graph_go_proto"
	shapepb "github.com/galeone/tensorflow/tensorflow/go/core/framework/tensor_shape_go_proto"
	typespb "github.com/galeone/tensorflow/tensorflow/go/core/framework/types_go_proto"
	varpb "github.com/galeone/tensorflow/tensorflow/go/core/framework/variable_go_proto"
	pb "github.com/galeone/tensorflow/tensorflow/go/core/protobuf/for_core_protos_go_proto"
	"google.golang.org/protobuf/proto"

	"github.com/bbd-workbench/bbd/internal/safefs"
)

// ServeTag is the MetaGraph tag bbd writes and loads.
const ServeTag = "serve"

// DefaultSignature is the key of the signature serving systems call.
const DefaultSignature = "serving_default"

// PredictMethod is the method name of prediction signatures.
const PredictMethod = "tensorflow/serving/predict"

// ErrExists is returned (wrapped) when the destination exists and Overwrite is
// not set, or it is not a SavedModel (only a SavedModel is ever replaced). It
// is the same value as data.ErrExists: errors.Is matches either.
var ErrExists = safefs.ErrExists

// Variable is a resource variable of the graph to save and restore.
type Variable struct {
	Name        string        // the VarHandleOp's name
	Handle      tf.Output     // the VarHandleOp
	Value       tf.Output     // a ReadVariableOp of it (the snapshot)
	Initializer *tf.Operation // an op that initialises it (optional)
	Trainable   bool
}

// Signature maps names to tensors of the graph.
type Signature struct {
	Inputs  map[string]tf.Output
	Outputs map[string]tf.Output
	Method  string // empty means PredictMethod
}

// Spec is what to write: a graph, the session holding its variables' values,
// the variables and the signatures.
type Spec struct {
	Graph      *tf.Graph
	Session    *tf.Session
	Variables  []Variable
	Signatures map[string]Signature // must include DefaultSignature
	// Collections are extra bytes-list collections stored in the MetaGraphDef
	// (bbd records the architecture this way).
	Collections map[string][][]byte
}

// Options configures Write. The zero value refuses to replace an existing
// destination.
type Options struct {
	// Overwrite replaces an existing destination that is a SavedModel (a
	// folder with saved_model.pb), atomically; anything else is kept and
	// refused with ErrExists.
	Overwrite bool
}

// CheckDestination reports whether Write may write dir with opts: nil when
// dir does not exist, or exists, is a SavedModel and opts.Overwrite is set;
// otherwise an error wrapping ErrExists that names dir. Write checks again
// when it commits; callers use it to refuse before lengthy work.
func CheckDestination(dir string, opts Options) error {
	if err := safefs.Check(dir, opts.Overwrite, isSavedModel); err != nil {
		return fmt.Errorf("writing SavedModel %w", err)
	}
	return nil
}

// isSavedModel accepts a folder holding a saved_model.pb file: the only kind
// of destination Write replaces.
func isSavedModel(dir string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return errors.New("it is a file, not a SavedModel folder")
	}
	pb, err := os.Lstat(filepath.Join(dir, "saved_model.pb"))
	if err != nil || !pb.Mode().IsRegular() {
		return errors.New("it is not a SavedModel (no saved_model.pb)")
	}
	return nil
}

// Write writes spec as a SavedModel in dir, atomically: into a temporary
// folder beside dir (see internal/safefs: the umask's permissions, stale
// folders of killed runs removed) that becomes dir in one rename, or, with
// opts.Overwrite over an existing SavedModel, is exchanged with it in one step
// (renameat2 RENAME_EXCHANGE), so a kill leaves the old or the new model.
func Write(dir string, spec Spec, opts Options) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("writing SavedModel %s: tensorflow: %v", dir, r)
		}
	}()
	if _, ok := spec.Signatures[DefaultSignature]; !ok {
		return fmt.Errorf("writing SavedModel %s: expected a %q signature, found none", dir, DefaultSignature)
	}
	if err := CheckDestination(dir, opts); err != nil {
		return err
	}
	tmpDir, err := safefs.NewTemp(dir)
	if err != nil {
		return fmt.Errorf("writing SavedModel %s: %w", dir, err)
	}
	defer tmpDir.Close()
	tmp := tmpDir.Dir

	saver, err := ensureSaver(spec.Graph, spec.Session, spec.Variables)
	if err != nil {
		return fmt.Errorf("writing SavedModel %s: %w", dir, err)
	}
	if len(spec.Variables) > 0 {
		if err := os.Mkdir(filepath.Join(tmp, "variables"), 0o777); err != nil {
			return err
		}
		prefix, err := tf.NewTensor(filepath.Join(tmp, "variables", "variables"))
		if err != nil {
			return err
		}
		if _, err := spec.Session.Run(map[tf.Output]*tf.Tensor{saver.filename: prefix}, nil, []*tf.Operation{saver.save}); err != nil {
			return fmt.Errorf("writing SavedModel %s: saving variables: %w", dir, err)
		}
	}
	mg, err := metaGraph(spec, saver)
	if err != nil {
		return fmt.Errorf("writing SavedModel %s: %w", dir, err)
	}
	sm := &pb.SavedModel{SavedModelSchemaVersion: 1, MetaGraphs: []*pb.MetaGraphDef{mg}}
	raw, err := proto.Marshal(sm)
	if err != nil {
		return fmt.Errorf("writing SavedModel %s: encoding saved_model.pb: %w", dir, err)
	}
	if err := writeFileSync(filepath.Join(tmp, "saved_model.pb"), raw); err != nil {
		return fmt.Errorf("writing SavedModel %s: %w", dir, err)
	}
	if err := tmpDir.CommitDir(opts.Overwrite, isSavedModel); err != nil {
		return fmt.Errorf("writing SavedModel %w", err)
	}
	return nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type saverOps struct {
	scope    string
	filename tf.Output     // <scope>/filename: string scalar placeholder
	save     *tf.Operation // <scope>/SaveV2
	saveOut  tf.Output     // <scope>/control_dependency: filename after saving
	restore  *tf.Operation // <scope>/restore_all
}

// ensureSaver finds the SaveV2/RestoreV2 ops over exactly these variables, or
// adds them under the first free scope "save", "save_1", ...
func ensureSaver(g *tf.Graph, sess *tf.Session, vars []Variable) (*saverOps, error) {
	names := make([]string, len(vars))
	for i, v := range vars {
		names[i] = v.Name
	}
	for i := 0; ; i++ {
		scope := "save"
		if i > 0 {
			scope = fmt.Sprintf("save_%d", i)
		}
		if g.Operation(scope+"/filename") == nil {
			return addSaver(g, scope, vars, names)
		}
		existing, err := savedNames(sess, g, scope)
		if err != nil {
			return nil, err
		}
		if strings.Join(existing, "\x00") == strings.Join(names, "\x00") {
			return &saverOps{scope: scope, filename: g.Operation(scope + "/filename").Output(0), save: g.Operation(scope + "/SaveV2"),
				saveOut: g.Operation(scope + "/control_dependency").Output(0), restore: g.Operation(scope + "/restore_all")}, nil
		}
	}
}

func savedNames(sess *tf.Session, g *tf.Graph, scope string) ([]string, error) {
	op := g.Operation(scope + "/tensor_names")
	if op == nil {
		return nil, fmt.Errorf("graph has %s/filename but no %s/tensor_names", scope, scope)
	}
	res, err := sess.Run(nil, []tf.Output{op.Output(0)}, nil)
	if err != nil {
		return nil, err
	}
	names, _ := res[0].Value().([]string)
	return names, nil
}

func addSaver(g *tf.Graph, scope string, vars []Variable, names []string) (*saverOps, error) {
	var firstErr error
	add := func(spec tf.OpSpec) *tf.Operation {
		if firstErr != nil {
			return nil
		}
		spec.Name = scope + "/" + spec.Name
		op, err := g.AddOperation(spec)
		if err != nil {
			firstErr = fmt.Errorf("adding %s: %w", spec.Name, err)
		}
		return op
	}
	constant := func(name string, v interface{}) tf.Output {
		t, err := tf.NewTensor(v)
		if err != nil {
			firstErr = err
			return tf.Output{}
		}
		op := add(tf.OpSpec{Name: name, Type: "Const", Attrs: map[string]interface{}{"dtype": t.DataType(), "value": t}})
		if op == nil {
			return tf.Output{}
		}
		return op.Output(0)
	}
	s := &saverOps{scope: scope}
	if op := add(tf.OpSpec{Name: "filename", Type: "PlaceholderWithDefault", Input: []tf.Input{constant("Const", "model")},
		Attrs: map[string]interface{}{"dtype": tf.String, "shape": tf.ScalarShape()}}); op != nil {
		s.filename = op.Output(0)
	}
	slices := make([]string, len(vars))
	values := make([]tf.Output, len(vars))
	dtypes := make([]tf.DataType, len(vars))
	for i, v := range vars {
		values[i] = v.Value
		dtypes[i] = tf.Float
	}
	tensorNames := constant("tensor_names", names)
	shapeSlices := constant("shape_and_slices", slices)
	if len(vars) == 0 {
		s.save = add(tf.OpSpec{Name: "SaveV2", Type: "NoOp"})
		s.restore = add(tf.OpSpec{Name: "restore_all", Type: "NoOp"})
	} else {
		s.save = add(tf.OpSpec{Name: "SaveV2", Type: "SaveV2", Input: []tf.Input{s.filename, tensorNames, shapeSlices, tf.OutputList(values)}})
		restored := add(tf.OpSpec{Name: "RestoreV2", Type: "RestoreV2", Input: []tf.Input{s.filename, tensorNames, shapeSlices},
			Attrs: map[string]interface{}{"dtypes": dtypes}})
		var assigns []*tf.Operation
		for i, v := range vars {
			if restored == nil {
				break
			}
			assigns = append(assigns, add(tf.OpSpec{Name: fmt.Sprintf("Assign_%d", i), Type: "AssignVariableOp",
				Input: []tf.Input{v.Handle, restored.Output(i)}}))
		}
		if firstErr == nil {
			s.restore = add(tf.OpSpec{Name: "restore_all", Type: "NoOp", ControlDependencies: assigns})
		}
	}
	if firstErr == nil {
		if op := add(tf.OpSpec{Name: "control_dependency", Type: "Identity", Input: []tf.Input{s.filename}, ControlDependencies: []*tf.Operation{s.save}}); op != nil {
			s.saveOut = op.Output(0)
		}
	}
	if firstErr != nil {
		return nil, fmt.Errorf("adding the saver to the graph: %w", firstErr)
	}
	return s, nil
}

func metaGraph(spec Spec, saver *saverOps) (*pb.MetaGraphDef, error) {
	var buf strings.Builder
	if _, err := spec.Graph.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("serialising the graph: %w", err)
	}
	gd := &graphpb.GraphDef{}
	if err := proto.Unmarshal([]byte(buf.String()), gd); err != nil {
		return nil, fmt.Errorf("decoding the graph: %w", err)
	}
	mg := &pb.MetaGraphDef{
		MetaInfoDef: &pb.MetaGraphDef_MetaInfoDef{
			Tags:              []string{ServeTag},
			TensorflowVersion: tf.Version(),
		},
		GraphDef: gd,
		SaverDef: &pb.SaverDef{
			FilenameTensorName:        saver.filename.Op.Name() + ":0",
			SaveTensorName:            saver.saveOut.Op.Name() + ":0",
			RestoreOpName:             saver.restore.Name(),
			MaxToKeep:                 5,
			KeepCheckpointEveryNHours: 10000,
			Version:                   pb.SaverDef_V2,
		},
		CollectionDef: map[string]*pb.CollectionDef{},
		SignatureDef:  map[string]*pb.SignatureDef{},
	}
	var all, trainable [][]byte
	for _, v := range spec.Variables {
		vd := &varpb.VariableDef{
			VariableName: v.Handle.Op.Name() + ":0",
			SnapshotName: v.Value.Op.Name() + ":0",
			IsResource:   true,
			Trainable:    v.Trainable,
		}
		if v.Initializer != nil {
			vd.InitializerName = v.Initializer.Name()
		}
		raw, err := proto.Marshal(vd)
		if err != nil {
			return nil, err
		}
		all = append(all, raw)
		if v.Trainable {
			trainable = append(trainable, raw)
		}
	}
	if len(all) > 0 {
		mg.CollectionDef["variables"] = bytesList(all)
	}
	if len(trainable) > 0 {
		mg.CollectionDef["trainable_variables"] = bytesList(trainable)
	}
	for k, v := range spec.Collections {
		mg.CollectionDef[k] = bytesList(v)
	}
	for _, k := range slices.Sorted(maps.Keys(spec.Signatures)) {
		sig := spec.Signatures[k]
		sd := &pb.SignatureDef{MethodName: sig.Method, Inputs: map[string]*pb.TensorInfo{}, Outputs: map[string]*pb.TensorInfo{}}
		if sd.MethodName == "" {
			sd.MethodName = PredictMethod
		}
		for name, out := range sig.Inputs {
			sd.Inputs[name] = tensorInfo(out)
		}
		for name, out := range sig.Outputs {
			sd.Outputs[name] = tensorInfo(out)
		}
		mg.SignatureDef[k] = sd
	}
	return mg, nil
}

func bytesList(v [][]byte) *pb.CollectionDef {
	return &pb.CollectionDef{Kind: &pb.CollectionDef_BytesList_{BytesList: &pb.CollectionDef_BytesList{Value: v}}}
}

func tensorInfo(out tf.Output) *pb.TensorInfo {
	ti := &pb.TensorInfo{
		Encoding: &pb.TensorInfo_Name{Name: fmt.Sprintf("%s:%d", out.Op.Name(), out.Index)},
		Dtype:    typespb.DataType(out.DataType()),
	}
	if dims, err := out.Shape().ToSlice(); err == nil {
		ts := &shapepb.TensorShapeProto{}
		for _, d := range dims {
			ts.Dim = append(ts.Dim, &shapepb.TensorShapeProto_Dim{Size: d})
		}
		ti.TensorShape = ts
	} else {
		ti.TensorShape = &shapepb.TensorShapeProto{UnknownRank: true}
	}
	return ti
}
