package plots

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// PointSet is one named group of Scatter.
type PointSet struct {
	Name string
	X, Y []float64
}

// Scatter draws each set's points as small translucent dots of its colour (dense
// clusters darken), with a legend below naming the sets. A set may be empty, not all.
func Scatter(title, xLabel, yLabel string, sets ...PointSet) (*Figure, error) {
	if len(sets) == 0 {
		return nil, errors.New("plots.Scatter: no point sets")
	}
	pl := newPlot(title, xLabel, yLabel)
	var legend []LegendEntry
	total := 0
	for j, s := range sets {
		if len(s.X) != len(s.Y) {
			return nil, fmt.Errorf("plots.Scatter: set %q has %d x and %d y values", s.Name, len(s.X), len(s.Y))
		}
		xys := make(plotter.XYs, len(s.X))
		for k := range s.X {
			if !finite(s.X[k]) || !finite(s.Y[k]) {
				return nil, fmt.Errorf("plots.Scatter: set %q: point %d is (%v, %v)", s.Name, k, s.X[k], s.Y[k])
			}
			xys[k] = plotter.XY{X: s.X[k], Y: s.Y[k]}
		}
		total += len(xys)
		dots := &plotter.Scatter{XYs: xys, GlyphStyle: draw.GlyphStyle{
			Color: fade(Color(j), 140), Radius: vg.Points(1.8), Shape: draw.CircleGlyph{}}}
		if len(xys) > 0 {
			pl.Add(dots)
		}
		// The legend's dot is larger and opaque, to be seen.
		legend = append(legend, LegendEntry{s.Name, []plot.Thumbnailer{&plotter.Scatter{GlyphStyle: draw.GlyphStyle{
			Color: Color(j), Radius: vg.Points(3), Shape: draw.CircleGlyph{}}}}})
	}
	if total == 0 {
		return nil, fmt.Errorf("plots.Scatter: the %d point sets have no points", len(sets))
	}
	return single(title, pl, legend, singleW, singleH)
}

// AnomalyIndex draws Neural Cleanse's outlier test: one dot per label (x) at its
// anomaly index (y), a horizontal dashed line at threshold, the flagged labels
// (index > threshold) in red and annotated with their label number, the others grey.
func AnomalyIndex(title string, labels []int, index []float64, threshold float64) (*Figure, error) {
	if len(labels) == 0 {
		return nil, errors.New("plots.AnomalyIndex: no labels")
	}
	if len(labels) != len(index) {
		return nil, fmt.Errorf("plots.AnomalyIndex: %d labels and %d anomaly indices", len(labels), len(index))
	}
	if !finite(threshold) {
		return nil, fmt.Errorf("plots.AnomalyIndex: threshold %v", threshold)
	}
	var flagged, others plotter.XYs
	var names []string
	xlo, xhi := math.Inf(1), math.Inf(-1)
	ylo, yhi := min(0, threshold), threshold
	for i, l := range labels {
		v := index[i]
		if l < 0 {
			return nil, fmt.Errorf("plots.AnomalyIndex: label %d is negative", l)
		}
		if !finite(v) {
			return nil, fmt.Errorf("plots.AnomalyIndex: label %d: anomaly index %v", l, v)
		}
		xy := plotter.XY{X: float64(l), Y: v}
		if v > threshold {
			flagged = append(flagged, xy)
			names = append(names, strconv.Itoa(l))
		} else {
			others = append(others, xy)
		}
		xlo, xhi = min(xlo, xy.X), max(xhi, xy.X)
		ylo, yhi = min(ylo, v), max(yhi, v)
	}
	if !finite(yhi - ylo) {
		return nil, fmt.Errorf("plots.AnomalyIndex: anomaly indices from %v to %v", ylo, yhi)
	}
	pl := newPlot(title, "label", "anomaly index")
	pl.X.Tick.Marker = WholeTicks{}
	line := &refLine{at: threshold, style: dashed}
	pl.Add(line)
	grey := &plotter.Scatter{XYs: others, GlyphStyle: draw.GlyphStyle{
		Color: greyColor, Radius: vg.Points(2.5), Shape: draw.CircleGlyph{}}}
	red := &plotter.Scatter{XYs: flagged, GlyphStyle: draw.GlyphStyle{
		Color: flaggedColor, Radius: vg.Points(3.5), Shape: draw.CircleGlyph{}}}
	if len(others) > 0 {
		pl.Add(grey)
	}
	if len(flagged) > 0 {
		pl.Add(red)
		lbl, err := plotter.NewLabels(plotter.XYLabels{XYs: flagged, Labels: names})
		if err != nil {
			return nil, fmt.Errorf("plots.AnomalyIndex: %w", err)
		}
		for i := range lbl.TextStyle {
			lbl.TextStyle[i].Color = flaggedColor
			lbl.TextStyle[i].Font.Size = vg.Points(9)
			lbl.TextStyle[i].XAlign = draw.XCenter
		}
		lbl.Offset = vg.Point{Y: vg.Points(5)}
		pl.Add(lbl)
	}
	// Room around the dots, and above them for the annotations.
	xpad := max(0.5, 0.03*(xhi-xlo))
	pl.X.Min, pl.X.Max = xlo-xpad, xhi+xpad
	ypad := 0.05 * max(yhi-ylo, 1e-9)
	pl.Y.Min, pl.Y.Max = ylo-ypad, yhi+3*ypad
	legend := []LegendEntry{
		{fmt.Sprintf("flagged (index > %.3g)", threshold), []plot.Thumbnailer{red}},
		{"not flagged", []plot.Thumbnailer{grey}},
		{fmt.Sprintf("threshold %.3g", threshold), []plot.Thumbnailer{line}},
	}
	return single(title, pl, legend, 6*vg.Inch, singleH)
}
