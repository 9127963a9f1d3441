package nbutil

import (
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Series is one named line of a line chart: the points (X[i], Y[i]).
type Series struct {
	Name string
	X, Y []float64
}

// LinePanel is one chart of LineCharts: its lines and axis labels. YMin and YMax fix
// the y range when they differ; both zero: the range of the data.
type LinePanel struct {
	Title, XLabel, YLabel string
	Series                []Series
	YMin, YMax            float64
}

// LineCharts draws panels side by side (cols per row), each line with its points, and
// returns the PNG bytes. Series i has the same colour, dashes and point shape in every
// panel, so panels showing different figures of the same things (loss and accuracy of
// the same models) share one legend: it is drawn below the panels and names the
// series of the first panel. When every x value is a whole number (epochs), the x ticks
// are whole numbers.
func LineCharts(title string, panels []LinePanel, cols int) ([]byte, error) {
	if len(panels) == 0 {
		return nil, fmt.Errorf("nbutil.LineCharts: no panels")
	}
	if cols <= 0 {
		return nil, fmt.Errorf("nbutil.LineCharts: cols (%d) must be positive", cols)
	}
	cols = min(cols, len(panels))
	rows := (len(panels) + cols - 1) / cols
	plots := make([][]*plot.Plot, rows)
	for r := range plots {
		plots[r] = make([]*plot.Plot, cols)
	}
	var legend []legendEntry
	for i, pn := range panels {
		pl := plot.New()
		pl.Title.Text = pn.Title
		pl.X.Label.Text = pn.XLabel
		pl.Y.Label.Text = pn.YLabel
		pl.Add(plotter.NewGrid())
		whole := true
		for j, s := range pn.Series {
			if len(s.X) != len(s.Y) {
				return nil, fmt.Errorf("nbutil.LineCharts: panel %q series %q has %d x and %d y values", pn.Title, s.Name, len(s.X), len(s.Y))
			}
			xys := make(plotter.XYs, len(s.X))
			for k := range s.X {
				if math.IsNaN(s.X[k]) || math.IsNaN(s.Y[k]) || math.IsInf(s.X[k], 0) || math.IsInf(s.Y[k], 0) {
					return nil, fmt.Errorf("nbutil.LineCharts: panel %q series %q: point %d is (%v, %v)", pn.Title, s.Name, k, s.X[k], s.Y[k])
				}
				xys[k] = plotter.XY{X: s.X[k], Y: s.Y[k]}
				whole = whole && s.X[k] == math.Trunc(s.X[k])
			}
			if len(xys) == 0 {
				continue
			}
			line, points, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, fmt.Errorf("nbutil.LineCharts: %w", err)
			}
			line.Color = plotutil.Color(j)
			line.Dashes = plotutil.Dashes(j)
			line.Width = vg.Points(1.5)
			points.Color = plotutil.Color(j)
			points.Shape = plotutil.Shape(j)
			pl.Add(line, points)
			if i == 0 {
				legend = append(legend, legendEntry{s.Name, []plot.Thumbnailer{line, points}})
			}
		}
		if pn.YMin != pn.YMax {
			pl.Y.Min, pl.Y.Max = pn.YMin, pn.YMax
		}
		if whole {
			pl.X.Tick.Marker = wholeTicks{}
		}
		plots[i/cols][i%cols] = pl
	}
	const tileW, tileH = 4 * vg.Inch, 3 * vg.Inch
	return drawFigure(title, plots, legend, vg.Length(cols)*tileW, vg.Length(rows)*tileH)
}

// BarSeries is one named set of bars of GroupedBarChart: one value per group; a NaN
// value draws no bar in that group.
type BarSeries struct {
	Name   string
	Values []float64
}

// GroupedBarChart draws one group of bars per entry of groups, one bar per series whose
// value there is not NaN (the bars of a group stay side by side, without gaps for missing
// ones), each labelled with its value, and returns the PNG bytes. Series keep their
// colour in every group; the legend below the chart names them. The y axis starts at 0
// (values must not be negative) and ends a little above the largest value.
func GroupedBarChart(title, yLabel string, groups []string, series []BarSeries) ([]byte, error) {
	if len(groups) == 0 || len(series) == 0 {
		return nil, fmt.Errorf("nbutil.GroupedBarChart: %d groups and %d series, want some of each", len(groups), len(series))
	}
	perGroup := make([]int, len(groups))
	top := 0.0
	for _, s := range series {
		if len(s.Values) != len(groups) {
			return nil, fmt.Errorf("nbutil.GroupedBarChart: series %q has %d values for %d groups", s.Name, len(s.Values), len(groups))
		}
		for g, v := range s.Values {
			if math.IsNaN(v) {
				continue
			}
			if v < 0 || math.IsInf(v, 0) {
				return nil, fmt.Errorf("nbutil.GroupedBarChart: series %q, group %q: value %v", s.Name, groups[g], v)
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
		return nil, fmt.Errorf("nbutil.GroupedBarChart: every value is NaN")
	}
	if top == 0 {
		top = 1
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
		legend []legendEntry
	)
	seen := make([]int, len(groups))
	for j, s := range series {
		c := plotutil.Color(j)
		for g, v := range s.Values {
			if math.IsNaN(v) {
				continue
			}
			x0 := float64(g) - float64(perGroup[g])*barW/2 + float64(seen[g])*barW
			seen[g]++
			pl.Add(&bar{x0: x0, x1: x0 + barW, y: v, color: c})
			xys = append(xys, plotter.XY{X: x0 + barW/2, Y: v + top*0.01})
			texts = append(texts, strconv.FormatFloat(v, 'f', 2, 64))
		}
		legend = append(legend, legendEntry{s.Name, []plot.Thumbnailer{&bar{color: c}}})
	}
	labels, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
	if err != nil {
		return nil, fmt.Errorf("nbutil.GroupedBarChart: %w", err)
	}
	for i := range labels.TextStyle {
		labels.TextStyle[i].XAlign = draw.XCenter
		labels.TextStyle[i].Font.Size = vg.Points(8)
	}
	pl.Add(labels)
	pl.NominalX(groups...)
	pl.X.Min, pl.X.Max = -0.5, float64(len(groups))-0.5
	width := max(5*vg.Inch, vg.Length(len(groups))*vg.Length(widest)*0.45*vg.Inch+vg.Inch)
	return drawFigure("", [][]*plot.Plot{{pl}}, legend, width, 3.5*vg.Inch)
}

// bar is a filled rectangle from (x0, y0) to (x1, y) in data coordinates, and its
// legend thumbnail.
type bar struct {
	x0, x1, y0, y float64
	color         color.Color
}

func (b *bar) Plot(c draw.Canvas, p *plot.Plot) {
	tx, ty := p.Transforms(&c)
	pts := []vg.Point{
		{X: tx(b.x0), Y: ty(b.y0)}, {X: tx(b.x1), Y: ty(b.y0)},
		{X: tx(b.x1), Y: ty(b.y)}, {X: tx(b.x0), Y: ty(b.y)},
	}
	c.FillPolygon(b.color, c.ClipPolygonXY(pts))
}

func (b *bar) DataRange() (xmin, xmax, ymin, ymax float64) {
	return b.x0, b.x1, b.y0, b.y
}

func (b *bar) Thumbnail(c *draw.Canvas) {
	pts := []vg.Point{
		{X: c.Min.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Min.Y},
		{X: c.Max.X, Y: c.Max.Y}, {X: c.Min.X, Y: c.Max.Y},
	}
	c.FillPolygon(b.color, pts)
}

// wholeTicks marks whole numbers only: at most about 10 of them.
type wholeTicks struct{}

func (wholeTicks) Ticks(lo, hi float64) []plot.Tick {
	first, last := math.Ceil(lo), math.Floor(hi)
	step := math.Max(1, math.Ceil((last-first)/10))
	var ticks []plot.Tick
	for v := first; v <= last; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', 0, 64)})
	}
	return ticks
}

type legendEntry struct {
	name   string
	thumbs []plot.Thumbnailer
}

// drawFigure draws a grid of plots (nil ones are left empty) under an optional title and
// above an optional legend (entries side by side, in as many rows as the width needs),
// in a width x height image (plus the title's and the legend's height), and returns the PNG bytes.
func drawFigure(title string, plots [][]*plot.Plot, legend []legendEntry, width, height vg.Length) ([]byte, error) {
	sty := plot.New().Title.TextStyle
	legendSty := plot.NewLegend().TextStyle
	legendSty.Font.Size = vg.Points(10)
	const thumbW, gap, margin = vg.Length(20), vg.Length(18), vg.Length(8) // points
	em := legendSty.Rectangle(" ").Max.X
	lineH := legendSty.Rectangle("M").Max.Y * 1.8
	// The legend's entries in rows that fit the width.
	var legendRows [][]legendEntry
	var rowW []vg.Length
	for _, e := range legend {
		w := thumbW + em + legendSty.Rectangle(e.name).Max.X
		if n := len(legendRows); n > 0 && rowW[n-1]+gap+w <= width-2*margin {
			legendRows[n-1] = append(legendRows[n-1], e)
			rowW[n-1] += gap + w
			continue
		}
		legendRows = append(legendRows, []legendEntry{e})
		rowW = append(rowW, w)
	}
	titleH, legendH := vg.Length(0), vg.Length(0)
	if title != "" {
		titleH = 0.4 * vg.Inch
	}
	if len(legendRows) > 0 {
		legendH = vg.Length(len(legendRows))*lineH + 0.1*vg.Inch
	}
	img := vgimg.NewWith(vgimg.UseWH(width, height+titleH+legendH), vgimg.UseDPI(96))
	dc := draw.New(img)
	if title != "" {
		sty.XAlign, sty.YAlign = draw.XCenter, draw.YTop
		dc.FillText(sty, vg.Point{X: dc.Center().X, Y: dc.Max.Y - 0.1*vg.Inch}, title)
		dc.Max.Y -= titleH
	}
	h := legendSty.Rectangle("M").Max.Y
	for r, row := range legendRows {
		x := max(dc.Min.X+margin, dc.Center().X-rowW[r]/2)
		y := dc.Min.Y + legendH - 0.05*vg.Inch - (vg.Length(r)+0.5)*lineH
		for _, e := range row {
			icon := &draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{
				Min: vg.Point{X: x, Y: y - h/2}, Max: vg.Point{X: x + thumbW, Y: y + h/2}}}
			for _, t := range e.thumbs {
				t.Thumbnail(icon)
			}
			x += thumbW + em
			s := legendSty
			s.YAlign = draw.YCenter
			dc.FillText(s, vg.Point{X: x, Y: y}, e.name)
			x += legendSty.Rectangle(e.name).Max.X + gap
		}
	}
	dc.Min.Y += legendH
	pad := vg.Millimeter
	tiles := draw.Tiles{Rows: len(plots), Cols: len(plots[0]), PadX: 4 * pad, PadY: 4 * pad,
		PadTop: pad, PadBottom: pad, PadLeft: 2 * pad, PadRight: 2 * pad}
	return drawTiles(plots, tiles, dc, img, "nbutil")
}
