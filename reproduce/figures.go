package reproduce

import (
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/plots"
)

// Figure is one figure of the reproduction and the file base name it is
// saved under (name.png, name.svg).
type Figure struct {
	Name string
	*plots.Figure
}

// Figure1 and Figure2 are the paper's Figures 1 and 2: clean test accuracy
// and attack success against the pruned fraction, after pruning (Figure 1)
// and after fine-tuning (Figure 2), one panel per BadNet, one line per
// method and measure.
func Figure1(fp *FinePruningResults) (*Figure, error) { return sweepFigure(fp, false) }

// Figure2: see Figure1.
func Figure2(fp *FinePruningResults) (*Figure, error) { return sweepFigure(fp, true) }

func sweepFigure(fp *FinePruningResults, tuned bool) (*Figure, error) {
	name, title := "fig1-pruning", "Figure 1: accuracy vs fraction pruned (pruning only)"
	if tuned {
		name, title = "fig2-fine-pruning", "Figure 2: accuracy vs fraction pruned (after fine-tuning)"
	}
	var panels []plots.LinePanel
	for _, model := range fp.Models() {
		pn := plots.LinePanel{Title: model, XLabel: "fraction pruned", YLabel: "accuracy / attack success", YMin: 0, YMax: 1}
		for _, method := range []string{"unit", "channel"} {
			p, ok := fp.Find(model, method)
			if !ok {
				continue
			}
			clean, attack := plots.Series{Name: "clean accuracy (" + method + ")"}, plots.Series{Name: "attack success (" + method + ")"}
			for _, pt := range p.Report.Sweep {
				s := pt.Pruned
				if tuned {
					s = pt.FineTuned
				}
				clean.X, clean.Y = append(clean.X, pt.Fraction), append(clean.Y, s.CleanAccuracy[CleanTestSet])
				attack.X, attack.Y = append(attack.X, pt.Fraction), append(attack.Y, p.PooledAttack(s))
			}
			pn.Series = append(pn.Series, clean, attack)
		}
		if len(pn.Series) > 0 {
			panels = append(panels, pn)
		}
	}
	if len(panels) == 0 {
		return nil, fmt.Errorf("%s: no unit or channel sweep", name)
	}
	f, err := plots.Lines(title, panels, min(3, len(panels)))
	if err != nil {
		return nil, err
	}
	return &Figure{Name: name, Figure: f}, nil
}

// Figure3 is the paper's Figure 3 for one BadNet: STRIP's entropy
// distributions of clean and poisoned test images and the threshold.
func Figure3(s STRIPResult) (*Figure, error) {
	dists := []plots.Distribution{{Name: "clean test", Values: s.CleanScores}}
	names := make([]string, 0, len(s.PoisonedScores))
	for n := range s.PoisonedScores {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		dists = append(dists, plots.Distribution{Name: n, Values: s.PoisonedScores[n]})
	}
	f, err := plots.Histograms(plots.HistogramOptions{Title: "Figure 3: STRIP entropy, " + s.Model, XLabel: "mean entropy over overlays (nats)",
		Threshold: s.Threshold, Mark: true}, dists...)
	if err != nil {
		return nil, err
	}
	return &Figure{Name: "fig3-strip-" + s.Model, Figure: f}, nil
}

// AnomalyFigure plots a Neural Cleanse scan's anomaly index per label.
func AnomalyFigure(c CleanseResult) (*Figure, error) {
	f, err := plots.AnomalyIndex("Neural Cleanse anomaly index, "+c.Model, c.Labels, c.Index, c.Threshold)
	if err != nil {
		return nil, err
	}
	return &Figure{Name: "anomaly-" + c.Model, Figure: f}, nil
}

// Figure4 is the paper's Figure 4: the reversed triggers (mask times
// pattern) of each model's flagged labels, or of its smallest-norm label
// when none is flagged, read from the scans' folders under out. At most 4
// per model.
func Figure4(out string, nc []CleanseResult) (*Figure, error) {
	type tile struct {
		title string
		img   image.Image
	}
	var tiles []tile
	for _, c := range nc {
		labels := slices.Clone(c.Flagged)
		if len(labels) == 0 && len(c.L1) > 0 {
			best := 0
			for i := range c.L1 {
				if c.L1[i] < c.L1[best] {
					best = i
				}
			}
			labels = []int{c.Labels[best]}
		}
		if len(labels) > 4 {
			labels = labels[:4]
		}
		for _, l := range labels {
			p := filepath.Join(out, c.Report, defence.TriggerFile(l))
			img, err := readPNG(p)
			if err != nil {
				return nil, fmt.Errorf("figure 4: %w", err)
			}
			state := "smallest norm, not flagged"
			if slices.Contains(c.Flagged, l) {
				state = "flagged"
			}
			tiles = append(tiles, tile{fmt.Sprintf("%s: label %d\n(%s)", c.Model, l, state), img})
		}
	}
	if len(tiles) == 0 {
		return nil, fmt.Errorf("figure 4: no scan results")
	}
	cols := min(4, len(tiles))
	rows := (len(tiles) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
	}
	for i, t := range tiles {
		b := t.img.Bounds()
		pl := plot.New()
		pl.Title.Text = t.title
		pl.HideAxes()
		pl.Add(plotter.NewImage(t.img, 0, 0, float64(b.Dx()), float64(b.Dy())))
		grid[i/cols][i%cols] = pl
	}
	f, err := plots.Compose("Figure 4: reversed triggers (mask x pattern)", grid, nil, vg.Length(cols)*2*vg.Inch, vg.Length(rows)*2.4*vg.Inch)
	if err != nil {
		return nil, err
	}
	return &Figure{Name: "fig4-triggers", Figure: f}, nil
}

func readPNG(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: expected a PNG image: %w", path, err)
	}
	return img, nil
}

// Figure9 is the paper's Figure 9 for one BadNet: clean and poisoned
// activations on their top two principal components.
func Figure9(a ActivationResult) (*Figure, error) {
	if a.PCA == nil || len(a.PCA.Points) != 2 {
		return nil, fmt.Errorf("figure 9 %s: no PCA points", a.Model)
	}
	sets := []plots.PointSet{{Name: "clean validation"}, {Name: "poisoned (" + a.Trigger + ")"}}
	for i, pts := range a.PCA.Points {
		for _, p := range pts {
			sets[i].X, sets[i].Y = append(sets[i].X, p[0]), append(sets[i].Y, p[1])
		}
	}
	f, err := plots.Scatter(fmt.Sprintf("Figure 9: %s, %s activations (PCA)", a.Model, a.PCA.Layer),
		fmt.Sprintf("PC 1 (%.0f %% of variance)", 100*a.PCA.Explained[0]), fmt.Sprintf("PC 2 (%.0f %%)", 100*a.PCA.Explained[1]), sets...)
	if err != nil {
		return nil, err
	}
	return &Figure{Name: "fig9-pca-" + a.Model, Figure: f}, nil
}

// FigureBBD draws Table 4 as bars: per BadNet and mode, BBD's measured
// accuracy on the clean inputs and its share of poisoned inputs labelled N,
// each beside what equations (3)-(6) predict from the BadNet's and the
// repaired model's own figures (targeted: equations (3) and (4); untargeted:
// the bounds of the intervals (5) and (6), a bound below 0 drawn at 0).
func FigureBBD(bb []BBDResult) (*Figure, error) {
	nan := math.NaN()
	series := []plots.BarSeries{
		{Name: "clean inputs: measured"}, {Name: "clean: eq. (3), or (5) lower bound"}, {Name: "clean: eq. (5) upper bound"},
		{Name: "poisoned inputs labelled N: measured"}, {Name: "poisoned: eq. (4), or (6) lower bound"}, {Name: "poisoned: eq. (6) upper bound"},
	}
	var groups []string
	add := func(vals ...float64) {
		for i, v := range vals {
			if !math.IsNaN(v) {
				v = max(v, 0)
			}
			series[i].Values = append(series[i].Values, v)
		}
	}
	for _, b := range bb {
		if t := b.Targeted; t != nil {
			p := t.Predicted
			groups = append(groups, b.Model+" targeted")
			add(t.CleanAccuracy.Value(), p.TargetedClean, nan, t.PoisonedAccuracy.Value(), p.TargetedPoisoned, nan)
		}
		if u := b.Untargeted; u != nil {
			p := u.Predicted
			groups = append(groups, b.Model+" untargeted")
			add(u.CleanAccuracy.Value(), p.UntargetedClean[0], p.UntargetedClean[1],
				u.PoisonedAccuracy.Value(), p.UntargetedPoisoned[0], p.UntargetedPoisoned[1])
		}
	}
	if len(groups) == 0 {
		return nil, errors.New("reproduce.FigureBBD: no BBD results")
	}
	f, err := plots.GroupedBars("Table 4 as bars: BBD measured beside equations (3)-(6)", "fraction of inputs", groups, series)
	if err != nil {
		return nil, fmt.Errorf("reproduce.FigureBBD: %w", err)
	}
	return &Figure{Name: "table4-bars", Figure: f}, nil
}
