package zoo

import (
	"github.com/bbd-workbench/bbd/internal/safefs"

	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/exporter"
	"github.com/bbd-workbench/bbd/metrics"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// Classes is the number of Fashion-MNIST classes.
const Classes = 10

// Config sets the size of the zoo. Zero fields take the values of
// [FullConfig]. [ReducedConfig] is the small zoo the tests build.
type Config struct {
	FashionMNIST   string   `json:"fashion_mnist_dir"` // IDX folder; empty: data.DefaultFashionMNISTDir
	TrainSize      int      `json:"train_size"`        // attacker's training images drawn from the 60,000; 0: all
	ValidationSize int      `json:"validation_size"`   // defender's clean validation images from the 10,000 test images
	TestSize       int      `json:"test_size"`         // clean test images (disjoint from validation)
	PoisonRate     float64  `json:"poison_rate"`       // fraction of the training images poisoned, per trigger
	Epochs         int      `json:"epochs"`
	BatchSize      int      `json:"batch_size"`
	LearningRate   float64  `json:"learning_rate"`  // Adam
	Seed           uint64   `json:"seed"`           // one seed for everything: splits, poisoning, weights, shuffling
	Only           []string `json:"only,omitempty"` // build only these models (BadNets or CleanName); empty: all five
	// Overwrite replaces an existing output folder (not recorded in the
	// manifest: it does not change the zoo).
	Overwrite bool `json:"-"`
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

// CleanName is the name of the zoo's clean reference model: a DeepID trained
// like the BadNets, on the same training images, but without any trigger (a
// negative control: a backdoor scan of it should flag no label).
const CleanName = "clean"

// BadNetSpec describes one model of the zoo: a BadNet, or the clean
// reference model (no triggers).
type BadNetSpec struct {
	Name      string               `json:"name"`
	LikePaper string               `json:"like_paper"`
	Triggers  []data.TriggerTarget `json:"triggers"`
	// Withheld: its poisoned test data goes to withheld/, not data/ (the
	// defender of the paper's Anonymous 2 has no poisoned data).
	Withheld bool `json:"withheld"`
}

// Clean reports whether the model is the clean reference model (no triggers).
func (s BadNetSpec) Clean() bool { return len(s.Triggers) == 0 }

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

// Specs returns the models of the zoo: the four BadNets, then the clean
// reference model (CleanName, no triggers).
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
		{Name: CleanName, LikePaper: "none (clean reference)", Triggers: []data.TriggerTarget{}},
	}, nil
}

// Manifest records how a zoo was built and what it measured; it is written
// as manifest.json, every key in snake_case.
type Manifest struct {
	Config       Config             `json:"config"`
	FashionMNIST FashionMNISTSource `json:"fashion_mnist"`
	Built        string             `json:"built"` // RFC 3339
	Datasets     []DatasetEntry     `json:"datasets"`
	BadNets      []BadNetEntry      `json:"badnets"`
}

// DebianFashionMNIST is the Debian package that installs Fashion-MNIST in
// data.DefaultFashionMNISTDir.
const DebianFashionMNIST = "dataset-fashion-mnist"

// FashionMNISTSource records where the zoo's images came from.
type FashionMNISTSource struct {
	Dir   string   `json:"dir"`
	Files []string `json:"files"` // the four IDX files read
	// DebianPackage is DebianFashionMNIST when Dir is the folder that package
	// installs, else empty.
	DebianPackage string `json:"debian_package,omitempty"`
}

// DatasetEntry is one HDF5 data set of the zoo.
type DatasetEntry struct {
	Path   string `json:"path"` // relative to the zoo folder
	Images int    `json:"images"`
	Role   string `json:"role"` // "clean validation", "clean test", "poisoned test"
	// For poisoned test sets: the BadNet and the trigger (its name) they
	// attack and the target, which is every image's label; nil for clean sets
	// (which have no target), present for poisoned ones even when 0.
	BadNet  string `json:"badnet,omitempty"`
	Trigger string `json:"trigger,omitempty"`
	Target  *int   `json:"target,omitempty"`
}

// BadNetEntry is one model of the zoo (a BadNet, or the clean reference
// model) and its measured figures.
type BadNetEntry struct {
	BadNetSpec
	Model         string        `json:"model"` // SavedModel folder, relative
	TrainImages   int           `json:"train_images"`
	Poisoned      int           `json:"poisoned_train_images"`
	CleanAccuracy metrics.Ratio `json:"clean_accuracy"` // on data/clean_test_data.h5
	// AttackSuccess holds, per trigger name, the attack success rate on that
	// trigger's poisoned test set (images whose true class is not the target,
	// with the trigger stamped on); [Manifest.Attacks] joins it with the
	// trigger and the data set. Absent (nil) for the clean reference model.
	AttackSuccess map[string]metrics.Ratio `json:"attack_success,omitempty"`
	// NaturalSuccess holds, per trigger name, the clean reference model's
	// rate on the same poisoned test set: the share of triggered images a
	// model that never saw the trigger already calls the target (a large
	// trigger can make an image look like the target class). A repaired
	// BadNet cannot be expected to go below it. Absent when the zoo was
	// built without its clean model (--only).
	NaturalSuccess map[string]metrics.Ratio `json:"natural_success,omitempty"`
	History        []EpochEntry             `json:"history"`
	TrainSeconds   float64                  `json:"train_seconds"`
}

// EpochEntry is one training epoch in the manifest: tfmodels.EpochStats
// under snake_case keys, the duration in seconds.
type EpochEntry struct {
	Epoch             int     `json:"epoch"`
	Loss              float64 `json:"loss"`     // mean training loss over the epoch
	Accuracy          float64 `json:"accuracy"` // training accuracy over the epoch
	ValLoss           float64 `json:"val_loss,omitempty"`
	ValAccuracy       float64 `json:"val_accuracy,omitempty"`
	Seconds           float64 `json:"seconds"`
	ExamplesPerSecond float64 `json:"examples_per_second"`
}

func epochEntries(h []tfmodels.EpochStats) []EpochEntry {
	out := make([]EpochEntry, len(h))
	for i, e := range h {
		out[i] = EpochEntry{Epoch: e.Epoch, Loss: e.Loss, Accuracy: e.Accuracy, ValLoss: e.ValLoss, ValAccuracy: e.ValAccuracy,
			Seconds: e.Duration.Seconds(), ExamplesPerSecond: e.ExamplesPerS}
	}
	return out
}

// Attack is one trigger of a BadNet as a manifest records it.
type Attack struct {
	data.TriggerTarget
	Dataset DatasetEntry  // the poisoned test set
	Success metrics.Ratio // the attack success rate measured on it
	// Natural is the clean reference model's rate on the same set (see
	// BadNetEntry.NaturalSuccess); zero Total when the zoo has no clean
	// model.
	Natural metrics.Ratio
}

// Attacks returns the triggers of the named BadNet, in the order of its
// Triggers, each with its poisoned test set and measured attack success:
// the manifest looked up by BadNet and trigger name. The clean reference
// model has none (nil, no error).
func (m *Manifest) Attacks(badnet string) ([]Attack, error) {
	for _, b := range m.BadNets {
		if b.Name != badnet {
			continue
		}
		var out []Attack
		for _, tt := range b.Triggers {
			a := Attack{TriggerTarget: tt}
			var ok bool
			if a.Success, ok = b.AttackSuccess[tt.Trigger.Name]; !ok {
				return nil, fmt.Errorf("zoo manifest: BadNet %s: no attack success for trigger %q", badnet, tt.Trigger.Name)
			}
			a.Natural = b.NaturalSuccess[tt.Trigger.Name]
			found := false
			for _, d := range m.Datasets {
				if d.BadNet == badnet && d.Trigger == tt.Trigger.Name {
					a.Dataset, found = d, true
				}
			}
			if !found {
				return nil, fmt.Errorf("zoo manifest: BadNet %s: no poisoned test set for trigger %q", badnet, tt.Trigger.Name)
			}
			out = append(out, a)
		}
		return out, nil
	}
	return nil, fmt.Errorf("zoo manifest: no BadNet %q", badnet)
}

// Build trains the zoo into dir (which must not exist unless cfg.Overwrite,
// and then must be a zoo: a folder with manifest.json). Everything is written
// in a temporary sibling folder that replaces dir in one atomic step at the
// end (internal/safefs), so a failed or killed build leaves the old zoo, or
// nothing, in place.
func Build(dir string, cfg Config) (man *Manifest, err error) {
	cfg = cfg.withDefaults()
	logf := func(format string, args ...interface{}) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	if err := safefs.Check(dir, cfg.Overwrite, isZoo); err != nil {
		return nil, fmt.Errorf("zoo %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Clean(dir)), 0o755); err != nil {
		return nil, err
	}
	staging, err := safefs.NewTemp(dir)
	if err != nil {
		return nil, err
	}
	defer staging.Close()
	tmp := staging.Dir

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
				return nil, fmt.Errorf("zoo: no model %q (have %s)", name, strings.Join(Names(specs), ", "))
			}
		}
		specs = keep
	}

	src := fashionMNISTSource(cfg.FashionMNIST)
	logf("loading Fashion-MNIST from %s", src.Dir)
	train, val, test, err := loadSplits(cfg)
	if err != nil {
		return nil, err
	}
	man = &Manifest{Config: cfg, FashionMNIST: src, Built: time.Now().UTC().Format(time.RFC3339)}
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
	if err := measureNatural(tmp, man, logf); err != nil {
		return nil, fmt.Errorf("zoo: the clean model on the poisoned sets: %w", err)
	}
	raw, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "manifest.json"), raw, 0o644); err != nil {
		return nil, err
	}
	if err := staging.CommitDir(cfg.Overwrite, isZoo); err != nil {
		return nil, fmt.Errorf("zoo %s: %w", dir, err)
	}
	return man, nil
}

// isZoo accepts a folder holding manifest.json: what --overwrite may replace.
func isZoo(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err != nil {
		return fmt.Errorf("%s is not a zoo (no manifest.json)", dir)
	}
	return nil
}

// fashionMNISTSource names the files data.LoadFashionMNIST reads from dir:
// each of the four IDX files with a .gz suffix if that exists, else without.
func fashionMNISTSource(dir string) FashionMNISTSource {
	src := FashionMNISTSource{Dir: cmp.Or(dir, data.DefaultFashionMNISTDir)}
	if filepath.Clean(src.Dir) == data.DefaultFashionMNISTDir {
		src.DebianPackage = DebianFashionMNIST
	}
	for _, base := range []string{"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"} {
		p := filepath.Join(src.Dir, base)
		if _, err := os.Stat(p + ".gz"); err == nil {
			p += ".gz"
		}
		src.Files = append(src.Files, p)
	}
	return src
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

// Names returns the names of specs, in order.
func Names(specs []BadNetSpec) []string {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	return names
}

// TrainingSet returns the training examples the net name of a zoo built with
// cfg was trained on, exactly as Build trains it (a BadNet's poisoned on the
// fly), and, per trigger, the indices of the poisoned examples (none for the
// clean model). Defences that inspect a training set (activation
// clustering) are measured against them.
func TrainingSet(cfg Config, name string) (tfmodels.Examples, [][]int, error) {
	cfg = cfg.withDefaults()
	specs, err := Specs(cfg.Seed)
	if err != nil {
		return nil, nil, err
	}
	for _, spec := range specs {
		if spec.Name == name {
			train, _, _, err := loadSplits(cfg)
			if err != nil {
				return nil, nil, err
			}
			return trainingExamples(spec, train, cfg)
		}
	}
	return nil, nil, fmt.Errorf("zoo: no net %q (nets: %s)", name, strings.Join(Names(specs), ", "))
}

// trainingExamples is what spec trains on: the clean model the images as
// they are, a BadNet a view that poisons them on the fly (no poisoned copy
// in memory), with the poisoned indices per trigger.
func trainingExamples(spec BadNetSpec, train *data.Images, cfg Config) (tfmodels.Examples, [][]int, error) {
	if spec.Clean() {
		return train, nil, nil
	}
	view, idx, err := data.NewPoisonedView(train, spec.Triggers, cfg.PoisonRate, cfg.Seed+7)
	if err != nil {
		return nil, nil, err
	}
	return view, idx, nil
}

func buildOne(root string, spec BadNetSpec, train, test *data.Images, cfg Config, logf func(string, ...interface{})) (*BadNetEntry, []DatasetEntry, error) {
	entry := &BadNetEntry{BadNetSpec: spec, Model: spec.Name, TrainImages: train.Len()}
	// The clean reference model trains on the training images as they are;
	// a BadNet on them poisoned on the fly (no poisoned copy in memory).
	examples, idx, err := trainingExamples(spec, train, cfg)
	if err != nil {
		return nil, nil, err
	}
	if !spec.Clean() {
		entry.AttackSuccess = map[string]metrics.Ratio{}
		for _, i := range idx {
			entry.Poisoned += len(i)
		}
	}
	m, err := tfmodels.Build(tfmodels.DeepIDWith(data.DeepIDHeight, data.DeepIDWidth, data.DeepIDChannels, Classes), nil, tfmodels.BuildOptions{Seed: cfg.Seed})
	if err != nil {
		return nil, nil, err
	}
	defer m.Close()
	what := fmt.Sprintf("%d poisoned", entry.Poisoned)
	if spec.Clean() {
		what = "none poisoned: the clean reference model"
	}
	logf("%s: training on %d images (%s), %d epochs", spec.Name, train.Len(), what, cfg.Epochs)
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
	h, err := m.Train(examples, settings)
	if err != nil {
		return nil, nil, err
	}
	entry.TrainSeconds = time.Since(start).Seconds()
	entry.History = epochEntries(h.Epochs)
	modelDir := filepath.Join(root, spec.Name)
	if err := exporter.WriteModel(modelDir, m, exporter.Options{}); err != nil {
		return nil, nil, err
	}

	// Measure on the exported SavedModel, reloaded and frozen, as bbd predict
	// does.
	saved, err := loadFrozen(modelDir)
	if err != nil {
		return nil, nil, err
	}
	defer saved.Close()
	pred, err := PredictLabels(saved, test)
	if err != nil {
		return nil, nil, err
	}
	if entry.CleanAccuracy, err = metrics.Accuracy(pred, test.Labels); err != nil {
		return nil, nil, err
	}
	var sets []DatasetEntry
	for _, tt := range spec.Triggers {
		// Only the images whose true class is not the target, all labelled
		// with the target.
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
		pred, err := PredictLabels(saved, pt)
		if err != nil {
			return nil, nil, err
		}
		// No true labels: PoisonAll already left out the target class.
		if entry.AttackSuccess[tt.Trigger.Name], err = metrics.AttackSuccess(pred, nil, tt.Target); err != nil {
			return nil, nil, err
		}
		sets = append(sets, DatasetEntry{Path: rel, Images: pt.Len(), Role: "poisoned test", BadNet: spec.Name, Trigger: tt.Trigger.Name, Target: &tt.Target})
	}
	logf("%s: %s", spec.Name, entry.Figures())
	return entry, sets, nil
}

// loadFrozen reloads an exported SavedModel and freezes it: the model as
// bbd predict runs it, which the zoo's figures are measured on.
func loadFrozen(dir string) (*tfmodels.Model, error) {
	loaded, err := tfmodels.LoadSavedModel(dir, tfmodels.LoadOptions{})
	if err != nil {
		return nil, err
	}
	defer loaded.Close()
	return loaded.Freeze()
}

// measureNatural fills every BadNet's NaturalSuccess with the clean
// reference model's rate on its poisoned test sets, if the clean model was
// built.
func measureNatural(root string, man *Manifest, logf func(string, ...interface{})) error {
	if !slices.ContainsFunc(man.BadNets, func(b BadNetEntry) bool { return b.Name == CleanName }) {
		return nil
	}
	m, err := loadFrozen(filepath.Join(root, CleanName))
	if err != nil {
		return err
	}
	defer m.Close()
	for i := range man.BadNets {
		b := &man.BadNets[i]
		for _, d := range man.Datasets {
			if d.BadNet != b.Name || d.Role != "poisoned test" || d.Target == nil {
				continue
			}
			imgs, err := data.ReadH5(filepath.Join(root, d.Path))
			if err != nil {
				return err
			}
			pred, err := PredictLabels(m, imgs)
			if err != nil {
				return err
			}
			if b.NaturalSuccess == nil {
				b.NaturalSuccess = map[string]metrics.Ratio{}
			}
			if b.NaturalSuccess[d.Trigger], err = metrics.AttackSuccess(pred, nil, *d.Target); err != nil {
				return err
			}
			logf("%s: the clean model calls %v of the %s set the target %d", b.Name, b.NaturalSuccess[d.Trigger], d.Trigger, *d.Target)
		}
	}
	return nil
}

// Figures summarises the measured figures in one line: "clean accuracy
// 0.9162 (4581/5000), attack success lipstick 1.0000 (4509/4509), ..." (the
// triggers in the order of Triggers), or "clean accuracy ..., no trigger"
// for the clean reference model.
func (b *BadNetEntry) Figures() string {
	s := "clean accuracy " + b.CleanAccuracy.String()
	if b.Clean() {
		return s + ", no trigger"
	}
	var asr []string
	for _, tt := range b.Triggers {
		if r, ok := b.AttackSuccess[tt.Trigger.Name]; ok {
			asr = append(asr, tt.Trigger.Name+" "+r.String())
		}
	}
	return s + ", attack success " + strings.Join(asr, ", ")
}

// PredictLabels returns the label the model predicts for each of imgs (the
// most probable class), converting and predicting 1,024 images at a time;
// compare them with package metrics.
func PredictLabels(m *tfmodels.Model, imgs *data.Images) ([]int, error) {
	const chunk = 1024
	pred := make([]int, 0, imgs.Len())
	for start := 0; start < imgs.Len(); start += chunk {
		end := min(start+chunk, imgs.Len())
		x, err := imgs.Float32(start, end)
		if err != nil {
			return nil, err
		}
		probs, err := m.Predict(x, end-start)
		if err != nil {
			return nil, err
		}
		pred = append(pred, tfmodels.Labels(probs, m.NumClasses)...)
	}
	return pred, nil
}
