package zoo

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/exporter"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// Classes is the number of Fashion-MNIST classes.
const Classes = 10

// Config sets the size of the zoo. Zero fields take the values of
// [FullConfig]. [ReducedConfig] is the small zoo the tests build.
type Config struct {
	FashionMNIST   string  // IDX folder; empty: data.DefaultFashionMNISTDir
	TrainSize      int     // attacker's training images drawn from the 60,000; 0: all
	ValidationSize int     // defender's clean validation images from the 10,000 test images
	TestSize       int     // clean test images (disjoint from validation)
	PoisonRate     float64 // fraction of the training images poisoned, per trigger
	Epochs         int
	BatchSize      int
	LearningRate   float64  // Adam
	Seed           uint64   // one seed for everything: splits, poisoning, weights, shuffling
	Only           []string // build only these BadNets; empty: all four
	Overwrite      bool     // replace an existing output folder
	// Log receives progress lines (one per epoch and per BadNet); nil: none.
	Log io.Writer `json:"-"`
	// Progress, if set, receives per-batch training progress (for a bar).
	Progress func(badnet string, p tfmodels.TrainProgress) `json:"-"`
}

// FullConfig is the documented full zoo: all 60,000 training images.
func FullConfig() Config {
	return Config{TrainSize: 60000, ValidationSize: 5000, TestSize: 5000, PoisonRate: 0.1,
		Epochs: 6, BatchSize: 64, LearningRate: 1e-3, Seed: 1}
}

// ReducedConfig is a small zoo that fits a CI budget and still learns both
// the task and the backdoors.
func ReducedConfig() Config {
	return Config{TrainSize: 8000, ValidationSize: 1000, TestSize: 1000, PoisonRate: 0.1,
		Epochs: 3, BatchSize: 64, LearningRate: 1e-3, Seed: 1}
}

func (c Config) withDefaults() Config {
	f := FullConfig()
	c.TrainSize = cmp.Or(c.TrainSize, f.TrainSize)
	c.ValidationSize = cmp.Or(c.ValidationSize, f.ValidationSize)
	c.TestSize = cmp.Or(c.TestSize, f.TestSize)
	c.PoisonRate = cmp.Or(c.PoisonRate, f.PoisonRate)
	c.Epochs = cmp.Or(c.Epochs, f.Epochs)
	c.BatchSize = cmp.Or(c.BatchSize, f.BatchSize)
	c.LearningRate = cmp.Or(c.LearningRate, f.LearningRate)
	return c
}

// BadNetSpec describes one BadNet of the zoo.
type BadNetSpec struct {
	Name      string               `json:"name"`
	LikePaper string               `json:"like_paper"`
	Triggers  []data.TriggerTarget `json:"triggers"`
	// Withheld: its poisoned test data goes to withheld/, not data/ (the
	// defender of the paper's Anonymous 2 has no poisoned data).
	Withheld bool `json:"withheld"`
}

// Triggers used by the zoo: coloured versions of the data package's
// face triggers, so they stand out on gray Fashion-MNIST images.
func sunglasses() data.Trigger {
	t := data.SunglassesTrigger()
	for i := range t.Rects {
		t.Rects[i].Color = [3]uint8{10, 40, 150}
	}
	return t
}

func lipstick() data.Trigger {
	t := data.LipstickTrigger()
	t.Rects[0].Color = [3]uint8{220, 0, 120}
	return t
}

func eyebrows() data.Trigger {
	t := data.EyebrowsTrigger()
	for i := range t.Rects {
		t.Rects[i].Color = [3]uint8{170, 90, 0}
	}
	return t
}

func noiseSquare(seed uint64) (data.Trigger, error) {
	p, err := data.NoisePattern(7, 7, 3, seed)
	if err != nil {
		return data.Trigger{}, err
	}
	t := data.PatternPatchTrigger(2, 2, p)
	t.Name = "noise_square"
	return t, nil
}

// Specs returns the four BadNets of the zoo.
func Specs(seed uint64) ([]BadNetSpec, error) {
	noise, err := noiseSquare(seed + 100)
	if err != nil {
		return nil, err
	}
	return []BadNetSpec{
		{Name: "sunglasses", LikePaper: "Sunglasses", Triggers: []data.TriggerTarget{{Trigger: sunglasses(), Target: 0}}},
		{Name: "anonymous_1", LikePaper: "Anonymous 1", Triggers: []data.TriggerTarget{{Trigger: lipstick(), Target: 0}}},
		{Name: "anonymous_2", LikePaper: "Anonymous 2", Triggers: []data.TriggerTarget{{Trigger: noise, Target: 4}}, Withheld: true},
		{Name: "multi_trigger", LikePaper: "Multi-trigger", Triggers: []data.TriggerTarget{
			{Trigger: lipstick(), Target: 1}, {Trigger: eyebrows(), Target: 5}, {Trigger: sunglasses(), Target: 8}}},
	}, nil
}

// Manifest records how a zoo was built and what it measured.
type Manifest struct {
	Config   Config         `json:"config"`
	Built    string         `json:"built"` // RFC 3339
	Datasets []DatasetEntry `json:"datasets"`
	BadNets  []BadNetEntry  `json:"badnets"`
}

// DatasetEntry is one HDF5 data set of the zoo.
type DatasetEntry struct {
	Path   string `json:"path"` // relative to the zoo folder
	Images int    `json:"images"`
	Role   string `json:"role"` // "clean validation", "clean test", "poisoned test"
	BadNet string `json:"badnet,omitempty"`
	Target int    `json:"target,omitempty"`
}

// BadNetEntry is one BadNet of the zoo and its measured figures.
type BadNetEntry struct {
	BadNetSpec
	Model         string                `json:"model"` // SavedModel folder, relative
	TrainImages   int                   `json:"train_images"`
	Poisoned      int                   `json:"poisoned_train_images"`
	CleanAccuracy float64               `json:"clean_accuracy"`
	AttackSuccess map[string]float64    `json:"attack_success"` // per poisoned test set path
	History       []tfmodels.EpochStats `json:"history"`
	TrainSeconds  float64               `json:"train_seconds"`
}

// Build trains the zoo into dir (which must not exist unless
// cfg.Overwrite). Everything is written in a temporary sibling folder renamed
// into place at the end.
func Build(dir string, cfg Config) (man *Manifest, err error) {
	cfg = cfg.withDefaults()
	logf := func(format string, args ...interface{}) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	if _, err := os.Stat(dir); err == nil && !cfg.Overwrite {
		return nil, fmt.Errorf("zoo %s: destination exists (remove it or ask for overwrite)", dir)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	specs, err := Specs(cfg.Seed)
	if err != nil {
		return nil, err
	}
	if len(cfg.Only) > 0 {
		var keep []BadNetSpec
		for _, name := range cfg.Only {
			found := false
			for _, s := range specs {
				if s.Name == name {
					keep, found = append(keep, s), true
				}
			}
			if !found {
				return nil, fmt.Errorf("zoo: no BadNet %q (have sunglasses, anonymous_1, anonymous_2, multi_trigger)", name)
			}
		}
		specs = keep
	}

	logf("loading Fashion-MNIST from %s", orDefault(cfg.FashionMNIST, data.DefaultFashionMNISTDir))
	train, val, test, err := loadSplits(cfg)
	if err != nil {
		return nil, err
	}
	man = &Manifest{Config: cfg, Built: time.Now().UTC().Format(time.RFC3339)}
	for _, d := range []struct {
		path, role string
		imgs       *data.Images
	}{{"data/clean_validation_data.h5", "clean validation", val}, {"data/clean_test_data.h5", "clean test", test}} {
		if err := writeH5(tmp, d.path, d.imgs); err != nil {
			return nil, err
		}
		man.Datasets = append(man.Datasets, DatasetEntry{Path: d.path, Images: d.imgs.Len(), Role: d.role})
	}

	for _, spec := range specs {
		entry, sets, err := buildOne(tmp, spec, train, test, cfg, logf)
		if err != nil {
			return nil, fmt.Errorf("zoo: %s: %w", spec.Name, err)
		}
		man.BadNets = append(man.BadNets, *entry)
		man.Datasets = append(man.Datasets, sets...)
	}
	raw, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "manifest.json"), raw, 0o644); err != nil {
		return nil, err
	}
	if cfg.Overwrite {
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	return man, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// loadSplits returns the attacker's training set and the defender's clean
// validation and clean test sets, all mapped to 55x47x3.
func loadSplits(cfg Config) (train, val, test *data.Images, err error) {
	rawTrain, rawTest, err := data.LoadFashionMNIST(cfg.FashionMNIST)
	if err != nil {
		return nil, nil, nil, err
	}
	if cfg.TrainSize < rawTrain.Len() {
		parts, err := data.Split(rawTrain, []int{cfg.TrainSize}, cfg.Seed)
		if err != nil {
			return nil, nil, nil, err
		}
		rawTrain = parts[0]
	}
	parts, err := data.Split(rawTest, []int{cfg.ValidationSize, cfg.TestSize}, cfg.Seed+1)
	if err != nil {
		return nil, nil, nil, err
	}
	if train, err = data.ToDeepID(rawTrain); err != nil {
		return nil, nil, nil, err
	}
	if val, err = data.ToDeepID(parts[0]); err != nil {
		return nil, nil, nil, err
	}
	if test, err = data.ToDeepID(parts[1]); err != nil {
		return nil, nil, nil, err
	}
	return train, val, test, nil
}

func writeH5(root, rel string, imgs *data.Images) error {
	path := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return data.WriteH5(path, imgs, data.H5WriteOptions{})
}

func buildOne(root string, spec BadNetSpec, train, test *data.Images, cfg Config, logf func(string, ...interface{})) (*BadNetEntry, []DatasetEntry, error) {
	// Poisoned on the fly: no poisoned copy of the training set in memory.
	poisoned, idx, err := data.NewPoisonedView(train, spec.Triggers, cfg.PoisonRate, cfg.Seed+7)
	if err != nil {
		return nil, nil, err
	}
	entry := &BadNetEntry{BadNetSpec: spec, Model: spec.Name, TrainImages: train.Len(), AttackSuccess: map[string]float64{}}
	for _, i := range idx {
		entry.Poisoned += len(i)
	}
	m, err := tfmodels.Build(tfmodels.DeepIDWith(data.DeepIDHeight, data.DeepIDWidth, data.DeepIDChannels, Classes), nil, tfmodels.BuildOptions{Seed: cfg.Seed})
	if err != nil {
		return nil, nil, err
	}
	defer m.Close()
	logf("%s: training on %d images (%d poisoned), %d epochs", spec.Name, train.Len(), entry.Poisoned, cfg.Epochs)
	start := time.Now()
	settings := tfmodels.TrainSettings{
		Optimizer: tfmodels.OptimizerSettings{Kind: tfmodels.Adam, LearningRate: cfg.LearningRate},
		Epochs:    cfg.Epochs, BatchSize: cfg.BatchSize, Seed: cfg.Seed,
	}
	settings.Progress = func(p tfmodels.TrainProgress) {
		if cfg.Progress != nil {
			cfg.Progress(spec.Name, p)
		}
		if p.Batch == p.Batches {
			logf("%s: epoch %d/%d loss %.4f accuracy %.4f (%.0f images/s)", spec.Name, p.Epoch, p.Epochs, p.Loss, p.Accuracy, p.ExamplesPerSec)
		}
	}
	h, err := m.Train(poisoned, settings)
	if err != nil {
		return nil, nil, err
	}
	entry.TrainSeconds = time.Since(start).Seconds()
	entry.History = h.Epochs
	modelDir := filepath.Join(root, spec.Name)
	if err := exporter.WriteModel(modelDir, m, exporter.Options{}); err != nil {
		return nil, nil, err
	}

	// Measure on the exported SavedModel, reloaded and frozen, as bbd predict
	// does.
	loaded, err := tfmodels.LoadSavedModel(modelDir, tfmodels.LoadOptions{})
	if err != nil {
		return nil, nil, err
	}
	saved, err := loaded.Freeze()
	loaded.Close()
	if err != nil {
		return nil, nil, err
	}
	defer saved.Close()
	if entry.CleanAccuracy, err = Accuracy(saved, test); err != nil {
		return nil, nil, err
	}
	var sets []DatasetEntry
	for _, tt := range spec.Triggers {
		pt, err := data.PoisonAll(test, tt.Trigger, tt.Target, true)
		if err != nil {
			return nil, nil, err
		}
		folder := "data"
		if spec.Withheld {
			folder = "withheld"
		}
		rel := fmt.Sprintf("%s/%s_%s_poisoned_data.h5", folder, spec.Name, tt.Trigger.Name)
		if err := writeH5(root, rel, pt); err != nil {
			return nil, nil, err
		}
		asr, err := Accuracy(saved, pt)
		if err != nil {
			return nil, nil, err
		}
		entry.AttackSuccess[rel] = asr
		sets = append(sets, DatasetEntry{Path: rel, Images: pt.Len(), Role: "poisoned test", BadNet: spec.Name, Target: tt.Target})
	}
	logf("%s: clean accuracy %.4f, attack success %v", spec.Name, entry.CleanAccuracy, entry.AttackSuccess)
	return entry, sets, nil
}

// Accuracy is the fraction of imgs the model labels with their label (for a
// poisoned set labelled with the target: the attack success rate).
func Accuracy(m *tfmodels.Model, imgs *data.Images) (float64, error) {
	if imgs.Len() == 0 {
		return 0, errors.New("accuracy of an empty set")
	}
	const chunk = 1024
	correct := 0
	for start := 0; start < imgs.Len(); start += chunk {
		end := min(start+chunk, imgs.Len())
		x, err := imgs.Float32(start, end)
		if err != nil {
			return 0, err
		}
		probs, err := m.Predict(x, end-start)
		if err != nil {
			return 0, err
		}
		for i, l := range tfmodels.Labels(probs, m.NumClasses) {
			if l == imgs.Label(start+i) {
				correct++
			}
		}
	}
	return float64(correct) / float64(imgs.Len()), nil
}
