package reproduce

import (
	"context"
	"fmt"

	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/tfmodels"
	"github.com/bbd-workbench/bbd/zoo"
)

// ActivationResult is the activation analysis of one BadNet: the data of
// the paper's Figure 9 (clean and poisoned activations on their top two
// principal components) and, on a zoo, activation clustering (Chen et al.
// 2018) of the BadNet's own poisoned training set.
type ActivationResult struct {
	Model string `json:"model"`
	// PCA holds two point sets: clean validation images, then the first
	// poisoned test set (Trigger).
	PCA     *defence.PCAPoints `json:"pca"`
	Trigger string             `json:"trigger"`
	// Clustering is nil when the training set is not known (competition
	// files): it needs the training data with its poisoned indices.
	Clustering *defence.ActivationReport `json:"clustering,omitempty"`
	// TrainImages the clustering read; Poisoned of them were poisoned.
	TrainImages int `json:"train_images,omitempty"`
	Poisoned    int `json:"poisoned,omitempty"`
}

// Activations runs the activation analysis of every BadNet.
func (r *Runner) Activations(ctx context.Context) ([]ActivationResult, error) {
	var out []ActivationResult
	for _, b := range r.cfg.Source.BadNets() {
		res, err := r.activationsOne(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("activations %s: %w", b.Name, err)
		}
		out = append(out, *res)
	}
	return out, nil
}

func (r *Runner) activationsOne(ctx context.Context, b Model) (*ActivationResult, error) {
	unit := ExpActivations + "/" + b.Name
	// The zoo's config by value: a key must not print a pointer.
	hasZoo, zooCfg := r.cfg.Source.Zoo != nil, zoo.Config{}
	if hasZoo {
		zooCfg = r.cfg.Source.Zoo.Config
	}
	key := struct {
		Model              Model
		Images, Train, Max int
		Zoo                zoo.Config
		Seed               uint64
	}{b, r.set.ActivationImages, r.set.ClusterImages, r.set.MaxImages, zooCfg, r.set.Seed}
	res := &ActivationResult{}
	hit, err := r.cached(unit, key, r.modelFiles(b), res, func(string) error {
		m, clean, err := r.openModel(b, r.set.ActivationImages)
		if err != nil {
			return err
		}
		defer m.Close()
		pois, err := r.load(b.Poisoned[0].Path, m.InputShape, r.set.ActivationImages)
		if err != nil {
			return err
		}
		r.progress(Progress{Experiment: ExpActivations, Unit: b.Name + " pca", Done: 0, Total: 1})
		res.Model, res.Trigger = b.Name, b.Poisoned[0].Trigger
		if res.PCA, err = defence.PCA2D(ctx, m, "", clean, pois); err != nil {
			return err
		}
		if !hasZoo {
			return nil
		}
		train, idx, err := zoo.TrainingSet(zooCfg, b.Name)
		if err != nil {
			return err
		}
		n := train.Len()
		if r.set.ClusterImages > 0 && r.set.ClusterImages < n {
			n = r.set.ClusterImages
		}
		truth := make([]bool, n)
		for _, t := range idx {
			for _, i := range t {
				if i < n && !truth[i] {
					truth[i] = true
					res.Poisoned++
				}
			}
		}
		cfg := defence.ActivationClusteringConfig{Seed: r.set.Seed, Progress: func(pass, done, total int) {
			r.progress(Progress{Experiment: ExpActivations, Unit: fmt.Sprintf("%s clustering pass %d", b.Name, pass), Done: done, Total: total})
		}}
		ac, err := defence.NewActivationClustering(cfg)
		if err != nil {
			return err
		}
		rep, err := ac.Run(ctx, m, firstN{train, n})
		if err != nil {
			return err
		}
		if err := rep.Evaluate(truth); err != nil {
			return err
		}
		res.Clustering, res.TrainImages = rep, n
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.progress(Progress{Experiment: ExpActivations, Unit: b.Name, Cached: hit, Done: 1, Total: 1})
	if c := res.Clustering; c != nil && c.Evaluation != nil {
		r.logf("activations %s: clustering flagged classes %v, precision %.4f, recall %.4f", b.Name, c.Flagged, c.Evaluation.Precision.Value(), c.Evaluation.Recall.Value())
	}
	return res, nil
}

// firstN is the first n examples of ex.
type firstN struct {
	ex tfmodels.Examples
	n  int
}

func (f firstN) Len() int { return f.n }
func (f firstN) Gather(idx []int, x []float32, labels []int32) error {
	return f.ex.Gather(idx, x, labels)
}
