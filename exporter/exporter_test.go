package exporter_test

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
	if !errors.Is(err, exporter.ErrExists) || !errors.Is(err, data.ErrExists) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("expected ErrExists naming %s, got %v", dir, err)
	}
	if b, _ := os.ReadFile(marker); string(b) != "mine" {
		t.Error("existing destination was changed")
	}
	noTemps(t, filepath.Dir(dir))
	// Overwrite replaces a SavedModel atomically.
	sm := filepath.Join(t.TempDir(), "sm")
	if err := exporter.WriteModel(sm, m, exporter.Options{}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(sm, "old.txt"), []byte("old model"), 0o644)
	if err := exporter.WriteModel(sm, m, exporter.Options{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(sm, "old.txt")); !os.IsNotExist(err) {
		t.Error("overwrite kept the old content")
	}
	noTemps(t, filepath.Dir(sm))
}

// noTemps fails if temporary folders are left in dir.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") || strings.Contains(e.Name(), ".old") {
			t.Errorf("temporary folder left behind: %s", e.Name())
		}
	}
}

// TestOverwriteOnlySavedModels: --overwrite used to delete whatever was at the
// destination; now a regular file, a folder that is not a SavedModel and a
// symbolic link are kept and refused with ErrExists.
func TestOverwriteOnlySavedModels(t *testing.T) {
	m, err := tfmodels.ImportKerasH5(sunglases, nil, tfmodels.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	parent := t.TempDir()
	file := filepath.Join(parent, "thesis.pdf")
	folder := filepath.Join(parent, "photos")
	link := filepath.Join(parent, "link")
	os.WriteFile(file, []byte("precious"), 0o644)
	os.Mkdir(folder, 0o755)
	os.WriteFile(filepath.Join(folder, "me.jpg"), []byte("precious"), 0o644)
	os.Symlink(folder, link)
	for _, dst := range []string{file, folder, link} {
		err := exporter.WriteModel(dst, m, exporter.Options{Overwrite: true})
		if !errors.Is(err, exporter.ErrExists) || !strings.Contains(err.Error(), dst) {
			t.Errorf("%s: expected ErrExists naming it, got %v", dst, err)
		}
	}
	if b, _ := os.ReadFile(file); string(b) != "precious" {
		t.Error("the file was changed")
	}
	if b, _ := os.ReadFile(filepath.Join(folder, "me.jpg")); string(b) != "precious" {
		t.Error("the folder was changed")
	}
	noTemps(t, parent)
}

// TestWriteModeAndStaleTemps: exported folders get the umask's mode (they
// were 0700), and temporary folders of killed runs are removed by the next
// write to the same destination.
func TestWriteModeAndStaleTemps(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	m, err := tfmodels.ImportKerasH5(sunglases, nil, tfmodels.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	parent := t.TempDir()
	// What a run killed while writing leaves: bbd wrote ".sm.tmp-<random>"
	// before, ".sm.tmp-<pid>-<random>" now (this pid has exited).
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	for _, stale := range []string{".sm.tmp-1234567", fmt.Sprintf(".sm.tmp-%d-xyz", cmd.Process.Pid)} {
		os.MkdirAll(filepath.Join(parent, stale, "variables"), 0o700)
	}
	sm := filepath.Join(parent, "sm")
	if err := exporter.WriteModel(sm, m, exporter.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{sm, filepath.Join(sm, "variables")} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o755 {
			t.Errorf("%s: mode %v, want 0755 (%v)", p, st.Mode().Perm(), err)
		}
	}
	noTemps(t, parent)
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
	_, back := writeAndLoad(t, m, "trained")
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
