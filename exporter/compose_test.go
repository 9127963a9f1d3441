package exporter_test

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	tf "github.com/galeone/tensorflow/tensorflow/go"

	"github.com/bbd-workbench/bbd/exporter"
	"github.com/bbd-workbench/bbd/internal/pyoracle"
	"github.com/bbd-workbench/bbd/internal/tfgotest"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// TestTwoNetsOneGraph puts two real BadNets (different weights) in one graph
// under the scopes "a" and "b", reading one input. Each scope's
// probabilities equal that BadNet alone, bit for bit: in Go, after export and
// a white-box reload, through tfgo.LoadModel, and in Python TensorFlow.
func TestTwoNetsOneGraph(t *testing.T) {
	n, x := loadSamples(t)
	files := map[string]string{"a": sunglases, "b": filepath.Join(shared, "badnets", "anonymous_1_bd_weights.h5")}
	alone := map[string][]float32{}
	weights := map[string]tfmodels.Weights{}
	for scope, file := range files {
		m, err := tfmodels.ImportKerasH5(file, nil, tfmodels.BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if alone[scope], err = m.Predict(x, n); err != nil {
			t.Fatal(err)
		}
		if weights[scope], err = m.GetWeights(); err != nil {
			t.Fatal(err)
		}
		m.Close()
	}
	if slices.Equal(alone["a"], alone["b"]) {
		t.Fatal("the two BadNets predict the same: the test would prove nothing")
	}

	g := tf.NewGraph()
	in, err := tfmodels.AddInput(g, "input", [3]int{55, 47, 3})
	if err != nil {
		t.Fatal(err)
	}
	var nets []*tfmodels.Net
	for _, scope := range []string{"a", "b"} {
		// Random weights at first: the values are assigned below, A to "a"
		// and B to "b", as a user composing two models would.
		net, err := tfmodels.AddNet(g, tfmodels.DeepID(), in, tfmodels.NetOptions{Scope: scope, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		nets = append(nets, net)
	}
	if _, err := tfmodels.AddNet(g, tfmodels.DeepID(), in, tfmodels.NetOptions{Scope: "a"}); err == nil {
		t.Error("a second net under scope a should be refused")
	}
	m, err := tfmodels.NewModel(g, in, nets, tfmodels.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	check := func(what string, m *tfmodels.Model) {
		t.Helper()
		for _, scope := range []string{"a", "b"} {
			v, err := m.View(scope)
			if err != nil {
				t.Fatal(err)
			}
			got, err := v.Predict(x, n)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, alone[scope]) {
				t.Errorf("%s: net %q differs from its BadNet alone (max diff %g)", what, scope, maxDiff(got, [][]float32{alone[scope]}))
			}
		}
	}
	for _, scope := range []string{"a", "b"} {
		v, _ := m.View(scope)
		if err := v.SetWeights(weights[scope]); err != nil {
			t.Fatal(err)
		}
	}
	check("in one graph", m)

	dir, back := writeAndLoad(t, m, "two")
	if got := len(back.Nets()); got != 2 || !back.WhiteBox() || back.Scope != "a" {
		t.Fatalf("reloaded: %d nets, white-box %v, first scope %q; want 2, true, a", got, back.WhiteBox(), back.Scope)
	}
	vb, _ := back.View("b")
	if vb.ParamCount() != 601643 {
		t.Errorf("reloaded net b has %d parameters", vb.ParamCount())
	}
	check("reloaded", back)

	// tfgo, the loader the design card names.
	tensors, err := runTfgo(dir, x, n, "a/probabilities", "b/probabilities")
	if err != nil {
		t.Fatal(err)
	}
	for i, scope := range []string{"a", "b"} {
		if !slices.Equal(tensors[i], alone[scope]) {
			t.Errorf("tfgo: net %q differs from its BadNet alone (max diff %g)", scope, maxDiff(tensors[i], [][]float32{alone[scope]}))
		}
	}

	// Python TensorFlow.
	var py struct{ Outputs map[string][][]float32 }
	if err := pyoracle.Run(&py, "savedmodel_outputs.py", dir, samples); err != nil {
		t.Fatal(err)
	}
	for _, scope := range []string{"a", "b"} {
		got := py.Outputs[scope+"/probabilities"]
		if len(got) != n {
			t.Fatalf("Python: output %s/probabilities has %d rows, want %d (outputs: %v)", scope, len(got), n, slices.Sorted(maps.Keys(py.Outputs)))
		}
		if d := maxDiff(alone[scope], got); d > 1e-6 {
			t.Errorf("Python: net %q differs from its BadNet alone by %g", scope, d)
		}
	}
}

// runTfgo fetches the named float32 [n, classes] outputs through tfgo.
func runTfgo(dir string, x []float32, n int, outputs ...string) ([][]float32, error) {
	results, err := tfgotest.Run(dir, x, [4]int64{int64(n), 55, 47, 3}, outputs...)
	if err != nil {
		return nil, err
	}
	var res [][]float32
	for _, r := range results {
		var flat []float32
		for _, row := range r.Value().([][]float32) {
			flat = append(flat, row...)
		}
		res = append(res, flat)
	}
	return res, nil
}

// TestMasksSurviveExport: channel and kernel masks come back from a SavedModel
// with their values, and masked channels still output zero.
func TestMasksSurviveExport(t *testing.T) {
	n, x := loadSamples(t)
	m, err := tfmodels.ImportKerasH5(sunglases, nil, tfmodels.BuildOptions{ChannelMasks: []string{"conv_4"}, KernelMasks: []string{"fc_1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	w := tfmodels.Weights{}
	for _, name := range []string{"conv_4/channel_mask", "fc_1/kernel_mask"} {
		v, _ := m.Variable(name)
		vals := make([]float32, v.Size())
		for i := range vals {
			vals[i] = float32(i % 2)
		}
		w[name] = &tfmodels.WeightTensor{Shape: v.Shape, Values: vals}
	}
	if err := m.SetWeights(w); err != nil {
		t.Fatal(err)
	}
	want, _ := m.Predict(x, n)
	_, back := writeAndLoad(t, m, "masked")
	if got := back.Masks(); fmt.Sprint(got) != "map[channel_mask:[conv_4] kernel_mask:[fc_1]]" {
		t.Errorf("reloaded masks %v", got)
	}
	bw, err := back.GetWeights()
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range w {
		if !slices.Equal(v.Values, bw[name].Values) {
			t.Errorf("%s changed through export", name)
		}
	}
	got, _ := back.Predict(x, n)
	if !slices.Equal(got, want) {
		t.Errorf("reloaded masked model differs by %g", maxDiff(got, [][]float32{want}))
	}
	conv4, _ := back.Layer("conv_4")
	res, err := back.Run(x, n, conv4)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range res[0] {
		if i%80%2 == 0 && v != 0 {
			t.Fatalf("reloaded: conv_4 channel %d outputs %g although masked", i%80, v)
		}
	}
}

// writeAndLoad exports m as a SavedModel named name in a temporary folder and
// loads it back with tfmodels; the loaded model is closed with the test.
func writeAndLoad(t *testing.T, m *tfmodels.Model, name string) (string, *tfmodels.Model) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := exporter.WriteModel(dir, m, exporter.Options{}); err != nil {
		t.Fatal(err)
	}
	back, err := tfmodels.LoadSavedModel(dir, tfmodels.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { back.Close() })
	return dir, back
}
