package reproduce

import (
	"context"
	"fmt"

	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/metrics"
)

// STRIPResult is STRIP (Gao et al. 2019) in front of one BadNet: the data of
// the paper's Figure 3 (entropy distributions) and Table 2.
type STRIPResult struct {
	Model     string              `json:"model"`
	Config    defence.STRIPConfig `json:"config"`
	Threshold float64             `json:"threshold"`
	// CleanScores are the mean entropies of the clean test images and
	// PoisonedScores those of every poisoned set, by set name.
	CleanScores    []float64            `json:"clean_scores"`
	PoisonedScores map[string][]float64 `json:"poisoned_scores"`
	// FRR over the clean test images, FAR over all poisoned images, and by
	// poisoned set.
	FRR    metrics.Ratio            `json:"frr"`
	FAR    metrics.Ratio            `json:"far"`
	SetFAR map[string]metrics.Ratio `json:"set_far"`
	AUROC  float64                  `json:"auroc"`
	// Accuracy of the filtered system over clean plus poisoned inputs: a
	// clean input counts when it passes and the BadNet labels it right, a
	// poisoned one when it is flagged (the paper's Table 2 accuracy).
	Accuracy metrics.Ratio `json:"accuracy"`
	// CalibrationImages are the clean validation images the threshold was
	// set on (the empirical 5th percentile of their scores).
	CalibrationImages int `json:"calibration_images"`
}

// STRIP runs STRIP in front of every BadNet with bbd's defaults (a 0.15
// blend, threshold at FRR 0.05 on the clean validation data).
func (r *Runner) STRIP(ctx context.Context) ([]STRIPResult, error) {
	var out []STRIPResult
	for _, b := range r.cfg.Source.BadNets() {
		res, err := r.stripOne(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("strip %s: %w", b.Name, err)
		}
		out = append(out, *res)
	}
	return out, nil
}

func (r *Runner) stripOne(ctx context.Context, b Model) (*STRIPResult, error) {
	cfg := defence.STRIPConfig{Overlays: r.set.STRIPOverlays, Seed: r.set.Seed}
	key := struct {
		Model       Model
		Config      defence.STRIPConfig
		Images, Max int
	}{b, cfg, r.set.STRIPImages, r.set.MaxImages}
	res := &STRIPResult{}
	unit := ExpSTRIP + "/" + b.Name
	hit, err := r.cached(unit, key, r.modelFiles(b), res, func(string) error {
		m, pool, err := r.openModel(b, 0)
		if err != nil {
			return err
		}
		defer m.Close()
		cal, err := r.load(r.cfg.Source.CleanValidation, m.InputShape, r.set.STRIPImages)
		if err != nil {
			return err
		}
		test, err := r.load(r.cfg.Source.CleanTest, m.InputShape, r.set.STRIPImages)
		if err != nil {
			return err
		}
		total := cal.Len() + test.Len()
		for _, p := range b.Poisoned {
			imgs, err := r.load(p.Path, m.InputShape, r.set.STRIPImages)
			if err != nil {
				return err
			}
			total += imgs.Len()
		}
		done := 0
		c := cfg
		c.Progress = func(d, n int) {
			r.progress(Progress{Experiment: ExpSTRIP, Unit: b.Name, Done: min(done+d, total), Total: total})
			if d == n {
				done += n
			}
		}
		s, err := defence.NewSTRIP(m, pool, c)
		if err != nil {
			return err
		}
		defer s.Close()
		calScores, _, err := s.ScoreExamples(ctx, cal)
		if err != nil {
			return err
		}
		if err := s.CalibrateScores(calScores); err != nil {
			return err
		}
		res.Model, res.Config, res.CalibrationImages = b.Name, s.Config(), cal.Len()
		res.Config.Progress = nil
		res.Threshold, _ = s.Threshold()
		var labels []int
		if res.CleanScores, labels, err = s.ScoreExamples(ctx, test); err != nil {
			return err
		}
		cleanFlags, err := s.Flags(res.CleanScores)
		if err != nil {
			return err
		}
		scores, truth := append([]float64(nil), res.CleanScores...), make([]bool, len(res.CleanScores))
		for i, f := range cleanFlags {
			res.FRR.Total++
			res.Accuracy.Total++
			if f {
				res.FRR.Hits++
			} else if labels[i] == test.Label(i) {
				res.Accuracy.Hits++
			}
		}
		res.PoisonedScores, res.SetFAR = map[string][]float64{}, map[string]metrics.Ratio{}
		for _, p := range b.Poisoned {
			imgs, err := r.load(p.Path, m.InputShape, r.set.STRIPImages)
			if err != nil {
				return err
			}
			sc, _, err := s.ScoreExamples(ctx, imgs)
			if err != nil {
				return err
			}
			fl, err := s.Flags(sc)
			if err != nil {
				return err
			}
			name := PoisonedSetName(p.Trigger)
			res.PoisonedScores[name] = sc
			var far metrics.Ratio
			for _, f := range fl {
				far.Total++
				res.Accuracy.Total++
				if f {
					res.Accuracy.Hits++
				} else {
					far.Hits++
				}
				truth = append(truth, true)
			}
			res.SetFAR[name] = far
			res.FAR = res.FAR.Add(far)
			scores = append(scores, sc...)
		}
		res.AUROC, err = metrics.AUROC(scores, truth, s.Direction())
		return err
	})
	if err != nil {
		return nil, err
	}
	r.progress(Progress{Experiment: ExpSTRIP, Unit: b.Name, Cached: hit, Done: 1, Total: 1})
	r.logf("strip %s: threshold %.4f, FRR %.4f, FAR %.4f, AUROC %.4f", b.Name, res.Threshold, res.FRR.Value(), res.FAR.Value(), res.AUROC)
	return res, nil
}
