package tfmodels_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bbd-workbench/bbd/exporter"
	"github.com/bbd-workbench/bbd/internal/h5"
	"github.com/bbd-workbench/bbd/internal/pyoracle"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// The fuzz targets read hostile files with bbd's readers: none may panic,
// hang or allocate beyond the documented limits. `go test` runs them on their
// seeds (real files); `make fuzz` fuzzes each for $(FUZZTIME).

// fuzzFiles numbers the files the fuzz targets write (one folder per
// fuzzing process, no folder churn per input).
var fuzzFiles atomic.Int64

var (
	kerasSeedsOnce sync.Once
	kerasSeeds     [][]byte // real Keras HDF5 files
)

// realKerasFiles returns the bytes of real Keras HDF5 files: the CSAW BadNets
// (Keras 2.2.4 weights-only, when ../shared is there) and full-model files
// saved by Keras 3 (functional and Sequential, made by the Python oracle when
// it is installed).
func realKerasFiles(tb testing.TB) [][]byte {
	if inFuzzWorker() {
		return nil
	}
	kerasSeedsOnce.Do(func() {
		for _, name := range badnets[:1] {
			if b, err := os.ReadFile(badnetPath(name)); err == nil {
				kerasSeeds = append(kerasSeeds, b)
			}
		}
		if _, err := pyoracle.Python(); err != nil {
			return
		}
		dir, err := os.MkdirTemp("", "bbd-fuzz-seeds-")
		if err != nil {
			return
		}
		defer os.RemoveAll(dir)
		var ref struct{ Models []struct{ Path string } }
		if err := pyoracle.Run(&ref, "keras_full_model.py", dir); err != nil {
			tb.Logf("no Keras 3 seeds: %v", err)
			return
		}
		for _, m := range ref.Models {
			if b, err := os.ReadFile(m.Path); err == nil {
				kerasSeeds = append(kerasSeeds, b)
			}
		}
	})
	return kerasSeeds
}

// inFuzzWorker reports whether this process is one of the fuzzing engine's
// workers, which do not use the seeds (the coordinating process does): the
// seeds' costly setup (Python, TensorFlow) is skipped there.
func inFuzzWorker() bool {
	fl := flag.Lookup("test.fuzzworker")
	return fl != nil && fl.Value.String() == "true"
}

// tinyFile returns the bytes of a hand-made weights-only file of tinyArch.
func tinyFile(tb testing.TB) []byte {
	p := filepath.Join(tb.TempDir(), "tiny.h5")
	writeKerasH5(tb, p, tinySets())
	b, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// modelConfig returns the model_config attribute of a Keras HDF5 file.
func modelConfig(tb testing.TB, file []byte) (string, bool) {
	p := filepath.Join(tb.TempDir(), "m.h5")
	if err := os.WriteFile(p, file, 0o644); err != nil {
		tb.Fatal(err)
	}
	f, err := h5.OpenFile(p)
	if err != nil {
		return "", false
	}
	defer f.Close()
	cfg, ok, err := f.StringAttribute("/", "model_config", 1<<20)
	return cfg, ok && err == nil
}

// checkKerasFile verifies what ReadKerasH5 promises of a file it accepts.
func checkKerasFile(t *testing.T, kf *tfmodels.KerasFile) {
	shapes, err := tfmodels.WeightShapes(kf.Architecture)
	if err != nil {
		t.Fatalf("accepted an architecture WeightShapes refuses: %v", err)
	}
	for name, w := range kf.Weights {
		want, ok := shapes[name]
		if !ok {
			t.Fatalf("weight %s is not one of the architecture's", name)
		}
		n := int64(1)
		for i, d := range w.Shape {
			if d != want[i] {
				t.Fatalf("weight %s has shape %v, the architecture's is %v", name, w.Shape, want)
			}
			n *= d
		}
		if int64(len(w.Values)) != n {
			t.Fatalf("weight %s: %d values for shape %v", name, len(w.Values), w.Shape)
		}
	}
}

// FuzzParseKerasConfig: the Keras model_config parser on any JSON. An
// accepted architecture is valid and its weight shapes computable.
func FuzzParseKerasConfig(f *testing.F) {
	for _, file := range realKerasFiles(f) {
		if cfg, ok := modelConfig(f, file); ok {
			f.Add([]byte(cfg))
		}
	}
	f.Add([]byte(`{"class_name": "Model", "config": {"name": "m", "layers": [
	 {"name": "input", "class_name": "InputLayer", "config": {"batch_input_shape": [null, 12, 10, 3]}, "inbound_nodes": []},
	 {"name": "conv_1", "class_name": "Conv2D", "config": {"filters": 4, "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid", "activation": "relu", "use_bias": true}, "inbound_nodes": [[["input", 0, 0, {}]]]},
	 {"name": "pool_1", "class_name": "MaxPooling2D", "config": {"pool_size": [2, 2], "padding": "valid", "strides": [2, 2]}, "inbound_nodes": [[["conv_1", 0, 0, {}]]]},
	 {"name": "flatten_1", "class_name": "Flatten", "config": {}, "inbound_nodes": [[["pool_1", 0, 0, {}]]]},
	 {"name": "fc_1", "class_name": "Dense", "config": {"units": 6, "activation": "linear"}, "inbound_nodes": [[["flatten_1", 0, 0, {}]]]},
	 {"name": "fc_2", "class_name": "Dense", "config": {"units": 6}, "inbound_nodes": [[["flatten_1", 0, 0, {}]]]},
	 {"name": "add_1", "class_name": "Add", "config": {}, "inbound_nodes": [[["fc_1", 0, 0, {}], ["fc_2", 0, 0, {}]]]},
	 {"name": "output", "class_name": "Dense", "config": {"units": 5, "activation": "softmax"}, "inbound_nodes": [[["add_1", 0, 0, {}]]]}],
	 "output_layers": [["output", 0, 0]]}}`))
	f.Fuzz(func(t *testing.T, js []byte) {
		arch, err := tfmodels.ParseKerasConfig(js)
		if err != nil {
			return
		}
		if err := arch.Validate(); err != nil {
			t.Fatalf("ParseKerasConfig returned an invalid architecture: %v", err)
		}
		_, _ = tfmodels.WeightShapes(arch) // may refuse, must not panic
	})
}

// FuzzReadKerasH5: the Keras HDF5 weight reader on any bytes (the file's own
// architecture, and tinyArch for weights-only files).
func FuzzReadKerasH5(f *testing.F) {
	// Go's fuzzing takes an input that runs longer than 10 s for a hang:
	// the HDF5 child (internal/h5) refuses a file that keeps libhdf5 busy
	// for 1 s in one step (a crash costs up to two: a step that crashes a
	// child that had read other files is repeated in a new one).
	if os.Getenv(h5.ChildTimeoutEnv) == "" {
		f.Setenv(h5.ChildTimeoutEnv, "1s")
	}
	for _, file := range realKerasFiles(f) {
		f.Add(file)
	}
	f.Add(tinyFile(f))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, file []byte) {
		p := filepath.Join(dir, strconv.FormatInt(fuzzFiles.Add(1), 10)+".h5")
		if err := os.WriteFile(p, file, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(p)
		for _, arch := range []*tfmodels.Architecture{nil, tinyArch()} {
			if kf, err := tfmodels.ReadKerasH5(p, arch); err == nil {
				checkKerasFile(t, kf)
			}
		}
	})
}

// savedModelSeed returns the saved_model.pb of a real SavedModel written by
// bbd (tinyArch, random weights).
func savedModelSeed(f *testing.F) []byte {
	m, err := tfmodels.Build(tinyArch(), nil, tfmodels.BuildOptions{Seed: 1})
	if err != nil {
		f.Fatal(err)
	}
	dir := filepath.Join(f.TempDir(), "sm")
	err = exporter.WriteModel(dir, m, exporter.Options{})
	m.Close()
	if err != nil {
		f.Fatal(err)
	}
	pb, err := os.ReadFile(filepath.Join(dir, "saved_model.pb"))
	if err != nil {
		f.Fatal(err)
	}
	return pb
}

// FuzzReadMetaGraph: the SavedModel reader (saved_model.pb) and the bbd
// architecture stored in it, on any bytes.
func FuzzReadMetaGraph(f *testing.F) {
	if !inFuzzWorker() {
		f.Add(savedModelSeed(f))
	}
	tmp := f.TempDir()
	f.Fuzz(func(t *testing.T, pb []byte) {
		dir := filepath.Join(tmp, strconv.FormatInt(fuzzFiles.Add(1), 10))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		if err := os.WriteFile(filepath.Join(dir, "saved_model.pb"), pb, 0o644); err != nil {
			t.Fatal(err)
		}
		mg, err := tfmodels.ReadMetaGraph(dir, "serve")
		if err != nil {
			return
		}
		for _, raw := range mg.CollectionDef[tfmodels.ArchitectureCollection].GetBytesList().GetValue() {
			arch := &tfmodels.Architecture{}
			if json.Unmarshal(raw, arch) == nil && arch.Validate() == nil {
				_, _ = tfmodels.WeightShapes(arch)
			}
		}
	})
}
