package reproduce

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/exporter"
	"github.com/bbd-workbench/bbd/metrics"
	"github.com/bbd-workbench/bbd/zoo"
)

// CleanTestSet is the name fine-pruning's reports give the clean test data;
// a poisoned set is called PoisonedSetName(trigger).
const CleanTestSet = "clean_test"

// PoisonedSetName is the report name of a trigger's poisoned test set.
func PoisonedSetName(trigger string) string { return "poisoned_" + trigger }

// PruneResult is one fine-pruning run: a BadNet, a method, its sweep.
type PruneResult struct {
	Model  string                   `json:"model"`
	Method string                   `json:"method"`
	Report *defence.FinePruneReport `json:"report"`
	// SavedModel is the repaired model at the chosen fraction, relative to
	// the output folder.
	SavedModel string `json:"saved_model"`
	// Images per evaluation set (to pool several poisoned sets).
	Images map[string]int `json:"images"`
}

// PooledAttack is the attack success over all poisoned sets of s (weighted
// by their sizes).
func (p *PruneResult) PooledAttack(s defence.PruneScores) float64 {
	hits, total := 0.0, 0
	for name, v := range s.AttackSuccess {
		n := p.Images[name]
		hits += v * float64(n)
		total += n
	}
	if total == 0 {
		return 0
	}
	return hits / float64(total)
}

// ReconstructResult is the paper's "reconstructed model" of a BadNet: the
// network up to its last hidden layer with a new N+1 head trained on clean
// data plus half of each poisoned set labelled N, measured on the clean test
// data and the other halves.
type ReconstructResult struct {
	Model         string  `json:"model"`
	CleanAccuracy float64 `json:"clean_accuracy"`
	// AttackSuccess is the share of the held-back poisoned images labelled
	// with their target; Rejected the share labelled N.
	AttackSuccess metrics.Ratio `json:"attack_success"`
	Rejected      metrics.Ratio `json:"rejected"`
	TrainImages   int           `json:"train_images"`
}

// FinePruningResults are the data of the paper's Figures 1 and 2 and Table 1.
type FinePruningResults struct {
	Prune         []PruneResult       `json:"prune"`
	Reconstructed []ReconstructResult `json:"reconstructed"`
}

// Find returns the run of a model and method.
func (f *FinePruningResults) Find(model, method string) (*PruneResult, bool) {
	for i := range f.Prune {
		if f.Prune[i].Model == model && f.Prune[i].Method == method {
			return &f.Prune[i], true
		}
	}
	return nil, false
}

// FinePruning fine-prunes every BadNet of the source with every method of
// the settings (sweeping the fractions for unit and channel pruning, the
// automatic choice picking the repaired model, which is saved under
// Out/models), and builds the reconstructed models.
func (r *Runner) FinePruning(ctx context.Context) (*FinePruningResults, error) {
	res := &FinePruningResults{}
	for _, b := range r.cfg.Source.BadNets() {
		for _, method := range r.set.Methods {
			pr, err := r.pruneOne(ctx, b, method)
			if err != nil {
				return nil, err
			}
			res.Prune = append(res.Prune, *pr)
		}
		rr, err := r.reconstructOne(ctx, b)
		if err != nil {
			return nil, err
		}
		res.Reconstructed = append(res.Reconstructed, *rr)
	}
	return res, nil
}

// evalSets are the clean test and poisoned test sets of b, for reports.
func (r *Runner) evalSets(b Model, shape [3]int) ([]defence.EvalSet, map[string]int, error) {
	test, err := r.load(r.cfg.Source.CleanTest, shape, 0)
	if err != nil {
		return nil, nil, err
	}
	sets := []defence.EvalSet{{Name: CleanTestSet, Data: test}}
	sizes := map[string]int{CleanTestSet: test.Len()}
	for _, p := range b.Poisoned {
		imgs, err := r.load(p.Path, shape, 0)
		if err != nil {
			return nil, nil, err
		}
		name := PoisonedSetName(p.Trigger)
		sets = append(sets, defence.EvalSet{Name: name, Data: imgs, Poisoned: true})
		sizes[name] = imgs.Len()
	}
	return sets, sizes, nil
}

func (r *Runner) modelFiles(b Model) []string {
	files := []string{b.Path, r.cfg.Source.CleanValidation, r.cfg.Source.CleanTest}
	for _, p := range b.Poisoned {
		files = append(files, p.Path)
	}
	return files
}

// unitDir is the folder of a unit's files (a saved model, a scan) under
// the output folder: kind/name-hash, hash from the unit's cache key.
func unitDir(kind, name, hash string) string {
	return filepath.Join(kind, name+"-"+hash)
}

func (r *Runner) pruneOne(ctx context.Context, b Model, method string) (*PruneResult, error) {
	// The authors' fine-tuning: on the plain images, without bbd's
	// occlusion, and the rule's budget of 3 points that the tables state.
	cfg := defence.FinePruneConfig{Method: method, Seed: r.set.Seed, Occlude: defence.NoOcclusion, MaxAccuracyDrop: 0.03}
	if method == defence.PruneWeight {
		cfg.FineTune.Epochs = r.set.WeightEpochs
	} else {
		cfg.Fractions = r.set.Fractions
		cfg.FineTune.Epochs = r.set.Epochs
	}
	cfg = cfg.WithDefaults()
	unit := ExpFinePruning + "/" + b.Name + "/" + method
	key := struct {
		Model    Model
		Config   defence.FinePruneConfig
		Max      int
		Settings string
	}{b, cfg, r.set.MaxImages, "v1"}
	res := &PruneResult{}
	hit, err := r.cached(unit, key, r.modelFiles(b), res, func(hash string) error {
		m, val, err := r.openModel(b, 0)
		if err != nil {
			return err
		}
		defer m.Close()
		evals, sizes, err := r.evalSets(b, m.InputShape)
		if err != nil {
			return err
		}
		runs := 1
		if method != defence.PruneWeight {
			runs = len(cfg.Fractions)
		}
		epochs := cfg.FineTune.Epochs
		batches := (val.Len() - cfg.HeldOut(val.Len()) + cfg.FineTune.BatchSize - 1) / cfg.FineTune.BatchSize
		total, done := runs*epochs*batches, 0
		c := cfg
		c.Progress = func(p defence.PruneProgress) {
			if p.Stage == "fine-tuning" && p.Train.Batch > 0 {
				done++
				r.progress(Progress{Experiment: ExpFinePruning, Unit: b.Name + " " + method, Done: min(done, total), Total: total})
			}
		}
		repaired, rep, err := defence.FinePrune(ctx, m, val, evals, c)
		if err != nil {
			return err
		}
		defer repaired.Close()
		rel := unitDir("models", b.Name+"-"+method, hash)
		dst := filepath.Join(r.cfg.Out, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := exporter.WriteModel(dst, repaired, exporter.Options{Overwrite: true}); err != nil {
			return fmt.Errorf("saving the repaired model: %w", err)
		}
		*res = PruneResult{Model: b.Name, Method: method, Report: rep, SavedModel: rel, Images: sizes}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fine-pruning %s (%s): %w", b.Name, method, err)
	}
	if hit {
		if _, err := os.Stat(filepath.Join(r.cfg.Out, res.SavedModel, "saved_model.pb")); err != nil {
			// The report is cached but the model is gone: compute again.
			_ = os.Remove(filepath.Join(r.cfg.Out, "cache", filepath.FromSlash(unit)+".json"))
			return r.pruneOne(ctx, b, method)
		}
		r.progress(Progress{Experiment: ExpFinePruning, Unit: b.Name + " " + method, Cached: true})
	}
	r.logf("fine-pruning %s %s: fraction %.2f, clean test %.4f, attack %.4f", b.Name, method, res.Report.Fraction,
		res.Report.Chosen.CleanAccuracy[CleanTestSet], res.PooledAttack(res.Report.Chosen))
	return res, nil
}

func (r *Runner) reconstructOne(ctx context.Context, b Model) (*ReconstructResult, error) {
	cfg := defence.ReconstructConfig{Seed: r.set.Seed}
	cfg.Train.Epochs = r.set.ReconstructEpochs
	unit := ExpFinePruning + "/" + b.Name + "/reconstructed"
	key := struct {
		Model  Model
		Config defence.ReconstructConfig
		Max    int
	}{b, cfg, r.set.MaxImages}
	res := &ReconstructResult{}
	hit, err := r.cached(unit, key, r.modelFiles(b), res, func(string) error {
		m, val, err := r.openModel(b, 0)
		if err != nil {
			return err
		}
		defer m.Close()
		test, err := r.load(r.cfg.Source.CleanTest, m.InputShape, 0)
		if err != nil {
			return err
		}
		// The defender's poisoned examples: the first half of each poisoned
		// set; the second half measures the model.
		var train []defence.Examples
		var held []*data.Images
		var targets []int
		for _, p := range b.Poisoned {
			imgs, err := r.load(p.Path, m.InputShape, 0)
			if err != nil {
				return err
			}
			half := imgs.Len() / 2
			a, err := imgs.Slice(0, half)
			if err != nil {
				return err
			}
			z, err := imgs.Slice(half, imgs.Len())
			if err != nil {
				return err
			}
			train, held, targets = append(train, a), append(held, z), append(targets, p.Target)
			res.TrainImages += half
		}
		rec, _, err := defence.Reconstruct(ctx, m, val, train, cfg)
		if err != nil {
			return err
		}
		defer rec.Close()
		pred, err := zoo.PredictLabels(rec, test)
		if err != nil {
			return err
		}
		acc, err := metrics.Accuracy(pred, labelsOf(test))
		if err != nil {
			return err
		}
		res.Model, res.CleanAccuracy, res.TrainImages = b.Name, acc.Value(), res.TrainImages+val.Len()
		for i, h := range held {
			pred, err := zoo.PredictLabels(rec, h)
			if err != nil {
				return err
			}
			for _, l := range pred {
				res.AttackSuccess.Total++
				res.Rejected.Total++
				if l == targets[i] {
					res.AttackSuccess.Hits++
				}
				if l == m.NumClasses {
					res.Rejected.Hits++
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reconstructing %s: %w", b.Name, err)
	}
	r.progress(Progress{Experiment: ExpFinePruning, Unit: b.Name + " reconstructed", Cached: hit, Done: 1, Total: 1})
	return res, nil
}

func labelsOf(imgs *data.Images) []int {
	out := make([]int, imgs.Len())
	for i := range out {
		out[i] = imgs.Label(i)
	}
	return out
}
