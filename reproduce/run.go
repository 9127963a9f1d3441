package reproduce

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/internal/safefs"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// Experiments, in the order Run runs them (BBD reads the fine-pruned models
// and the Neural Cleanse findings).
const (
	ExpFinePruning   = "fine-pruning"
	ExpSTRIP         = "strip"
	ExpNeuralCleanse = "neural-cleanse"
	ExpBBD           = "bbd"
	ExpActivations   = "activations"
)

// AllExperiments lists every experiment.
var AllExperiments = []string{ExpFinePruning, ExpSTRIP, ExpNeuralCleanse, ExpBBD, ExpActivations}

// Settings size a reproduction. Zero fields take the paper's settings
// (DefaultSettings); SmallSettings is a quick run for tests and notebooks.
type Settings struct {
	// Methods of fine-pruning (defence.PruneUnit, PruneChannel, PruneWeight);
	// nil: all three. BBD uses the unit-pruned model, the authors' choice.
	Methods []string `json:"methods"`
	// Fractions of the unit and channel sweeps; nil: 0.50 to 0.95 by 0.05.
	Fractions []float64 `json:"fractions"`
	// Epochs of fine-tuning (unit, channel; zero: 20), WeightEpochs of the
	// weight-pruning recipe (zero: 10), ReconstructEpochs of the
	// reconstructed model's new head (zero: 10).
	Epochs            int `json:"epochs"`
	WeightEpochs      int `json:"weight_epochs"`
	ReconstructEpochs int `json:"reconstruct_epochs"`
	// MaxImages caps every data set read (the first MaxImages images); zero:
	// all.
	MaxImages int `json:"max_images"`
	// STRIPImages caps the clean and each poisoned test set STRIP scores
	// (zero: 1000, the authors' clean count); STRIPOverlays is M (zero: 100).
	STRIPImages   int `json:"strip_images"`
	STRIPOverlays int `json:"strip_overlays"`
	// CleanseLabels are the labels Neural Cleanse scans (nil: every label,
	// with the fast budget when a model has more than 100); CleanseSteps
	// bounds the steps per label (zero: the preset's 300); CleanseImages
	// the images of one step (zero: 1000).
	CleanseLabels []int `json:"cleanse_labels"`
	CleanseSteps  int   `json:"cleanse_steps"`
	CleanseImages int   `json:"cleanse_images"`
	// ActivationImages caps the clean and poisoned images of Figure 9
	// (zero: 2000) and ClusterImages the training images activation
	// clustering reads (zero: all).
	ActivationImages int `json:"activation_images"`
	ClusterImages    int `json:"cluster_images"`
	// Models restricts the run to these models of the source (nil: all).
	Models []string `json:"models,omitempty"`
	// Seed of every random choice.
	Seed uint64 `json:"seed"`
}

// DefaultSettings are the paper's settings with every data set whole.
func DefaultSettings() Settings { return Settings{}.withDefaults() }

// SmallSettings is a run of a few minutes on the reduced zoo: two fractions,
// two epochs, a few hundred images per set, 40 Neural Cleanse steps.
func SmallSettings() Settings {
	return Settings{
		Methods: nil, Fractions: []float64{0.7, 0.9}, Epochs: 2, WeightEpochs: 2, ReconstructEpochs: 2,
		MaxImages: 600, STRIPImages: 200, STRIPOverlays: 20, CleanseSteps: 40, CleanseImages: 200,
		ActivationImages: 400, ClusterImages: 3000, Seed: 1,
	}.withDefaults()
}

// TinySettings are a run of about a minute on the reduced zoo, for tests and
// the notebooks' headless runs: SmallSettings cut to two fractions, one
// epoch, a few hundred images, 15 Neural Cleanse steps, on the models
// sunglasses, multi_trigger and clean (the zoo's names).
func TinySettings() Settings {
	s := SmallSettings()
	s.Fractions = []float64{0.6, 0.9}
	s.Epochs, s.WeightEpochs, s.ReconstructEpochs = 1, 1, 1
	s.MaxImages, s.STRIPImages, s.STRIPOverlays = 300, 100, 10
	s.CleanseSteps, s.CleanseImages = 15, 64
	s.ActivationImages, s.ClusterImages = 200, 2000
	s.Models = []string{"sunglasses", "multi_trigger", "clean"}
	return s
}

func (s Settings) withDefaults() Settings {
	if len(s.Methods) == 0 {
		s.Methods = []string{"unit", "channel", "weight"}
	}
	if len(s.Fractions) == 0 {
		for i := 0; i < 10; i++ {
			s.Fractions = append(s.Fractions, float64(50+5*i)/100)
		}
	}
	s.Epochs = or(s.Epochs, 20)
	s.WeightEpochs = or(s.WeightEpochs, 10)
	s.ReconstructEpochs = or(s.ReconstructEpochs, 10)
	s.STRIPImages = or(s.STRIPImages, 1000)
	s.STRIPOverlays = or(s.STRIPOverlays, 100)
	s.CleanseSteps = or(s.CleanseSteps, 300)
	s.CleanseImages = or(s.CleanseImages, 1000)
	s.ActivationImages = or(s.ActivationImages, 2000)
	return s
}

func or(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// Validate reports settings no run can use.
func (s Settings) Validate() error {
	for _, m := range s.Methods {
		if !slices.Contains([]string{"unit", "channel", "weight"}, m) {
			return fmt.Errorf("reproduce: settings: method %q: expected unit, channel or weight", m)
		}
	}
	for _, f := range s.Fractions {
		if !(f > 0 && f < 1) {
			return fmt.Errorf("reproduce: settings: fraction %v: expected a value in (0, 1)", f)
		}
	}
	for name, v := range map[string]int{"epochs": s.Epochs, "weight_epochs": s.WeightEpochs, "reconstruct_epochs": s.ReconstructEpochs,
		"max_images": s.MaxImages, "strip_images": s.STRIPImages, "strip_overlays": s.STRIPOverlays, "cleanse_steps": s.CleanseSteps,
		"cleanse_images": s.CleanseImages, "activation_images": s.ActivationImages, "cluster_images": s.ClusterImages} {
		if v < 0 {
			return fmt.Errorf("reproduce: settings: %s is %d: expected zero (the default) or more", name, v)
		}
	}
	for _, l := range s.CleanseLabels {
		if l < 0 {
			return fmt.Errorf("reproduce: settings: Neural Cleanse label %d: expected a label >= 0", l)
		}
	}
	return nil
}

// Progress says where a run is: the experiment, the unit of work (a model,
// a method), and how far that unit is.
type Progress struct {
	Experiment string
	Unit       string
	Done       int // of Total, in the unit's own steps (batches, labels)
	Total      int
	Cached     bool // the unit's result came from the cache
}

// Config configures a Runner.
type Config struct {
	Source   *Source
	Out      string // the output folder (figures, tables, report, cache)
	Settings Settings
	// Progress, if set, is told about each unit of work.
	Progress func(Progress)
	// Log receives one line per finished unit; nil: none.
	Log io.Writer
}

// Runner runs the paper's experiments on a Source, caching every unit of
// work in Out/cache by its inputs, so that a second run (or one resumed
// after an interruption) reads what is done and computes the rest.
type Runner struct {
	cfg Config
	set Settings

	mu     sync.Mutex
	images map[string]*data.Images // data sets read, by path
}

// MarkerFile marks a folder as a reproduction's output: Run reuses (resumes)
// a folder holding it and refuses any other non-empty folder.
const MarkerFile = "reproduce.json"

// New checks cfg and prepares its output folder: Out is created, or must be
// empty, or must hold an earlier reproduction (its MarkerFile).
func New(cfg Config) (*Runner, error) {
	if cfg.Source == nil {
		return nil, errors.New("reproduce: no source (ZooSource or CompetitionSource)")
	}
	if cfg.Out == "" {
		return nil, errors.New("reproduce: no output folder")
	}
	set := cfg.Settings.withDefaults()
	if err := set.Validate(); err != nil {
		return nil, err
	}
	if len(set.Models) > 0 {
		src := *cfg.Source
		src.Models = nil
		for _, name := range set.Models {
			m, ok := cfg.Source.Model(name)
			if !ok {
				return nil, fmt.Errorf("reproduce: settings: model %q is not in the %s source %s", name, cfg.Source.Kind, cfg.Source.Dir)
			}
			src.Models = append(src.Models, m)
		}
		cfg.Source = &src
	}
	if err := prepareOut(cfg.Out); err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg, set: set, images: map[string]*data.Images{}}, nil
}

func prepareOut(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("reproduce: output folder %s: %w", dir, err)
		}
	case err != nil:
		return fmt.Errorf("reproduce: output folder %s: expected a folder: %w", dir, err)
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dir, MarkerFile)); err != nil {
			return fmt.Errorf("reproduce: output folder %s: expected an empty folder or an earlier reproduction (with %s), found %d other entries: choose another --out", dir, MarkerFile, len(entries))
		}
		return nil
	}
	marker, _ := json.Marshal(map[string]string{"what": "bbd reproduce output; delete the folder to start again"})
	return safefs.WriteFile(filepath.Join(dir, MarkerFile), marker, 0o644, false)
}

// ClearCache deletes the cache of the reproduction in out (only when out is
// a reproduction's folder: it holds MarkerFile), so that the next run
// computes every unit again. A folder that does not exist is left alone.
func ClearCache(out string) error {
	if _, err := os.Stat(out); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(filepath.Join(out, MarkerFile)); err != nil {
		return fmt.Errorf("reproduce: %s: expected an earlier reproduction (with %s) whose cache to clear: %w", out, MarkerFile, err)
	}
	return os.RemoveAll(filepath.Join(out, "cache"))
}

// Settings returns the settings in force (defaults filled in).
func (r *Runner) Settings() Settings { return r.set }

// Source returns the runner's source.
func (r *Runner) Source() *Source { return r.cfg.Source }

// Out returns the output folder.
func (r *Runner) Out() string { return r.cfg.Out }

func (r *Runner) progress(p Progress) {
	if r.cfg.Progress != nil {
		r.cfg.Progress(p)
	}
}

func (r *Runner) logf(format string, args ...any) {
	if r.cfg.Log != nil {
		fmt.Fprintf(r.cfg.Log, format+"\n", args...)
	}
}

// load reads a data set once, at the models' input size, capped at n
// images (0: all; MaxImages caps too).
func (r *Runner) load(path string, shape [3]int, n int) (*data.Images, error) {
	key := fmt.Sprintf("%s|%v", path, shape)
	r.mu.Lock()
	imgs, ok := r.images[key]
	r.mu.Unlock()
	if !ok {
		var err error
		imgs, err = data.Load(path, data.ImageOptions{H: shape[0], W: shape[1]})
		if err != nil {
			return nil, fmt.Errorf("data %s: %w", path, err)
		}
		r.mu.Lock()
		r.images[key] = imgs
		r.mu.Unlock()
	}
	if r.set.MaxImages > 0 && (n == 0 || n > r.set.MaxImages) {
		n = r.set.MaxImages
	}
	if n > 0 && n < imgs.Len() {
		return imgs.Slice(0, n)
	}
	return imgs, nil
}

// openModel loads b and the first n images of the clean validation data
// (0: all) at its input size. Close the model.
func (r *Runner) openModel(b Model, n int) (*tfmodels.Model, *data.Images, error) {
	m, err := loadModel(b)
	if err != nil {
		return nil, nil, err
	}
	val, err := r.load(r.cfg.Source.CleanValidation, m.InputShape, n)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, val, nil
}

// loadModel opens a model of the source.
func loadModel(m Model) (*tfmodels.Model, error) {
	if st, err := os.Stat(m.Path); err == nil && st.IsDir() {
		mod, err := tfmodels.LoadSavedModel(m.Path, tfmodels.LoadOptions{})
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", m.Path, err)
		}
		return mod, nil
	}
	var arch *tfmodels.Architecture
	if m.Arch == "deepid" {
		arch = tfmodels.DeepID()
	}
	mod, err := tfmodels.ImportKerasH5(m.Path, arch, tfmodels.BuildOptions{Source: m.Path})
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Path, err)
	}
	return mod, nil
}

// fileStamp identifies a file's content cheaply: path, size, modification
// time (folders: of every file inside).
func fileStamp(path string) string {
	var b strings.Builder
	_ = filepath.Walk(path, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			fmt.Fprintf(&b, "%s %d %d;", p, info.Size(), info.ModTime().UnixNano())
		}
		return nil
	})
	return b.String()
}

// pointerInKey finds a printed address (0xc000123456) in a cache key.
var pointerInKey = regexp.MustCompile(`0x[0-9a-f]{6,}`)

// cacheVersion changes when a cached result's meaning changes, for every
// experiment; experimentVersions when one experiment's method changes (a
// result cached by an older method is computed again, never shown as this
// method's). The cache is keyed by inputs and settings, not by the bbd
// build: a change elsewhere in bbd that alters results must bump these.
const cacheVersion = "1"

var experimentVersions = map[string]string{
	// 2: the MAD threshold grows with the labels tested (Bonferroni); 3: the
	// data-free last-layer check (reported, and protected by the fast budget);
	// 4: the verdict adds the last-layer check's flags.
	ExpNeuralCleanse: "4",
}

// cached returns the unit's result from Out/cache/<name>.json when it was
// computed from the same key (inputs and settings, file stamps of files),
// else computes it and stores it. Interrupted computations store nothing.
// compute gets the key's short hash, to name the files it writes beside the
// cache (a saved model, a scan): results of other settings never share them.
func (r *Runner) cached(name string, key any, files []string, out any, compute func(hash string) error) (hit bool, err error) {
	h := sha256.New()
	// %+v, not JSON: configurations hold (nil) progress callbacks, which
	// JSON refuses; maps print sorted.
	exp, _, _ := strings.Cut(name, "/")
	ks := fmt.Sprintf("%+v", key)
	if pointerInKey.MatchString(ks) {
		// An address differs from run to run: such a key never hits.
		return false, fmt.Errorf("reproduce: the cache key of %s prints a pointer (%s): key by value", name, pointerInKey.FindString(ks))
	}
	fmt.Fprintf(h, "%s %s\n%s\n%s\n", cacheVersion, experimentVersions[exp], name, ks)
	for _, f := range files {
		fmt.Fprintln(h, fileStamp(f))
	}
	sum := hex.EncodeToString(h.Sum(nil))
	path := filepath.Join(r.cfg.Out, "cache", filepath.FromSlash(name)+".json")
	var stored struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	if raw, err := os.ReadFile(path); err == nil && json.Unmarshal(raw, &stored) == nil && stored.Key == sum {
		if err := json.Unmarshal(stored.Value, out); err == nil {
			return true, nil
		}
	}
	if err := compute(sum[:12]); err != nil {
		return false, err
	}
	val, err := json.Marshal(out)
	if err != nil {
		return false, err
	}
	stored.Key, stored.Value = sum, val
	raw, err := json.MarshalIndent(stored, "", " ")
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, err
	}
	return false, safefs.WriteFile(path, raw, 0o644, true)
}

// cancelled reports whether err is an interruption.
func cancelled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
