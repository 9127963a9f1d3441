package reproduce

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/bbd-workbench/bbd/zoo"
)

// Source is what a reproduction runs on: the defender's clean validation
// data, the clean test data, and the models with their poisoned test sets.
type Source struct {
	// Kind is KindZoo (a bbd zoo: Fashion-MNIST BadNets like the paper's)
	// or KindCompetition (the CSAW-HackML-2020 files the paper used).
	Kind string `json:"kind"`
	Dir  string `json:"dir"`
	// CleanValidation is the defender's clean data (fine-tuned on, STRIP's
	// overlay pool, Neural Cleanse's images); CleanTest the clean test data.
	CleanValidation string  `json:"clean_validation"`
	CleanTest       string  `json:"clean_test"`
	Models          []Model `json:"models"`
	// Zoo is the zoo's manifest (KindZoo only): how its models were trained,
	// which activation clustering needs to rebuild a training set.
	Zoo *zoo.Manifest `json:"-"`
}

// Source kinds.
const (
	KindZoo         = "zoo"
	KindCompetition = "competition"
)

// Model is one network of a Source: a BadNet (with poisoned test sets) or a
// clean reference model (none).
type Model struct {
	Name string `json:"name"`
	// Path is a SavedModel folder or a Keras HDF5 file; Arch names the
	// architecture of a weights-only Keras file ("deepid"), else empty.
	Path string `json:"path"`
	Arch string `json:"arch,omitempty"`
	// Poisoned are its poisoned test sets, each labelled with its target.
	Poisoned []PoisonedSet `json:"poisoned"`
	// Targets are the attacker's target labels (known here, so reports can
	// say whether a scan found them; the defences never read them).
	Targets []int `json:"targets"`
}

// Clean reports whether m is a clean reference model (no trigger).
func (m Model) Clean() bool { return len(m.Targets) == 0 }

// PoisonedSet is a test set of images carrying one trigger, labelled with
// its target.
type PoisonedSet struct {
	Trigger string `json:"trigger"`
	Path    string `json:"path"`
	Target  int    `json:"target"`
}

// ZooSource reads the manifest of the zoo at dir (bbd zoo build).
func ZooSource(dir string) (*Source, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("zoo %s: expected a zoo folder with manifest.json (bbd zoo build): %w", dir, err)
	}
	var man zoo.Manifest
	if err := json.Unmarshal(raw, &man); err != nil {
		return nil, fmt.Errorf("zoo %s: manifest.json: expected the JSON bbd zoo build writes: %w", dir, err)
	}
	s := &Source{Kind: KindZoo, Dir: dir, Zoo: &man}
	for _, d := range man.Datasets {
		switch d.Role {
		case "clean validation":
			s.CleanValidation = filepath.Join(dir, d.Path)
		case "clean test":
			s.CleanTest = filepath.Join(dir, d.Path)
		}
	}
	if s.CleanValidation == "" || s.CleanTest == "" {
		return nil, fmt.Errorf("zoo %s: manifest.json: expected a clean validation and a clean test data set, found %d data sets without them", dir, len(man.Datasets))
	}
	for _, b := range man.BadNets {
		m := Model{Name: b.Name, Path: filepath.Join(dir, b.Model), Poisoned: []PoisonedSet{}, Targets: []int{}}
		attacks, err := man.Attacks(b.Name)
		if err != nil {
			return nil, fmt.Errorf("zoo %s: %w", dir, err)
		}
		for _, a := range attacks {
			m.Poisoned = append(m.Poisoned, PoisonedSet{Trigger: a.Trigger.Name, Path: filepath.Join(dir, a.Dataset.Path), Target: a.Target})
			if !slices.Contains(m.Targets, a.Target) {
				m.Targets = append(m.Targets, a.Target)
			}
		}
		s.Models = append(s.Models, m)
	}
	if len(s.Models) == 0 {
		return nil, fmt.Errorf("zoo %s: manifest.json lists no models", dir)
	}
	return s, s.check()
}

// competitionBadNets are the paper's four BadNets with their triggers and
// targets (the authors' notebooks; Table 3). Anonymous 2 has no poisoned test
// set in the competition's files.
var competitionBadNets = []struct {
	name, weights string
	sets          []PoisonedSet // Path: candidate file names, first found wins
}{
	{name: "sunglasses", weights: "sunglasses", sets: []PoisonedSet{{Trigger: "sunglasses", Path: "sunglasses_poisoned_data.h5", Target: 0}}},
	{name: "anonymous_1", weights: "anonymous_1", sets: []PoisonedSet{{Trigger: "lipstick", Path: "anonymous_1_poisoned_data.h5", Target: 0}}},
	{name: "anonymous_2", weights: "anonymous_2"},
	{name: "multi_trigger", weights: "multi_trigger_multi_target", sets: []PoisonedSet{
		{Trigger: "eyebrows", Path: "Multi-trigger Multi-target/eyebrows_poisoned_data.h5", Target: 5},
		{Trigger: "lipstick", Path: "Multi-trigger Multi-target/lipstick_poisoned_data.h5", Target: 1},
		{Trigger: "sunglasses", Path: "Multi-trigger Multi-target/sunglasses_poisoned_data.h5", Target: 8},
	}},
}

// CompetitionSource finds the CSAW-HackML-2020 files the paper used:
// clean_validation_data.h5, clean_test_data.h5 and the poisoned sets
// (sunglasses_poisoned_data.h5, anonymous_1_poisoned_data.h5, and
// "Multi-trigger Multi-target/{eyebrows,lipstick,sunglasses}_poisoned_data.h5",
// or the same names flattened to multi_trigger_<trigger>_poisoned_data.h5)
// in dataDir, and the four BadNets (<name>_bd_net.h5 or <name>_bd_weights.h5,
// name one of sunglasses, anonymous_1, anonymous_2,
// multi_trigger_multi_target) in modelsDir. Data sets may also be image
// folders of the same base name (without .h5). Missing poisoned sets are
// left out; missing clean files or models are an error.
func CompetitionSource(dataDir, modelsDir string) (*Source, error) {
	s := &Source{Kind: KindCompetition, Dir: dataDir}
	var err error
	if s.CleanValidation, err = findData(dataDir, "clean_validation_data.h5"); err != nil {
		return nil, err
	}
	if s.CleanTest, err = findData(dataDir, "clean_test_data.h5"); err != nil {
		return nil, err
	}
	for _, b := range competitionBadNets {
		m := Model{Name: b.name, Arch: "deepid", Poisoned: []PoisonedSet{}, Targets: []int{}}
		for _, f := range []string{b.weights + "_bd_net.h5", b.weights + "_bd_weights.h5"} {
			if st, err := os.Stat(filepath.Join(modelsDir, f)); err == nil && st.Mode().IsRegular() {
				m.Path = filepath.Join(modelsDir, f)
				break
			}
		}
		if m.Path == "" {
			return nil, fmt.Errorf("models %s: expected %s_bd_net.h5 or %s_bd_weights.h5 (the competition's BadNet %s), found neither", modelsDir, b.weights, b.weights, b.name)
		}
		for _, ps := range b.sets {
			cands := []string{ps.Path}
			if b.name == "multi_trigger" {
				cands = append(cands, "multi_trigger_"+ps.Trigger+"_poisoned_data.h5")
			}
			for _, c := range cands {
				if p, err := findData(dataDir, c); err == nil {
					ps.Path = p
					m.Poisoned = append(m.Poisoned, ps)
					break
				}
			}
			if !slices.Contains(m.Targets, ps.Target) {
				m.Targets = append(m.Targets, ps.Target)
			}
		}
		if b.name == "anonymous_2" {
			m.Targets = []int{4} // Table 3: no poisoned test set, the target is known from the scan
		}
		s.Models = append(s.Models, m)
	}
	return s, s.check()
}

// findData finds name in dir, or an image folder of the same base name.
func findData(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
		return p, nil
	}
	folder := p[:len(p)-len(filepath.Ext(p))]
	if st, err := os.Stat(folder); err == nil && st.IsDir() {
		return folder, nil
	}
	return "", fmt.Errorf("data %s: expected %s (or a folder %s of images), found neither", dir, name, filepath.Base(folder))
}

// check verifies that every file of s exists.
func (s *Source) check() error {
	paths := []string{s.CleanValidation, s.CleanTest}
	for _, m := range s.Models {
		paths = append(paths, m.Path)
		for _, p := range m.Poisoned {
			paths = append(paths, p.Path)
		}
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s source %s: %s is missing", s.Kind, s.Dir, p)
			}
			return fmt.Errorf("%s source %s: %w", s.Kind, s.Dir, err)
		}
	}
	return nil
}

// Model returns the model called name.
func (s *Source) Model(name string) (Model, bool) {
	for _, m := range s.Models {
		if m.Name == name {
			return m, true
		}
	}
	return Model{}, false
}

// BadNets returns the models that have poisoned test sets.
func (s *Source) BadNets() []Model {
	var out []Model
	for _, m := range s.Models {
		if len(m.Poisoned) > 0 {
			out = append(out, m)
		}
	}
	return out
}
