package reproduce

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// BBDResult is the Bimodel Backdoor Defence of one BadNet, targeted and
// untargeted: the data of the paper's Table 4 and of equations (3)-(6).
type BBDResult struct {
	Model string `json:"model"`
	// Repaired names the fine-pruning method of the repaired model.
	Repaired string `json:"repaired"`
	// TargetsFrom says where the targeted defence's suspect labels come
	// from: "neural-cleanse" (the scan's flags) or "known" (the attacker's
	// targets, when no scan ran or it flagged nothing).
	TargetsFrom string                 `json:"targets_from"`
	Targeted    *defence.BBDEvaluation `json:"targeted"`
	Untargeted  *defence.BBDEvaluation `json:"untargeted"`
}

// BBD combines every BadNet with its repaired model (unit fine-pruning when
// it ran, else the first method) and evaluates both modes on the clean test
// data plus every poisoned set relabelled N. Suspect labels come from the
// Neural Cleanse results when given.
func (r *Runner) BBD(ctx context.Context, fp *FinePruningResults, nc []CleanseResult) ([]BBDResult, error) {
	if fp == nil || len(fp.Prune) == 0 {
		return nil, fmt.Errorf("bbd: no fine-pruned models (run the fine-pruning experiment first)")
	}
	method := "unit"
	if !slices.Contains(r.set.Methods, method) {
		method = r.set.Methods[0]
	}
	var out []BBDResult
	for _, b := range r.cfg.Source.BadNets() {
		pr, ok := fp.Find(b.Name, method)
		if !ok {
			return nil, fmt.Errorf("bbd %s: no %s fine-pruning result", b.Name, method)
		}
		targets, from := b.Targets, "known"
		for _, c := range nc {
			if c.Model == b.Name && len(c.Flagged) > 0 {
				targets, from = c.Flagged, ExpNeuralCleanse
			}
		}
		res, err := r.bbdOne(ctx, b, pr, targets)
		if err != nil {
			return nil, fmt.Errorf("bbd %s: %w", b.Name, err)
		}
		res.TargetsFrom = from
		out = append(out, *res)
	}
	return out, nil
}

func (r *Runner) bbdOne(ctx context.Context, b Model, pr *PruneResult, targets []int) (*BBDResult, error) {
	repairedDir := filepath.Join(r.cfg.Out, pr.SavedModel)
	unit := ExpBBD + "/" + b.Name
	key := struct {
		Model    Model
		Method   string
		Fraction float64
		Targets  []int
		Max      int
	}{b, pr.Method, pr.Report.Fraction, targets, r.set.MaxImages}
	res := &BBDResult{}
	files := append(r.modelFiles(b), repairedDir)
	hit, err := r.cached(unit, key, files, res, func(string) error {
		badnet, err := loadModel(b)
		if err != nil {
			return err
		}
		defer badnet.Close()
		repaired, err := tfmodels.LoadSavedModel(repairedDir, tfmodels.LoadOptions{})
		if err != nil {
			return fmt.Errorf("repaired model %s: %w", repairedDir, err)
		}
		defer repaired.Close()
		evals, _, err := r.evalSets(b, badnet.InputShape)
		if err != nil {
			return err
		}
		res.Model, res.Repaired = b.Name, pr.Method
		for i, cfg := range []defence.BBDConfig{{Targets: targets}, {}} {
			r.progress(Progress{Experiment: ExpBBD, Unit: b.Name + " " + cfg.Mode(), Done: i, Total: 2})
			bb, err := defence.NewBBD(badnet, repaired, cfg)
			if err != nil {
				return err
			}
			ev, err := defence.EvaluateBBD(ctx, bb, evals[0].Data, evals[1:])
			bb.Close()
			if err != nil {
				return err
			}
			if cfg.Untargeted() {
				res.Untargeted = ev
			} else {
				res.Targeted = ev
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.progress(Progress{Experiment: ExpBBD, Unit: b.Name, Cached: hit, Done: 2, Total: 2})
	r.logf("bbd %s: targeted %v accuracy %.4f FAR %.4f; untargeted accuracy %.4f FAR %.4f", b.Name, targets,
		res.Targeted.Accuracy.Value(), res.Targeted.FAR, res.Untargeted.Accuracy.Value(), res.Untargeted.FAR)
	return res, nil
}
