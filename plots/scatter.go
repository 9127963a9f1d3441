package plots

import (
	"errors"
	"fmt"
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
	xs, ys := newSpan(), newSpan()
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
			xs.add(s.X[k])
			ys.add(s.Y[k])
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
	if !xs.ok() || !ys.ok() {
		return nil, fmt.Errorf("plots.Scatter: x from %v to %v, y from %v to %v: too wide to draw", xs.lo, xs.hi, ys.lo, ys.hi)
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
	xs, ys := newSpan(), newSpan()
	ys.add(0, threshold)
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
		xs.add(xy.X)
		ys.add(v)
	}
	if !ys.ok() {
		return nil, fmt.Errorf("plots.AnomalyIndex: anomaly indices and threshold from %v to %v: too wide to draw", ys.lo, ys.hi)
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
	xpad := max(0.5, 0.03*(xs.hi-xs.lo))
	pl.X.Min, pl.X.Max = xs.lo-xpad, xs.hi+xpad
	ypad := 0.05 * max(ys.hi-ys.lo, 1e-9)
	pl.Y.Min, pl.Y.Max = ys.lo-ypad, ys.hi+3*ypad
	legend := []LegendEntry{
		{fmt.Sprintf("flagged (index > %.3g)", threshold), []plot.Thumbnailer{red}},
		{"not flagged", []plot.Thumbnailer{grey}},
		{fmt.Sprintf("threshold %.3g", threshold), []plot.Thumbnailer{line}},
	}
	return single(title, pl, legend, 6*vg.Inch, singleH)
}
