package plots

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"

	"github.com/bbd-workbench/bbd/internal/safefs"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// DPI is the resolution of PNG output: a 4 inch wide tile is 384 pixels.
const DPI = 96

// Figure is a drawn figure that renders to several formats at a fixed size. It keeps
// its plots and draws them again for each format, so PNG and SVG show the same thing.
// Its methods may be called from several goroutines.
type Figure struct {
	mu              sync.Mutex // gonum/plot writes to a plot's axes while drawing it
	title           string     // what Title returns
	banner          string     // drawn above the plots ("" for none)
	grid            [][]*plot.Plot
	legend          [][]LegendEntry // rows of the legend below the plots
	rowW            []vg.Length     // width of each legend row
	width           vg.Length
	height          vg.Length // of the plots' area; the banner and legend come on top
	titleH, legendH vg.Length
}

// LegendEntry is one entry of a figure's shared legend: its thumbnails drawn on top of
// each other, then its name.
type LegendEntry struct {
	Name   string
	Thumbs []plot.Thumbnailer
}

// Legend layout, in points.
const (
	thumbW       = vg.Length(20)
	legendGap    = vg.Length(18)
	legendMargin = vg.Length(8)
)

func legendStyle() draw.TextStyle {
	sty := plot.NewLegend().TextStyle
	sty.Font.Size = vg.Points(10)
	return sty
}

// Compose lays out a grid of plots (nil cells stay empty; every row as long as the
// first) in a width x height area, under title (drawn centred above; "" for none) and
// above the legend (entries side by side, in as many rows as the width needs; it makes
// the figure taller, never wider). The plots are drawn each time the figure renders.
// Lines uses it; so can callers drawing figures of their own with gonum/plot.
func Compose(title string, grid [][]*plot.Plot, legend []LegendEntry, width, height vg.Length) (*Figure, error) {
	if len(grid) == 0 || len(grid[0]) == 0 {
		return nil, errors.New("plots.Compose: no plots")
	}
	for r, row := range grid {
		if len(row) != len(grid[0]) {
			return nil, fmt.Errorf("plots.Compose: row %d has %d plots, row 0 has %d", r, len(row), len(grid[0]))
		}
	}
	if !(width > 0 && height > 0) || math.IsInf(float64(width+height), 0) {
		return nil, fmt.Errorf("plots.Compose: size %v x %v", width, height)
	}
	f := &Figure{title: title, banner: title, grid: grid, width: width, height: height}
	sty := legendStyle()
	em := sty.Rectangle(" ").Max.X
	for _, e := range legend {
		w := thumbW + em + sty.Rectangle(e.Name).Max.X
		if n := len(f.legend); n > 0 && f.rowW[n-1]+legendGap+w <= width-2*legendMargin {
			f.legend[n-1] = append(f.legend[n-1], e)
			f.rowW[n-1] += legendGap + w
			continue
		}
		f.legend = append(f.legend, []LegendEntry{e})
		f.rowW = append(f.rowW, w)
	}
	if title != "" {
		f.titleH = 0.4 * vg.Inch
	}
	if len(f.legend) > 0 {
		f.legendH = vg.Length(len(f.legend))*legendLineH(sty) + 0.1*vg.Inch
	}
	return f, nil
}

func legendLineH(sty draw.TextStyle) vg.Length { return sty.Rectangle("M").Max.Y * 1.8 }

// Title returns the figure's title.
func (f *Figure) Title() string {
	if f == nil {
		return ""
	}
	return f.title
}

// Size returns the figure's width and height.
func (f *Figure) Size() (w, h vg.Length) {
	if f == nil {
		return 0, 0
	}
	return f.width, f.height + f.titleH + f.legendH
}

// PNG renders the figure as a PNG image at DPI dots per inch.
func (f *Figure) PNG() ([]byte, error) {
	if f == nil {
		return nil, errors.New("plots: PNG of a nil Figure")
	}
	w, h := f.Size()
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(DPI))
	if err := f.draw(img); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("plots: PNG of %q: %w", f.title, err)
	}
	return buf.Bytes(), nil
}

// SVG renders the figure as an SVG document (fonts named, not embedded: it stays small).
func (f *Figure) SVG() ([]byte, error) {
	if f == nil {
		return nil, errors.New("plots: SVG of a nil Figure")
	}
	w, h := f.Size()
	c := vgsvg.New(w, h)
	if err := f.draw(c); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("plots: SVG of %q: %w", f.title, err)
	}
	return buf.Bytes(), nil
}

// draw draws the figure on c. gonum/plot panics on some inputs the constructors do not
// foresee; that becomes an error here, as library code must not panic.
func (f *Figure) draw(c vg.CanvasSizer) (err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("plots: drawing %q: %v", f.title, r)
		}
	}()
	dc := draw.New(c)
	// SVG has no background of its own; PNG's is white already.
	dc.FillPolygon(backgroundColor, []vg.Point{dc.Min, {X: dc.Max.X, Y: dc.Min.Y}, dc.Max, {X: dc.Min.X, Y: dc.Max.Y}})
	if f.banner != "" {
		sty := plot.New().Title.TextStyle
		sty.XAlign, sty.YAlign = draw.XCenter, draw.YTop
		dc.FillText(sty, vg.Point{X: dc.Center().X, Y: dc.Max.Y - 0.1*vg.Inch}, f.banner)
		dc.Max.Y -= f.titleH
	}
	sty := legendStyle()
	em, h, lineH := sty.Rectangle(" ").Max.X, sty.Rectangle("M").Max.Y, legendLineH(sty)
	sty.YAlign = draw.YCenter
	for r, row := range f.legend {
		x := max(dc.Min.X+legendMargin, dc.Center().X-f.rowW[r]/2)
		y := dc.Min.Y + f.legendH - 0.05*vg.Inch - (vg.Length(r)+0.5)*lineH
		for _, e := range row {
			icon := &draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{
				Min: vg.Point{X: x, Y: y - h/2}, Max: vg.Point{X: x + thumbW, Y: y + h/2}}}
			for _, t := range e.Thumbs {
				t.Thumbnail(icon)
			}
			x += thumbW + em
			dc.FillText(sty, vg.Point{X: x, Y: y}, e.Name)
			x += sty.Rectangle(e.Name).Max.X + legendGap
		}
	}
	dc.Min.Y += f.legendH
	pad := vg.Millimeter
	tiles := draw.Tiles{Rows: len(f.grid), Cols: len(f.grid[0]), PadX: 4 * pad, PadY: 4 * pad,
		PadTop: pad, PadBottom: pad, PadLeft: 2 * pad, PadRight: 2 * pad}
	canvases := plot.Align(f.grid, tiles, dc)
	for r, row := range f.grid {
		for c, pl := range row {
			if pl != nil {
				pl.Draw(canvases[r][c])
			}
		}
	}
	return nil
}

// Save writes base.png and base.svg, creating their folder. Each file is written to a
// temporary file in the same folder and renamed, so a reader never sees half a figure.
// Unless overwrite is true, it refuses (before writing anything) when either exists.
func (f *Figure) Save(base string, overwrite bool) error {
	if base == "" {
		return errors.New("plots: Save: empty path")
	}
	if f == nil {
		return fmt.Errorf("plots: Save %s: nil Figure", base)
	}
	// Render both first: an error leaves no file behind.
	pngBytes, err := f.PNG()
	if err != nil {
		return err
	}
	svgBytes, err := f.SVG()
	if err != nil {
		return err
	}
	files := []struct {
		path string
		data []byte
	}{{base + ".png", pngBytes}, {base + ".svg", svgBytes}}
	if !overwrite {
		for _, fl := range files {
			if _, err := os.Lstat(fl.path); err == nil {
				return fmt.Errorf("plots: Save: %s exists (overwrite it with overwrite=true)", fl.path)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("plots: Save: %w", err)
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		return fmt.Errorf("plots: Save: %w", err)
	}
	for _, fl := range files {
		// safefs: atomic, and never replaces a file that appeared since the
		// check above unless overwrite.
		if err := safefs.WriteFile(fl.path, fl.data, 0o644, overwrite); err != nil {
			return fmt.Errorf("plots: Save: %w", err)
		}
	}
	return nil
}
