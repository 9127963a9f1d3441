package exporter_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/exporter"
	"github.com/bbd-workbench/bbd/internal/pyoracle"
	"github.com/bbd-workbench/bbd/tfmodels"
)

var (
	shared    = filepath.Join("..", "..", "shared")
	samples   = filepath.Join(shared, "ytf-samples")
	sunglases = filepath.Join(shared, "badnets", "sunglasses_bd_weights.h5")
)

// loadSamples reads the sample faces with the data package, sorted by file
// name (as the Python oracle sorts one folder's glob), as x/255
// channels-last.
func loadSamples(t *testing.T) (int, []float32) {
	t.Helper()
	imgs, err := data.ReadImageDir(samples, data.DeepIDImageOptions(false))
	if err != nil {
		t.Fatal(err)
	}
	x, err := imgs.Float32(0, imgs.Len())
	if err != nil {
		t.Fatal(err)
	}
	return imgs.Len(), x
}

func maxDiff(a []float32, b [][]float32) float64 {
	d := 0.0
	k := len(b[0])
	for i, row := range b {
		for j, v := range row {
			d = math.Max(d, math.Abs(float64(v-a[i*k+j])))
		}
	}
	return d
}

// TestRoundTrip exports an imported BadNet, loads it back through the Go
// bindings (white-box) and through Python TensorFlow; all agree.
func TestRoundTrip(t *testing.T) {
	n, x := loadSamples(t)
	m, err := tfmodels.ImportKerasH5(sunglases, nil, tfmodels.BuildOptions{Masks: []string{"flatten_2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	want, err := m.Predict(x, n)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := exporter.WriteModel(dir, m, exporter.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}

	back, err := tfmodels.LoadSavedModel(dir, tfmodels.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if !back.WhiteBox() || back.ParamCount() != 601643 {
		t.Errorf("reloaded: white-box %v, %d params", back.WhiteBox(), back.ParamCount())
	}
	if _, err := back.Layer("pool_3"); err != nil {
		t.Error(err)
	}
	if _, err := back.Variable("flatten_2/mask"); err != nil {
		t.Error(err)
	}
	got, err := back.Predict(x, n)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(got, [][]float32{want}); d > 0 {
		t.Errorf("Go reload differs by %g", d)
	}

	var ref struct{ Probs [][]float32 }
	if err := pyoracle.Run(&ref, "savedmodel_predict.py", dir, samples); err != nil {
		t.Fatal(err)
	}
	d := maxDiff(want, ref.Probs)
	t.Logf("bbd SavedModel in Python TF: max diff %.3g", d)
	if d > 1e-5 {
		t.Errorf("Python TF on the bbd SavedModel differs by %g", d)
	}
}

// TestKerasSavedModelBlackBox exports the BadNet from Keras (Python) and loads
// it through the Go bindings black-box.
func TestKerasSavedModelBlackBox(t *testing.T) {
	n, x := loadSamples(t)
	dir := filepath.Join(t.TempDir(), "keras")
	if err := pyoracle.Run(nil, "keras_export.py", sunglases, dir); err != nil {
		t.Fatal(err)
	}
	m, err := tfmodels.LoadSavedModel(dir, tfmodels.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.WhiteBox() {
		t.Error("a Keras SavedModel should load black-box")
	}
	if _, err := m.Layer("pool_3"); !errors.Is(err, tfmodels.ErrNotWhiteBox) {
		t.Errorf("Layer on a black-box model: %v", err)
	}
	got, err := m.Predict(x, n)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := tfmodels.ImportKerasH5(sunglases, nil, tfmodels.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	want, _ := ref.Predict(x, n)
	if d := maxDiff(got, [][]float32{want}); d > 1e-5 {
		t.Errorf("Keras SavedModel through Go differs from the Go graph by %g", d)
	}
}

func TestWriteRefusesExisting(t *testing.T) {
	m, err := tfmodels.ImportKerasH5(sunglases, nil, tfmodels.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	dir := t.TempDir()
	marker := filepath.Join(dir, "keep.txt")
	os.WriteFile(marker, []byte("mine"), 0o644)
	err = exporter.WriteModel(dir, m, exporter.Options{})
	if !errors.Is(err, exporter.ErrExists) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("expected ErrExists naming %s, got %v", dir, err)
	}
	if b, _ := os.ReadFile(marker); string(b) != "mine" {
		t.Error("existing destination was changed")
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary directory left behind: %s", e.Name())
		}
	}
	// Overwrite replaces it atomically.
	if err := exporter.WriteModel(dir, m, exporter.Options{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Error("overwrite kept the old content")
	}
}

// TestTrainExportReloadTrain: a model trained, exported and reloaded can be
// trained again (its graph already holds training ops) and exported again.
func TestTrainExportReloadTrain(t *testing.T) {
	imgs, err := data.ReadImageDir(filepath.Join(shared, "real-faces", "clean"), data.DeepIDImageOptions(false))
	if err != nil {
		t.Fatal(err)
	}
	m, err := tfmodels.ImportKerasH5(sunglases, nil, tfmodels.BuildOptions{Masks: []string{"flatten_1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s := tfmodels.TrainSettings{BatchSize: 16, Optimizer: tfmodels.OptimizerSettings{Kind: tfmodels.SGD, LearningRate: 1e-3, Momentum: 0.9}}
	if _, err := m.Train(imgs, s); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "trained")
	if err := exporter.WriteModel(dir, m, exporter.Options{}); err != nil {
		t.Fatal(err)
	}
	back, err := tfmodels.LoadSavedModel(dir, tfmodels.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	before, _, err := back.Evaluate(imgs)
	if err != nil {
		t.Fatal(err)
	}
	s.Optimizer.Kind = tfmodels.Adam
	s.Optimizer.Momentum = 0
	if _, err := back.Train(imgs, s); err != nil {
		t.Fatal(err)
	}
	if _, err := back.Train(imgs, tfmodels.TrainSettings{BatchSize: 16, Optimizer: tfmodels.OptimizerSettings{Kind: tfmodels.SGD, LearningRate: 1e-3, Momentum: 0.9}}); err != nil {
		t.Fatal(err)
	}
	after, _, err := back.Evaluate(imgs)
	if err != nil {
		t.Fatal(err)
	}
	if !(after < before) {
		t.Errorf("training the reloaded model did not lower its loss: %g -> %g", before, after)
	}
	if err := exporter.WriteModel(filepath.Join(t.TempDir(), "again"), back, exporter.Options{}); err != nil {
		t.Fatal(err)
	}
}
