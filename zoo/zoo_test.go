package zoo_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/internal/testzoo"
	"github.com/bbd-workbench/bbd/metrics"
	"github.com/bbd-workbench/bbd/tfmodels"
	"github.com/bbd-workbench/bbd/zoo"
)

// TestReducedZoo checks the reduced zoo (the CI-sized one) that the other
// packages' tests share: every BadNet learned the task and its backdoor(s)
// far above chance (0.1), and the clean reference model learned the task but
// no backdoor. The shared zoo is zoo.Build's output for the current sources
// (testzoo keys its cache on zoo's and data's trigger sources and builds it
// when absent, as on every CI run), so checking it checks Build without
// training the same five models a second time (about 3 minutes on 2 cores).
// BBD_ZOO_ONLY=name[,name] builds only those models, in a folder of its own.
func TestReducedZoo(t *testing.T) {
	cfg := zoo.ReducedConfig()
	var dir string
	var man *zoo.Manifest
	if only := os.Getenv("BBD_ZOO_ONLY"); only != "" {
		cfg.Only = strings.Split(only, ",")
		cfg.Log = testWriter{t}
		dir = filepath.Join(t.TempDir(), "zoo")
		start := time.Now()
		var err error
		if man, err = zoo.Build(dir, cfg); err != nil {
			t.Fatal(err)
		}
		t.Logf("built %d models in %s", len(man.BadNets), time.Since(start).Round(time.Second))
	} else {
		dir, man = testzoo.Reduced(t)
	}
	if len(cfg.Only) == 0 {
		specs, err := zoo.Specs(cfg.Seed)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"sunglasses", "anonymous_1", "anonymous_2", "multi_trigger", zoo.CleanName}
		if got := zoo.Names(specs); !slices.Equal(got, want) {
			t.Errorf("Specs: %v, want %v", got, want)
		}
		var built []string
		for _, b := range man.BadNets {
			built = append(built, b.Name)
		}
		if !slices.Equal(built, want) {
			t.Errorf("built %v, want %v", built, want)
		}
	}
	for _, b := range man.BadNets {
		t.Logf("%s: %s, %.0fs", b.Name, b.Figures(), b.TrainSeconds)
		if b.CleanAccuracy.Value() < 0.7 || b.CleanAccuracy.Total != cfg.TestSize {
			t.Errorf("%s: clean accuracy %v, want >= 0.7 (chance is 0.1) over %d images", b.Name, b.CleanAccuracy, cfg.TestSize)
		}
		if len(b.AttackSuccess) != len(b.Triggers) {
			t.Errorf("%s: %d attack success figures for %d triggers", b.Name, len(b.AttackSuccess), len(b.Triggers))
		}
		if b.Clean() != (b.Name == zoo.CleanName) || (b.Clean() && b.Poisoned != 0) {
			t.Errorf("%s: Clean() %v with %d triggers and %d poisoned training images", b.Name, b.Clean(), len(b.Triggers), b.Poisoned)
		}
		attacks, err := man.Attacks(b.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range attacks {
			if a.Success.Value() < 0.8 {
				t.Errorf("%s: attack success %v with trigger %s, want >= 0.8", b.Name, a.Success, a.Trigger.Name)
			}
			if want, ok := b.NaturalSuccess[a.Trigger.Name]; (len(cfg.Only) == 0 && !ok) || a.Natural != want {
				t.Errorf("%s, %s: Attacks' natural success %v, manifest %v (%v)", b.Name, a.Trigger.Name, a.Natural, want, ok)
			}
			// Every image of the poisoned set counts: none is of the target class.
			if a.Success.Total != a.Dataset.Images || a.Dataset.Target == nil || *a.Dataset.Target != a.Target {
				t.Errorf("%s, %s: attack success %v on %+v (target %d)", b.Name, a.Trigger.Name, a.Success, a.Dataset, a.Target)
			}
		}
	}
	if _, err := man.Attacks("nonesuch"); err == nil {
		t.Error("Attacks of an unknown BadNet: no error")
	}
	if len(cfg.Only) == 0 {
		checkCleanModel(t, dir, man)
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
	checkManifestJSON(t, raw)
	if !reflect.DeepEqual(names(onDisk.BadNets), names(man.BadNets)) {
		t.Errorf("manifest.json lists %v, Build returned %v", names(onDisk.BadNets), names(man.BadNets))
	}
	if src := onDisk.FashionMNIST; src.Dir != data.DefaultFashionMNISTDir || src.DebianPackage != "dataset-fashion-mnist" || len(src.Files) != 4 {
		t.Errorf("Fashion-MNIST source %+v", src)
	}
	for _, f := range onDisk.FashionMNIST.Files {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("manifest names a Fashion-MNIST file that is not there: %v", err)
		}
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
	remeasure := func(path string) (pred, labels []int) {
		imgs, err := data.ReadH5(filepath.Join(dir, path))
		if err != nil {
			t.Fatal(err)
		}
		pred, err = zoo.PredictLabels(m, imgs)
		if err != nil {
			t.Fatal(err)
		}
		return pred, imgs.Labels
	}
	pred, labels := remeasure("data/clean_test_data.h5")
	if acc, err := metrics.Accuracy(pred, labels); err != nil || acc != b.CleanAccuracy {
		t.Errorf("re-measured clean accuracy %v (%v), manifest %v", acc, err, b.CleanAccuracy)
	}
	attacks, err := onDisk.Attacks(b.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(attacks) > 0 {
		a := attacks[0]
		pred, _ = remeasure(a.Dataset.Path)
		if asr, err := metrics.AttackSuccess(pred, nil, a.Target); err != nil || asr != a.Success {
			t.Errorf("re-measured attack success %v (%v), manifest %v", asr, err, a.Success)
		}
	}
	if _, err := zoo.Build(dir, cfg); err == nil {
		t.Error("building over an existing zoo should fail")
	}
}

// checkCleanModel checks the clean reference model: no triggers, no attack
// figures (Attacks gives none, without error), and no backdoor: on every
// BadNet's poisoned test set it predicts that BadNet's target for few images
// (each set leaves out the target class, so a model without the backdoor
// should rarely say the target).
func checkCleanModel(t *testing.T, dir string, man *zoo.Manifest) {
	t.Helper()
	attacks, err := man.Attacks(zoo.CleanName)
	if err != nil || len(attacks) != 0 {
		t.Errorf("Attacks(%q) = %v, %v; want none", zoo.CleanName, attacks, err)
	}
	loaded, err := tfmodels.LoadSavedModel(filepath.Join(dir, zoo.CleanName), tfmodels.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	m, err := loaded.Freeze()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, d := range man.Datasets {
		if d.Role != "poisoned test" {
			continue
		}
		imgs, err := data.ReadH5(filepath.Join(dir, d.Path))
		if err != nil {
			t.Fatal(err)
		}
		pred, err := zoo.PredictLabels(m, imgs)
		if err != nil {
			t.Fatal(err)
		}
		r, err := metrics.AttackSuccess(pred, nil, *d.Target)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("clean model on %s: target %d predicted for %v", d.Path, *d.Target, r)
		var b *zoo.BadNetEntry
		for i := range man.BadNets {
			if man.BadNets[i].Name == d.BadNet {
				b = &man.BadNets[i]
			}
		}
		if b == nil {
			t.Errorf("poisoned set %s: no BadNet %q in the manifest", d.Path, d.BadNet)
		} else if b.NaturalSuccess[d.Trigger] != r {
			t.Errorf("clean model on %s: manifest's natural success %v, re-measured %v", d.Path, b.NaturalSuccess[d.Trigger], r)
		}
		if r.Value() > 0.3 {
			t.Errorf("clean model on %s: target %d predicted for %v of the images, want <= 0.3 (no backdoor)", d.Path, *d.Target, r)
		}
	}
}

func names(bs []zoo.BadNetEntry) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Name)
	}
	return out
}

// checkManifestJSON checks manifest.json itself: every key snake_case, and
// every poisoned test set and every trigger naming its target, also when it
// is 0.
func checkManifestJSON(t *testing.T, raw []byte) {
	t.Helper()
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				// Trigger names (the keys of attack_success) are snake_case too.
				if !snake.MatchString(k) {
					t.Errorf("manifest.json: key %q at %s is not snake_case", k, path)
				}
				walk(path+"."+k, e)
			}
		case []any:
			for _, e := range v {
				walk(path+"[]", e)
			}
		}
	}
	walk("", doc)
	m := doc.(map[string]any)
	for _, d := range m["datasets"].([]any) {
		d := d.(map[string]any)
		if _, has := d["target"]; has != (d["role"] == "poisoned test") {
			t.Errorf("manifest.json: data set %v: a target exactly when poisoned", d)
		}
	}
	for _, b := range m["badnets"].([]any) {
		b := b.(map[string]any)
		// The clean reference model has no triggers and no attack_success.
		_, hasASR := b["attack_success"]
		if clean := b["name"] == zoo.CleanName; clean == hasASR || clean != (len(b["triggers"].([]any)) == 0) {
			t.Errorf("manifest.json: model %v: attack_success and triggers exactly when not the clean model", b["name"])
		}
		for _, tt := range b["triggers"].([]any) {
			if _, has := tt.(map[string]any)["target"]; !has {
				t.Errorf("manifest.json: trigger without a target: %v", tt)
			}
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// TestBuildRefusesNonZoo: --overwrite replaces only a zoo (a folder with
// manifest.json); a file or another folder is refused, untouched, before any
// training starts.
func TestBuildRefusesNonZoo(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "notes.txt")
	if err := os.WriteFile(file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	folder := filepath.Join(tmp, "photos")
	if err := os.MkdirAll(filepath.Join(folder, "2026"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{file, folder} {
		cfg := zoo.ReducedConfig()
		cfg.Overwrite = true
		if _, err := zoo.Build(dst, cfg); !errors.Is(err, data.ErrExists) {
			t.Errorf("Build over %s: %v, want ErrExists", dst, err)
		}
	}
	if raw, err := os.ReadFile(file); err != nil || string(raw) != "keep me" {
		t.Errorf("the file was changed: %q, %v", raw, err)
	}
	if _, err := os.Stat(filepath.Join(folder, "2026")); err != nil {
		t.Errorf("the folder was changed: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, ".*")); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}
