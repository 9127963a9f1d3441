package plots

import (
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// palette is matplotlib's default cycle (Tableau 10): the paper's figures use it, and
// its first colours stay apart for colour-blind readers.
var palette = []color.NRGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
	{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255},
	{188, 189, 34, 255}, {23, 190, 207, 255},
}

var (
	backgroundColor = color.White
	flaggedColor    = palette[3]
	greyColor       = color.NRGBA{150, 150, 150, 255}
	markColor       = color.NRGBA{40, 40, 40, 255}
)

// Color returns the colour of series i in every figure of this package.
func Color(i int) color.NRGBA {
	return palette[((i%len(palette))+len(palette))%len(palette)]
}

// fade returns c with opacity a (0-255).
func fade(c color.NRGBA, a uint8) color.NRGBA {
	c.A = a
	return c
}

// lineStyle and glyphStyle are series i's line and point styles in Lines.
func lineStyle(i int) draw.LineStyle {
	return draw.LineStyle{Color: Color(i), Width: vg.Points(1.5), Dashes: plotutil.Dashes(i)}
}

func glyphStyle(i int) draw.GlyphStyle {
	return draw.GlyphStyle{Color: Color(i), Radius: vg.Points(3), Shape: plotutil.Shape(i)}
}

// dashed is the style of threshold lines.
var dashed = draw.LineStyle{Color: markColor, Width: vg.Points(1.2), Dashes: []vg.Length{vg.Points(5), vg.Points(3)}}

// newPlot returns a plot with its title, axis labels and a grid.
func newPlot(title, xLabel, yLabel string) *plot.Plot {
	pl := plot.New()
	pl.Title.Text = title
	pl.X.Label.Text = xLabel
	pl.Y.Label.Text = yLabel
	pl.Add(plotter.NewGrid())
	return pl
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// span is the range of an axis's values. One whose width overflows is refused:
// gonum/plot's tick marker never returns on it.
type span struct{ lo, hi float64 }

func newSpan() span { return span{math.Inf(1), math.Inf(-1)} }

func (s *span) add(vs ...float64) {
	for _, v := range vs {
		s.lo, s.hi = min(s.lo, v), max(s.hi, v)
	}
}

func (s span) ok() bool { return s.lo > s.hi || finite(s.hi-s.lo) }

// WholeTicks marks whole numbers only (epochs, labels): at most about 10 of them.
type WholeTicks struct{}

// Ticks implements plot.Ticker.
func (WholeTicks) Ticks(lo, hi float64) []plot.Tick {
	first, last := math.Ceil(lo), math.Floor(hi)
	step := math.Max(1, math.Ceil((last-first)/10))
	var ticks []plot.Tick
	// A counter, not v += step: step can be below the spacing of floats near v.
	for i := 0; i <= 11; i++ {
		v := first + float64(i)*step
		if v > last {
			break
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', 0, 64)})
	}
	return ticks
}

// Rect is a filled rectangle from (X0, Y0) to (X1, Y1) in data coordinates (a bar);
// as a legend thumbnail it fills the thumbnail.
type Rect struct {
	X0, X1, Y0, Y1 float64
	Color          color.Color
}

// Plot implements plot.Plotter.
func (b *Rect) Plot(c draw.Canvas, p *plot.Plot) {
	tx, ty := p.Transforms(&c)
	pts := []vg.Point{
		{X: tx(b.X0), Y: ty(b.Y0)}, {X: tx(b.X1), Y: ty(b.Y0)},
		{X: tx(b.X1), Y: ty(b.Y1)}, {X: tx(b.X0), Y: ty(b.Y1)},
	}
	c.FillPolygon(b.Color, c.ClipPolygonXY(pts))
}

// DataRange implements plot.DataRanger.
func (b *Rect) DataRange() (xmin, xmax, ymin, ymax float64) {
	return b.X0, b.X1, b.Y0, b.Y1
}

// Thumbnail implements plot.Thumbnailer.
func (b *Rect) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(b.Color, []vg.Point{c.Min, {X: c.Max.X, Y: c.Min.Y}, c.Max, {X: c.Min.X, Y: c.Max.Y}})
}

// refLine is a line across the whole plot at x = at (vertical) or y = at: a threshold.
// Its data range is only that coordinate, so the plot's range includes it.
type refLine struct {
	vertical bool
	at       float64
	style    draw.LineStyle
}

func (l *refLine) Plot(c draw.Canvas, p *plot.Plot) {
	tx, ty := p.Transforms(&c)
	if l.vertical {
		c.StrokeLines(l.style, c.ClipLinesXY([]vg.Point{{X: tx(l.at), Y: c.Min.Y}, {X: tx(l.at), Y: c.Max.Y}})...)
		return
	}
	c.StrokeLines(l.style, c.ClipLinesXY([]vg.Point{{X: c.Min.X, Y: ty(l.at)}, {X: c.Max.X, Y: ty(l.at)}})...)
}

func (l *refLine) DataRange() (xmin, xmax, ymin, ymax float64) {
	inf := math.Inf(1)
	if l.vertical {
		return l.at, l.at, inf, -inf
	}
	return inf, -inf, l.at, l.at
}

func (l *refLine) Thumbnail(c *draw.Canvas) {
	y := c.Center().Y
	c.StrokeLine2(l.style, c.Min.X, y, c.Max.X, y)
}
