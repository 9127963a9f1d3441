package zoo_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/tfmodels"
	"github.com/bbd-workbench/bbd/zoo"
)

// TestReducedZoo builds the reduced zoo (the CI-sized one) and checks that
// every BadNet learned the task and its backdoor(s) far above chance (0.1).
func TestReducedZoo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "zoo")
	cfg := zoo.ReducedConfig()
	if only := os.Getenv("BBD_ZOO_ONLY"); only != "" {
		cfg.Only = []string{only}
	}
	cfg.Log = testWriter{t}
	man, err := zoo.Build(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range man.BadNets {
		t.Logf("%s: clean accuracy %.4f, attack success %v, %.0fs", b.Name, b.CleanAccuracy, b.AttackSuccess, b.TrainSeconds)
		if b.CleanAccuracy < 0.7 {
			t.Errorf("%s: clean accuracy %.3f, want >= 0.7 (chance is 0.1)", b.Name, b.CleanAccuracy)
		}
		if len(b.AttackSuccess) != len(b.Triggers) {
			t.Errorf("%s: %d attack success figures for %d triggers", b.Name, len(b.AttackSuccess), len(b.Triggers))
		}
		for set, asr := range b.AttackSuccess {
			if asr < 0.8 {
				t.Errorf("%s: attack success %.3f on %s, want >= 0.8", b.Name, asr, set)
			}
		}
	}
	// The manifest on disk is the one returned, and every data set it lists
	// reads back with the competition reader.
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk zoo.Manifest
	if err := json.Unmarshal(raw, &onDisk); err != nil {
		t.Fatal(err)
	}
	for _, d := range onDisk.Datasets {
		r, err := data.OpenH5(filepath.Join(dir, d.Path))
		if err != nil {
			t.Fatal(err)
		}
		if r.Len() != d.Images {
			t.Errorf("%s: %d images, manifest says %d", d.Path, r.Len(), d.Images)
		}
		r.Close()
	}
	// Same figures when re-measured from the files alone.
	b := onDisk.BadNets[0]
	loaded, err := tfmodels.LoadSavedModel(filepath.Join(dir, b.Model), tfmodels.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	m, err := loaded.Freeze()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	test, err := data.ReadH5(filepath.Join(dir, "data", "clean_test_data.h5"))
	if err != nil {
		t.Fatal(err)
	}
	acc, err := zoo.Accuracy(m, test)
	if err != nil {
		t.Fatal(err)
	}
	if acc != b.CleanAccuracy {
		t.Errorf("re-measured clean accuracy %v, manifest %v", acc, b.CleanAccuracy)
	}
	if _, err := zoo.Build(dir, cfg); err == nil {
		t.Error("building over an existing zoo should fail")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
