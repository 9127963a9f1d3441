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

// Tile sizes: one panel of Lines, and the figures with one axis.
const (
	tileW, tileH     = 4 * vg.Inch, 3 * vg.Inch
	singleW, singleH = 5 * vg.Inch, 3.5 * vg.Inch
)

// Series is one named line of a line chart: the points (X[i], Y[i]).
type Series struct {
	Name string
	X, Y []float64
}

// LinePanel is one chart of Lines: its lines and axis labels. YMin and YMax fix the y
// range when they differ; when equal (both zero), the range is the data's.
type LinePanel struct {
	Title, XLabel, YLabel string
	Series                []Series
	YMin, YMax            float64
}

// Lines draws panels side by side (cols per row), each line with its points. Series i
// has the same colour, dashes and point shape in every panel, so panels showing
// different measures of the same things (loss and accuracy of the same models) share
// one legend, below the panels; it names series i as the first panel having one does.
// When every x value of a panel is a whole number (epochs), its x ticks are whole
// numbers. A series without points is only in the legend.
func Lines(title string, panels []LinePanel, cols int) (*Figure, error) {
	if len(panels) == 0 {
		return nil, errors.New("plots.Lines: no panels")
	}
	if cols <= 0 {
		return nil, fmt.Errorf("plots.Lines: cols (%d) must be positive", cols)
	}
	cols = min(cols, len(panels))
	rows := (len(panels) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
	}
	var legend []LegendEntry
	for i, pn := range panels {
		if !finite(pn.YMin) || !finite(pn.YMax) || pn.YMin > pn.YMax {
			return nil, fmt.Errorf("plots.Lines: panel %d (%q): y range [%v, %v]", i, pn.Title, pn.YMin, pn.YMax)
		}
		pl := newPlot(pn.Title, pn.XLabel, pn.YLabel)
		whole := true
		xs, ys := newSpan(), newSpan()
		if pn.YMin != pn.YMax {
			ys.add(pn.YMin, pn.YMax)
		}
		for j, s := range pn.Series {
			if len(s.X) != len(s.Y) {
				return nil, fmt.Errorf("plots.Lines: panel %d (%q) series %q has %d x and %d y values", i, pn.Title, s.Name, len(s.X), len(s.Y))
			}
			xys := make(plotter.XYs, len(s.X))
			for k := range s.X {
				if !finite(s.X[k]) || !finite(s.Y[k]) {
					return nil, fmt.Errorf("plots.Lines: panel %d (%q) series %q: point %d is (%v, %v)", i, pn.Title, s.Name, k, s.X[k], s.Y[k])
				}
				xys[k] = plotter.XY{X: s.X[k], Y: s.Y[k]}
				whole = whole && s.X[k] == math.Trunc(s.X[k])
				xs.add(s.X[k])
				ys.add(s.Y[k])
			}
			line := &plotter.Line{XYs: xys, LineStyle: lineStyle(j)}
			points := &plotter.Scatter{XYs: xys, GlyphStyle: glyphStyle(j)}
			if j == len(legend) {
				legend = append(legend, LegendEntry{s.Name, []plot.Thumbnailer{line, points}})
			}
			if len(xys) > 0 {
				pl.Add(line, points)
			}
		}
		if !xs.ok() || !ys.ok() {
			return nil, fmt.Errorf("plots.Lines: panel %d (%q): x from %v to %v, y from %v to %v: too wide to draw", i, pn.Title, xs.lo, xs.hi, ys.lo, ys.hi)
		}
		if pn.YMin != pn.YMax {
			pl.Y.Min, pl.Y.Max = pn.YMin, pn.YMax
		}
		if whole {
			pl.X.Tick.Marker = WholeTicks{}
		}
		grid[i/cols][i%cols] = pl
	}
	f, err := Compose(title, grid, legend, vg.Length(cols)*tileW, vg.Length(rows)*tileH)
	if err != nil {
		return nil, fmt.Errorf("plots.Lines: %w", err)
	}
	return f, nil
}

// BarSeries is one named set of bars of GroupedBars: one value per group; a NaN value
// draws no bar in that group.
type BarSeries struct {
	Name   string
	Values []float64
}

// GroupedBars draws one group of bars per entry of groups, one bar per series whose
// value there is not NaN (the bars of a group stay side by side, without gaps for
// missing ones), each labelled with its value. Series keep their colour in every
// group; the legend below the chart names them. The y axis starts at 0 (values must
// not be negative) and ends a little above the largest value.
func GroupedBars(title, yLabel string, groups []string, series []BarSeries) (*Figure, error) {
	if len(groups) == 0 || len(series) == 0 {
		return nil, fmt.Errorf("plots.GroupedBars: %d groups and %d series, want some of each", len(groups), len(series))
	}
	perGroup := make([]int, len(groups))
	top := 0.0
	for _, s := range series {
		if len(s.Values) != len(groups) {
			return nil, fmt.Errorf("plots.GroupedBars: series %q has %d values for %d groups", s.Name, len(s.Values), len(groups))
		}
		for g, v := range s.Values {
			if math.IsNaN(v) {
				continue
			}
			if v < 0 || math.IsInf(v, 0) {
				return nil, fmt.Errorf("plots.GroupedBars: series %q, group %q: value %v", s.Name, groups[g], v)
			}
			perGroup[g]++
			top = max(top, v)
		}
	}
	widest := 0
	for _, n := range perGroup {
		widest = max(widest, n)
	}
	if widest == 0 {
		return nil, errors.New("plots.GroupedBars: every value is NaN")
	}
	if top == 0 {
		top = 1
	}
	if !finite(top * 1.12) { // the headroom above the bars
		return nil, fmt.Errorf("plots.GroupedBars: value %v is too large to draw", top)
	}
	pl := plot.New()
	pl.Title.Text = title
	pl.Y.Label.Text = yLabel
	pl.Y.Min, pl.Y.Max = 0, top*1.12
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil // group ticks fall between bars
	pl.Add(grid)
	barW := 0.8 / float64(widest)
	var (
		xys    plotter.XYs
		texts  []string
		legend []LegendEntry
	)
	seen := make([]int, len(groups))
	for j, s := range series {
		c := Color(j)
		for g, v := range s.Values {
			if math.IsNaN(v) {
				continue
			}
			x0 := float64(g) - float64(perGroup[g])*barW/2 + float64(seen[g])*barW
			seen[g]++
			pl.Add(&Rect{X0: x0, X1: x0 + barW, Y1: v, Color: c})
			xys = append(xys, plotter.XY{X: x0 + barW/2, Y: v + top*0.01})
			texts = append(texts, strconv.FormatFloat(v, 'f', 2, 64))
		}
		legend = append(legend, LegendEntry{s.Name, []plot.Thumbnailer{&Rect{Color: c}}})
	}
	labels, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
	if err != nil {
		return nil, fmt.Errorf("plots.GroupedBars: %w", err)
	}
	for i := range labels.TextStyle {
		labels.TextStyle[i].XAlign = draw.XCenter
		labels.TextStyle[i].Font.Size = vg.Points(8)
	}
	pl.Add(labels)
	pl.NominalX(groups...)
	pl.X.Min, pl.X.Max = -0.5, float64(len(groups))-0.5
	width := max(singleW, vg.Length(len(groups))*vg.Length(widest)*0.45*vg.Inch+vg.Inch)
	return single(title, pl, legend, width, singleH)
}

// single is a figure of one plot whose own title is the figure's.
func single(title string, pl *plot.Plot, legend []LegendEntry, w, h vg.Length) (*Figure, error) {
	f, err := Compose("", [][]*plot.Plot{{pl}}, legend, w, h)
	if err != nil {
		return nil, err
	}
	f.title = title
	return f, nil
}
