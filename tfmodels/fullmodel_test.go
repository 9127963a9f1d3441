package tfmodels_test

import (
	"math"
	"testing"

	"github.com/bbd-workbench/bbd/internal/pyoracle"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// TestFullModelH5 imports full-model Keras HDF5 files (architecture from their
// model_config) of every supported layer kind, functional and Sequential, made
// live by Keras, and compares predictions.
func TestFullModelH5(t *testing.T) {
	var ref struct {
		Models []struct {
			Path  string
			X     []float32
			Shape []int
			Probs []float32
		}
	}
	if err := pyoracle.Run(&ref, "keras_full_model.py", t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if len(ref.Models) != 2 {
		t.Fatalf("oracle made %d models", len(ref.Models))
	}
	for _, r := range ref.Models {
		kf, err := tfmodels.ReadKerasH5(r.Path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !kf.FullModel {
			t.Errorf("%s: not recognised as a full-model file", r.Path)
		}
		m, err := tfmodels.ImportKerasH5(r.Path, nil, tfmodels.BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Predict(r.X, r.Shape[0])
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		d := 0.0
		for i := range got {
			d = math.Max(d, math.Abs(float64(got[i]-r.Probs[i])))
		}
		t.Logf("%s (%s, %d layers): max |Go - Keras| = %.3g", kf.Architecture.Name, r.Path, len(kf.Architecture.Layers), d)
		if d > 1e-5 {
			t.Errorf("%s: max abs difference %g > 1e-5", r.Path, d)
		}
	}
}

// TestParseKeras2Config parses a Keras 2 functional config (the format of the
// CSAW *_bd_net.h5 files): inbound nodes as [[["layer", 0, 0, {}]]].
func TestParseKeras2Config(t *testing.T) {
	cfg := `{"class_name": "Model", "config": {"name": "model_1", "layers": [
	 {"name": "input", "class_name": "InputLayer", "config": {"batch_input_shape": [null, 55, 47, 3], "dtype": "float32", "name": "input"}, "inbound_nodes": []},
	 {"name": "conv_1", "class_name": "Conv2D", "config": {"name": "conv_1", "filters": 20, "kernel_size": [4, 4], "strides": [1, 1], "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "relu", "use_bias": true}, "inbound_nodes": [[["input", 0, 0, {}]]]},
	 {"name": "pool_1", "class_name": "MaxPooling2D", "config": {"name": "pool_1", "pool_size": [2, 2], "padding": "valid", "strides": [2, 2], "data_format": "channels_last"}, "inbound_nodes": [[["conv_1", 0, 0, {}]]]},
	 {"name": "flatten_1", "class_name": "Flatten", "config": {"name": "flatten_1"}, "inbound_nodes": [[["pool_1", 0, 0, {}]]]},
	 {"name": "fc_1", "class_name": "Dense", "config": {"name": "fc_1", "units": 160, "activation": "linear", "use_bias": true}, "inbound_nodes": [[["flatten_1", 0, 0, {}]]]},
	 {"name": "fc_2", "class_name": "Dense", "config": {"name": "fc_2", "units": 160, "activation": "linear", "use_bias": true}, "inbound_nodes": [[["flatten_1", 0, 0, {}]]]},
	 {"name": "add_1", "class_name": "Add", "config": {"name": "add_1"}, "inbound_nodes": [[["fc_1", 0, 0, {}], ["fc_2", 0, 0, {}]]]},
	 {"name": "output", "class_name": "Dense", "config": {"name": "output", "units": 1283, "activation": "softmax", "use_bias": true}, "inbound_nodes": [[["add_1", 0, 0, {}]]]}],
	 "input_layers": [["input", 0, 0]], "output_layers": [["output", 0, 0]]}, "keras_version": "2.2.4", "backend": "tensorflow"}`
	arch, err := tfmodels.ParseKerasConfig([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	add, _ := arch.Layer("add_1")
	if arch.Output != "output" || len(arch.Layers) != 8 || len(add.Inputs) != 2 || add.Inputs[1] != "fc_2" {
		t.Errorf("parsed %+v", arch)
	}
	conv, _ := arch.Layer("conv_1")
	if conv.Filters != 20 || conv.KernelSize != [2]int{4, 4} || conv.Activation != "relu" {
		t.Errorf("conv_1 parsed as %+v", conv)
	}
	for _, bad := range []string{
		`{"class_name": "Model", "config": {"layers": [{"name": "x", "class_name": "LSTM", "config": {}, "inbound_nodes": []}]}}`,
		`not json`,
		`{"class_name": "Model", "config": {"name": "m", "layers": [{"name": "input", "class_name": "InputLayer", "config": {"batch_input_shape": [null, 5, 5, 1]}, "inbound_nodes": []}, {"name": "c", "class_name": "Conv2D", "config": {"filters": 2, "kernel_size": 3, "data_format": "channels_first"}, "inbound_nodes": [[["input", 0, 0, {}]]]}], "output_layers": [["c", 0, 0]]}}`,
	} {
		if _, err := tfmodels.ParseKerasConfig([]byte(bad)); err == nil {
			t.Errorf("ParseKerasConfig accepted %s", bad)
		}
	}
}
