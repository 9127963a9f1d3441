package nbutil

import (
	"fmt"
	"html"
	"image/color"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/bbd-workbench/bbd/plots"
)

// TopK returns the k largest entries of probs (at most len(probs)), most probable first,
// as class indices and their probabilities. Ties keep the lower index first.
func TopK(probs []float32, k int) (classes []int, p []float32) {
	idx := make([]int, len(probs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return probs[idx[a]] > probs[idx[b]] })
	k = min(max(k, 0), len(probs))
	classes = idx[:k:k]
	p = make([]float32, k)
	for i, c := range classes {
		p[i] = probs[c]
	}
	return classes, p
}

// TopKOptions configures TopKChart.
type TopKOptions struct {
	// Title is drawn above the charts ("" for none).
	Title string
	// Series names the probability sets drawn side by side in every chart (one per
	// probs argument of TopKChart): two models on the same inputs, or a clean input
	// and its triggered version. The legend below the charts names them; with one
	// set it may be empty.
	Series []string
	// K: each chart shows the K most probable classes of each series (their union).
	K int
	// Targets are classes shown in every chart whatever their probability and
	// highlighted (the attacker's target labels).
	Targets []int
	// Cols is the number of charts per row (at least 1).
	Cols int
	// Floor is the bottom of the log-scale probability axis; 0 chooses the decade
	// below the smallest probability shown, but not below MinFloor. Probabilities
	// at or below it have no bar, only their value.
	Floor float64
}

// MinFloor is the lowest bottom of TopKChart's probability axis that it chooses
// itself: the real BadNets give some classes 1e-38 (or 0), and an axis reaching
// down there would squeeze the decades that tell the classes apart.
const MinFloor = 1e-20

// Series colours of TopKChart, and the band behind a target class.
var (
	topKColors = []color.Color{color.NRGBA{R: 70, G: 110, B: 170, A: 255}, color.NRGBA{R: 205, G: 60, B: 50, A: 255}}
	targetBand = color.NRGBA{R: 255, G: 232, B: 140, A: 255}
)

// TopKChart draws one bar chart per example (cols per row) of its most probable
// classes on a log-scale probability axis, so that the runners-up of a class taking
// 0.9999 of the mass stay visible, and returns the PNG bytes. names titles the
// charts; each probs argument is one series, len(names) rows of classes
// probabilities (a model's Predict output), and chart i draws row i of every
// series side by side per class, each bar labelled with its value. Classes are
// ordered by their largest probability in any series; target classes
// (opt.Targets) are always shown, on a highlighted band.
func TopKChart(opt TopKOptions, names []string, classes int, probs ...[]float32) ([]byte, error) {
	n, ns := len(names), len(probs)
	if n == 0 || classes <= 0 || ns == 0 {
		return nil, fmt.Errorf("nbutil.TopKChart: %d examples, %d classes, %d series; want some of each", n, classes, ns)
	}
	for s, p := range probs {
		if len(p) != n*classes {
			return nil, fmt.Errorf("nbutil.TopKChart: series %d has %d probabilities for %d examples of %d classes", s, len(p), n, classes)
		}
		for _, v := range p {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || v < 0 {
				return nil, fmt.Errorf("nbutil.TopKChart: series %d has probability %v", s, v)
			}
		}
	}
	if len(opt.Series) != ns && !(ns == 1 && len(opt.Series) == 0) {
		return nil, fmt.Errorf("nbutil.TopKChart: %d series names for %d series", len(opt.Series), ns)
	}
	if opt.K <= 0 || opt.Cols <= 0 {
		return nil, fmt.Errorf("nbutil.TopKChart: K (%d) and Cols (%d) must be positive", opt.K, opt.Cols)
	}
	for _, c := range opt.Targets {
		if c < 0 || c >= classes {
			return nil, fmt.Errorf("nbutil.TopKChart: target %d is not one of the %d classes", c, classes)
		}
	}
	if opt.Floor < 0 || opt.Floor >= 1 {
		return nil, fmt.Errorf("nbutil.TopKChart: floor %v is not in [0, 1)", opt.Floor)
	}
	row := func(s, i int) []float32 { return probs[s][i*classes : (i+1)*classes] }
	// The classes of each chart and the axis range shared by all.
	shown := make([][]int, n)
	slots, smallest, top := 0, math.Inf(1), 1.0
	for i := range names {
		shown[i] = topKClasses(opt.K, opt.Targets, ns, func(s int) []float32 { return row(s, i) })
		slots = max(slots, len(shown[i]))
		for _, c := range shown[i] {
			for s := range ns {
				if p := float64(row(s, i)[c]); p > 0 {
					smallest = min(smallest, p)
					top = max(top, p)
				}
			}
		}
	}
	floor := opt.Floor
	if floor == 0 {
		floor = min(0.1, max(MinFloor, math.Pow(10, math.Ceil(math.Log10(smallest))-1)))
	}
	decades := math.Log10(top / floor)
	// Headroom above the bars for their values: upright when the bars are narrow.
	room := 0.12
	if ns > 1 {
		room = 0.22
	}
	yMax := top * math.Pow(10, room*decades)
	cols := min(opt.Cols, n)
	rows := (n + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
	}
	barW := 0.8 / float64(ns)
	for i, name := range names {
		pl := plot.New()
		pl.Title.Text = name
		pl.Title.TextStyle.Font.Size = vg.Points(10)
		pl.Y.Label.Text = "probability"
		// Centred, gonum v0.17 places the label's box by the arithmetic middle of the
		// range, near the top of a log axis, and shrinks the plot to fit it there.
		pl.Y.Label.Position = draw.PosTop
		pl.Y.Scale = plot.LogScale{}
		pl.Y.Tick.Marker = decadeTicks{}
		pl.X.Label.Text = "class"
		lines := plotter.NewGrid()
		lines.Vertical.Color = nil
		labels := make([]string, len(shown[i]))
		var (
			xys   plotter.XYs
			texts []string
		)
		for j, c := range shown[i] {
			labels[j] = strconv.Itoa(c)
			if slices.Contains(opt.Targets, c) {
				labels[j] += "\ntarget"
				pl.Add(&band{x0: float64(j) - 0.5, x1: float64(j) + 0.5, color: targetBand})
			}
		}
		pl.Add(lines)
		for j, c := range shown[i] {
			for s := range ns {
				p := float64(row(s, i)[c])
				x0 := float64(j) - 0.4 + float64(s)*barW
				if p > floor {
					pl.Add(&plots.Rect{X0: x0, X1: x0 + barW, Y0: floor, Y1: p, Color: topKColor(s)})
				}
				xys = append(xys, plotter.XY{X: x0 + barW/2, Y: max(p, floor) * math.Pow(10, 0.015*decades)})
				texts = append(texts, probText(float32(p)))
			}
		}
		lbl, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
		if err != nil {
			return nil, fmt.Errorf("nbutil.TopKChart: %w", err)
		}
		for j := range lbl.TextStyle {
			lbl.TextStyle[j].Font.Size = vg.Points(7)
			lbl.TextStyle[j].XAlign = draw.XCenter
			if ns > 1 {
				lbl.TextStyle[j].Rotation = math.Pi / 2
				lbl.TextStyle[j].XAlign, lbl.TextStyle[j].YAlign = draw.XLeft, draw.YCenter
			}
		}
		pl.Add(lbl)
		pl.NominalX(labels...)
		pl.X.Min, pl.X.Max = -0.5, float64(slots)-0.5
		pl.Y.Min, pl.Y.Max = floor, yMax
		grid[i/cols][i%cols] = pl
	}
	var legend []plots.LegendEntry
	if ns > 1 {
		for s, name := range opt.Series {
			legend = append(legend, plots.LegendEntry{Name: name, Thumbs: []plot.Thumbnailer{&plots.Rect{Color: topKColor(s)}}})
		}
	}
	if len(opt.Targets) > 0 {
		legend = append(legend, plots.LegendEntry{Name: "target class", Thumbs: []plot.Thumbnailer{&plots.Rect{Color: targetBand}}})
	}
	tileW := 0.9*vg.Inch + vg.Length(slots)*(vg.Length(ns)*0.22+0.14)*vg.Inch
	fig, err := plots.Compose(opt.Title, grid, legend, vg.Length(cols)*tileW, vg.Length(rows)*2.6*vg.Inch)
	if err != nil {
		return nil, fmt.Errorf("nbutil.TopKChart: %w", err)
	}
	return fig.PNG()
}

// topKClasses returns the classes a chart of TopKChart shows: the union of the k most
// probable classes of each of ns series (row(s) is series s's probabilities) and the
// targets, ordered by their largest probability in any series (ties: lower class first).
func topKClasses(k int, targets []int, ns int, row func(s int) []float32) []int {
	best := map[int]float32{}
	add := func(c int) {
		for s := range ns {
			best[c] = max(best[c], row(s)[c])
		}
	}
	for s := range ns {
		top, _ := TopK(row(s), k)
		for _, c := range top {
			add(c)
		}
	}
	for _, c := range targets {
		add(c)
	}
	out := slices.Collect(maps.Keys(best))
	sort.Slice(out, func(a, b int) bool {
		if best[out[a]] != best[out[b]] {
			return best[out[a]] > best[out[b]]
		}
		return out[a] < out[b]
	})
	return out
}

func topKColor(s int) color.Color {
	if s < len(topKColors) {
		return topKColors[s]
	}
	return plotutil.Color(s)
}

// band fills the y range of a plot between x0 and x1 (data coordinates); it leaves
// the plot's data range alone.
type band struct {
	x0, x1 float64
	color  color.Color
}

func (b *band) Plot(c draw.Canvas, p *plot.Plot) {
	tx, ty := p.Transforms(&c)
	pts := []vg.Point{
		{X: tx(b.x0), Y: ty(p.Y.Min)}, {X: tx(b.x1), Y: ty(p.Y.Min)},
		{X: tx(b.x1), Y: ty(p.Y.Max)}, {X: tx(b.x0), Y: ty(p.Y.Max)},
	}
	c.FillPolygon(b.color, c.ClipPolygonXY(pts))
}

// decadeTicks marks the powers of ten of a log axis up to 1 (every one, or every
// few when there are many), labelled "1", "0.1", "1e-4".
type decadeTicks struct{}

func (decadeTicks) Ticks(lo, hi float64) []plot.Tick {
	first, last := int(math.Ceil(math.Log10(lo)-1e-9)), int(math.Floor(math.Log10(min(hi, 1))+1e-9))
	step := max(1, (last-first+7)/8)
	var ticks []plot.Tick
	for e := last; e >= first; e -= step {
		label := "1e" + strconv.Itoa(e)
		switch e {
		case 0:
			label = "1"
		case -1:
			label = "0.1"
		}
		ticks = append(ticks, plot.Tick{Value: math.Pow(10, float64(e)), Label: label})
	}
	return ticks
}

// HTMLTable renders a table with a header row; cells are HTML-escaped. Cells that look
// like numbers ("1,000", "0.912", "-3", "97.5%") are right-aligned.
func HTMLTable(header []string, rows [][]string) string {
	var b strings.Builder
	b.WriteString("<table>\n<thead><tr>")
	for _, h := range header {
		fmt.Fprintf(&b, "<th>%s</th>", html.EscapeString(h))
	}
	b.WriteString("</tr></thead>\n<tbody>\n")
	for _, r := range rows {
		b.WriteString("<tr>")
		for _, c := range r {
			align := "left"
			if isNumber(c) {
				align = "right"
			}
			fmt.Fprintf(&b, `<td style="text-align:%s">%s</td>`, align, html.EscapeString(c))
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</tbody>\n</table>\n")
	return b.String()
}

// isNumber reports whether a table cell reads as a number: digits with optional sign,
// thousands commas, decimals and a trailing percent sign.
func isNumber(c string) bool {
	c = strings.TrimSuffix(strings.ReplaceAll(strings.TrimSpace(c), ",", ""), "%")
	if c == "" || strings.ContainsAny(c, "eEnNiIxX_") { // no exponents, NaN, Inf, hex
		return false
	}
	_, err := strconv.ParseFloat(c, 64)
	return err == nil
}

// probText formats a probability compactly: "0.97", "3e-05", "0".
func probText(p float32) string {
	switch {
	case p == 0:
		return "0"
	case p >= 0.01:
		return strconv.FormatFloat(float64(p), 'f', 2, 32)
	default:
		return strconv.FormatFloat(float64(p), 'e', 0, 32)
	}
}
