package reproduce

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/bbd-workbench/bbd/internal/safefs"
)

// Results are every experiment's results; the tables and figures are drawn
// from them alone.
type Results struct {
	Source        *Source             `json:"source"`
	Settings      Settings            `json:"settings"`
	Experiments   []string            `json:"experiments"`
	FinePruning   *FinePruningResults `json:"fine_pruning,omitempty"`
	STRIP         []STRIPResult       `json:"strip,omitempty"`
	NeuralCleanse []CleanseResult     `json:"neural_cleanse,omitempty"`
	BBD           []BBDResult         `json:"bbd,omitempty"`
	Activations   []ActivationResult  `json:"activations,omitempty"`
	Seconds       float64             `json:"seconds"`
}

// Run runs the experiments named (nil: all), in dependency order: BBD needs
// fine-pruning's repaired models and reads Neural Cleanse's flags when that
// ran. Every unit of work is cached, so Run resumes an interrupted run.
func (r *Runner) Run(ctx context.Context, experiments []string) (*Results, error) {
	if len(experiments) == 0 {
		experiments = AllExperiments
	}
	for _, e := range experiments {
		if !slices.Contains(AllExperiments, e) {
			return nil, fmt.Errorf("reproduce: unknown experiment %q: expected one of %v", e, AllExperiments)
		}
	}
	start := time.Now()
	res := &Results{Source: r.cfg.Source, Settings: r.set}
	for _, e := range AllExperiments { // dependency order
		want := slices.Contains(experiments, e)
		var err error
		switch {
		case e == ExpFinePruning && (want || slices.Contains(experiments, ExpBBD)):
			res.FinePruning, err = r.FinePruning(ctx)
		case e == ExpSTRIP && want:
			res.STRIP, err = r.STRIP(ctx)
		case e == ExpNeuralCleanse && want:
			res.NeuralCleanse, err = r.NeuralCleanse(ctx)
		case e == ExpBBD && want:
			res.BBD, err = r.BBD(ctx, res.FinePruning, res.NeuralCleanse)
		case e == ExpActivations && want:
			res.Activations, err = r.Activations(ctx)
		default:
			continue
		}
		if err != nil {
			if cancelled(err) {
				return nil, fmt.Errorf("reproduce: interrupted during %s: finished units are cached, run again to resume: %w", e, err)
			}
			return nil, err
		}
		res.Experiments = append(res.Experiments, e)
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// Tables returns every table the results hold, bbd's and the paper's.
func (res *Results) Tables() []*Table {
	var out []*Table
	if fp := res.FinePruning; fp != nil && len(fp.Prune) > 0 {
		out = append(out, Table1(fp), Table1Paper(fp.Models()), TablePruneChoice(fp))
	}
	if len(res.STRIP) > 0 {
		out = append(out, Table2(res.STRIP))
	}
	if len(res.NeuralCleanse) > 0 {
		out = append(out, Table3(res.NeuralCleanse))
	}
	if len(res.BBD) > 0 {
		out = append(out, Table4(res.BBD))
	}
	if len(res.Activations) > 0 && res.Activations[0].Clustering != nil {
		out = append(out, TableClustering(res.Activations))
	}
	return out
}

// Figures draws every figure of the results; out is the output folder (the
// scans' trigger images are read from it).
func (res *Results) Figures(out string) ([]*Figure, error) {
	var figs []*Figure
	add := func(f *Figure, err error) error {
		if err != nil {
			return err
		}
		figs = append(figs, f)
		return nil
	}
	if fp := res.FinePruning; fp != nil && len(fp.Prune) > 0 {
		if slices.ContainsFunc(fp.Prune, func(p PruneResult) bool { return p.Method != "weight" }) {
			if err := add(Figure1(fp)); err != nil {
				return nil, err
			}
			if err := add(Figure2(fp)); err != nil {
				return nil, err
			}
		}
	}
	for _, s := range res.STRIP {
		if err := add(Figure3(s)); err != nil {
			return nil, err
		}
	}
	if len(res.NeuralCleanse) > 0 {
		if err := add(Figure4(out, res.NeuralCleanse)); err != nil {
			return nil, err
		}
		for _, c := range res.NeuralCleanse {
			if err := add(AnomalyFigure(c)); err != nil {
				return nil, err
			}
		}
	}
	if len(res.BBD) > 0 {
		if err := add(FigureBBD(res.BBD)); err != nil {
			return nil, err
		}
	}
	for _, a := range res.Activations {
		if err := add(Figure9(a)); err != nil {
			return nil, err
		}
	}
	return figs, nil
}

// Output files, relative to the output folder.
const (
	ResultsFile = "results.json"
	ReportFile  = "report.html"
	FiguresDir  = "figures"
	TablesDir   = "tables"
)

// Write writes the results (results.json), every table (tables/NAME.md,
// .csv, .json), every figure (figures/NAME.png, .svg) and the HTML report
// into the output folder, replacing the files of an earlier run. Extra
// sections (rendered notebooks) may be linked from the report.
func (r *Runner) Write(res *Results, links ...Link) error {
	out := r.cfg.Out
	raw, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := safefs.WriteFile(filepath.Join(out, ResultsFile), append(raw, '\n'), 0o644, true); err != nil {
		return err
	}
	tables := res.Tables()
	if err := os.MkdirAll(filepath.Join(out, TablesDir), 0o755); err != nil {
		return err
	}
	for _, t := range tables {
		base := filepath.Join(out, TablesDir, t.Name)
		if err := safefs.WriteFile(base+".md", []byte(t.Markdown()), 0o644, true); err != nil {
			return err
		}
		c, err := t.CSV()
		if err != nil {
			return err
		}
		if err := safefs.WriteFile(base+".csv", c, 0o644, true); err != nil {
			return err
		}
		j, err := t.JSON()
		if err != nil {
			return err
		}
		if err := safefs.WriteFile(base+".json", append(j, '\n'), 0o644, true); err != nil {
			return err
		}
	}
	figs, err := res.Figures(out)
	if err != nil {
		return err
	}
	for _, f := range figs {
		if err := f.Save(filepath.Join(out, FiguresDir, f.Name), true); err != nil {
			return err
		}
	}
	page, err := Report(res, tables, figs, links)
	if err != nil {
		return err
	}
	return safefs.WriteFile(filepath.Join(out, ReportFile), page, 0o644, true)
}
