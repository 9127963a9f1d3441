package plots

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Distribution is one named sample of Histograms.
type Distribution struct {
	Name   string
	Values []float64
}

// HistogramOptions configures Histograms.
type HistogramOptions struct {
	Title, XLabel string
	// Bins is the number of bins (0: 30).
	Bins int
	// Threshold is where a vertical dashed line is drawn when Mark is true.
	Threshold float64
	Mark      bool
	// ThresholdLabel names the line in the legend ("": "threshold" and its value).
	ThresholdLabel string
}

// maxBins bounds Bins: more would not show on a figure a few hundred pixels wide.
const maxBins = 10000

// Histograms overlays the normalised histograms (densities: each integrates to 1) of
// the distributions on one axis, as translucent fills with an outline, so that where
// they overlap shows. All share the same bins, equal-width over the pooled range of
// the values, so their heights compare. With opt.Mark, a vertical dashed line marks
// opt.Threshold (the STRIP figure: entropies of clean and poisoned inputs and the
// detection threshold).
func Histograms(opt HistogramOptions, dists ...Distribution) (*Figure, error) {
	bins := opt.Bins
	if bins == 0 {
		bins = 30
	}
	if bins < 0 || bins > maxBins {
		return nil, fmt.Errorf("plots.Histograms: Bins %d is not in [0, %d]", opt.Bins, maxBins)
	}
	if len(dists) == 0 {
		return nil, errors.New("plots.Histograms: no distributions")
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, d := range dists {
		if len(d.Values) == 0 {
			return nil, fmt.Errorf("plots.Histograms: distribution %q has no values", d.Name)
		}
		for i, v := range d.Values {
			if !finite(v) {
				return nil, fmt.Errorf("plots.Histograms: distribution %q value %d is %v", d.Name, i, v)
			}
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if opt.Mark && !finite(opt.Threshold) {
		return nil, fmt.Errorf("plots.Histograms: threshold %v", opt.Threshold)
	}
	if opt.Mark && !finite(max(hi, opt.Threshold)-min(lo, opt.Threshold)) {
		return nil, fmt.Errorf("plots.Histograms: threshold %v too far from the values (%v to %v) to draw", opt.Threshold, lo, hi)
	}
	if lo == hi { // one value: a bin of width 1 around it
		lo, hi = lo-0.5, hi+0.5
	}
	width := (hi - lo) / float64(bins)
	if !finite(hi-lo) || width == 0 {
		return nil, fmt.Errorf("plots.Histograms: range [%v, %v] cannot be cut into %d bins", lo, hi, bins)
	}
	pl := newPlot(opt.Title, opt.XLabel, "density")
	var legend []LegendEntry
	top := 0.0
	for j, d := range dists {
		// A closed step outline: up from 0 at the first edge, down to 0 at the last.
		xys := make(plotter.XYs, 0, bins+2)
		xys = append(xys, plotter.XY{X: lo, Y: 0})
		for b, y := range density(d.Values, lo, width, bins) {
			if !finite(y) {
				return nil, fmt.Errorf("plots.Histograms: distribution %q: density %v over bins of width %v", d.Name, y, width)
			}
			xys = append(xys, plotter.XY{X: lo + float64(b)*width, Y: y})
			top = max(top, y)
		}
		xys = append(xys, plotter.XY{X: hi, Y: 0})
		line := &plotter.Line{XYs: xys, StepStyle: plotter.PostStep, FillColor: fade(Color(j), 90),
			LineStyle: lineStyle(j)}
		line.LineStyle.Dashes = nil
		line.LineStyle.Width = vg.Points(1.2)
		pl.Add(line)
		legend = append(legend, LegendEntry{d.Name, []plot.Thumbnailer{line}})
	}
	pl.Y.Min, pl.Y.Max = 0, top*1.05 // the tallest bin clear of the title
	if opt.Mark {
		mark := &refLine{vertical: true, at: opt.Threshold, style: dashed}
		pl.Add(mark)
		name := opt.ThresholdLabel
		if name == "" {
			name = fmt.Sprintf("threshold %.3g", opt.Threshold)
		}
		legend = append(legend, LegendEntry{name, []plot.Thumbnailer{mark}})
	}
	return single(opt.Title, pl, legend, singleW, singleH)
}

// density returns the density of values over bins of the given width from lo: the
// share of the values in each bin over its width (the last bin includes its top edge).
func density(values []float64, lo, width float64, bins int) []float64 {
	d := make([]float64, bins)
	for _, v := range values {
		d[min(bins-1, max(0, int((v-lo)/width)))]++
	}
	for b := range d {
		d[b] /= float64(len(values)) * width
	}
	return d
}
