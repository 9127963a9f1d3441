package reproduce

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/bbd-workbench/bbd/defence"
)

// CleanseResult is a Neural Cleanse scan (Wang et al. 2019) of one model:
// the data of the paper's Table 3 and Figure 4 and of the anomaly-index
// plot.
type CleanseResult struct {
	Model string `json:"model"`
	// Report is the scan's folder (report.json, masks, patterns, triggers),
	// relative to the output folder.
	Report string `json:"report"`
	// Flagged labels, the scan's verdict (Neural Cleanse's flags, most
	// anomalous first, then the last-layer check's); NCFlagged Neural
	// Cleanse's alone; Targets the attacker's (known here, never read by
	// the scan); Found and Missed compare them with Flagged.
	Flagged   []int     `json:"flagged"`
	NCFlagged []int     `json:"nc_flagged"`
	Targets   []int     `json:"targets"`
	Found     []int     `json:"found"`
	Missed    []int     `json:"missed"`
	Labels    []int     `json:"labels"`
	L1        []float64 `json:"l1"`
	Index     []float64 `json:"anomaly_index"`
	Threshold float64   `json:"threshold"`
	Scale     string    `json:"mad_scale"`
	Budget    string    `json:"budget"`
	Steps     int       `json:"max_steps"`
	Images    int       `json:"images"`
	Seconds   float64   `json:"seconds"`
	// LastLayer lists the labels the data-free last-layer check flags
	// (defence.LastLayer, over all the model's labels; nil where the output
	// layer is not dense).
	LastLayer []int `json:"last_layer_flagged"`
}

// NeuralCleanse scans every model of the source (the clean reference model
// too: a scan should flag nothing there).
func (r *Runner) NeuralCleanse(ctx context.Context) ([]CleanseResult, error) {
	var out []CleanseResult
	for _, m := range r.cfg.Source.Models {
		res, err := r.cleanseOne(ctx, m)
		if err != nil {
			return nil, fmt.Errorf("neural cleanse %s: %w", m.Name, err)
		}
		out = append(out, *res)
	}
	return out, nil
}

func (r *Runner) cleanseOne(ctx context.Context, b Model) (*CleanseResult, error) {
	unit := ExpNeuralCleanse + "/" + b.Name
	key := struct {
		Model         Model
		Labels        []int
		Steps, Images int
		Seed          uint64
	}{b, r.set.CleanseLabels, r.set.CleanseSteps, r.set.CleanseImages, r.set.Seed}
	res := &CleanseResult{}
	hit, err := r.cached(unit, key, []string{b.Path, r.cfg.Source.CleanValidation}, res, func(hash string) error {
		m, clean, err := r.openModel(b, r.set.CleanseImages)
		if err != nil {
			return err
		}
		defer m.Close()
		cfg := defence.DefaultCleanseConfig(defence.PresetOriginal)
		cfg.MaxSteps, cfg.StepImages, cfg.Seed, cfg.Labels = r.set.CleanseSteps, clean.Len(), r.set.Seed, r.set.CleanseLabels
		if len(cfg.Labels) == 0 && m.NumClasses > 100 {
			cfg.Budget = defence.BudgetFast
		}
		cfg.Progress = func(p defence.CleanseProgress) {
			r.progress(Progress{Experiment: ExpNeuralCleanse, Unit: b.Name, Done: p.StepsDone, Total: p.StepsPlanned})
		}
		rep, err := (&defence.Cleanse{Config: cfg}).Run(ctx, m, clean)
		if err != nil {
			return err
		}
		rel := unitDir("cleanse", b.Name, hash)
		dir := filepath.Join(r.cfg.Out, rel)
		if err := os.RemoveAll(dir); err != nil { // an interrupted scan's leftover
			return err
		}
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return err
		}
		if err := rep.Write(dir); err != nil {
			return err
		}
		*res = CleanseResult{Model: b.Name, Report: rel, Flagged: append([]int{}, rep.Flagged...),
			NCFlagged: append([]int{}, rep.NCFlagged...),
			Targets:   b.Targets, Threshold: rep.Threshold, Scale: rep.Config.MADScale, Budget: rep.Config.Budget,
			Steps: rep.Config.MaxSteps, Images: rep.Images, Seconds: rep.Seconds, Found: []int{}, Missed: []int{}}
		if rep.LastLayer != nil {
			res.LastLayer = append([]int{}, rep.LastLayer.Flagged...)
		}
		for _, l := range rep.Labels {
			res.Labels, res.L1, res.Index = append(res.Labels, l.Label), append(res.L1, l.L1), append(res.Index, l.AnomalyIndex)
		}
		for _, t := range b.Targets {
			if slices.Contains(rep.Flagged, t) {
				res.Found = append(res.Found, t)
			} else {
				res.Missed = append(res.Missed, t)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if hit {
		if _, err := os.Stat(filepath.Join(r.cfg.Out, res.Report, defence.CleanseReportFile)); err != nil {
			_ = os.Remove(filepath.Join(r.cfg.Out, "cache", filepath.FromSlash(unit)+".json"))
			return r.cleanseOne(ctx, b)
		}
	}
	r.progress(Progress{Experiment: ExpNeuralCleanse, Unit: b.Name, Cached: hit, Done: 1, Total: 1})
	r.logf("neural cleanse %s: flagged %v (targets %v)", b.Name, res.Flagged, res.Targets)
	return res, nil
}
