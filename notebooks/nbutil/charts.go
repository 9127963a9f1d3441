package nbutil

import (
	"bytes"
	"fmt"
	"html"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
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

// TopKChart draws one bar chart per example (a grid of cols columns) of its k most
// probable classes and returns the PNG bytes. probs holds len(names) rows of classes
// probabilities (a model's Predict output); names titles the charts.
func TopKChart(title string, names []string, probs []float32, classes, k, cols int) ([]byte, error) {
	n := len(names)
	if n == 0 || classes <= 0 || len(probs) != n*classes {
		return nil, fmt.Errorf("nbutil.TopKChart: %d probabilities for %d examples of %d classes", len(probs), n, classes)
	}
	if k <= 0 || cols <= 0 {
		return nil, fmt.Errorf("nbutil.TopKChart: k (%d) and cols (%d) must be positive", k, cols)
	}
	cols = min(cols, n)
	rows := (n + cols - 1) / cols
	plots := make([][]*plot.Plot, rows)
	for r := range plots {
		plots[r] = make([]*plot.Plot, cols)
	}
	for i, name := range names {
		top, p := TopK(probs[i*classes:(i+1)*classes], k)
		pl := plot.New()
		pl.Title.Text = name
		pl.Y.Min, pl.Y.Max = 0, 1.15
		pl.Y.Label.Text = "probability"
		pl.X.Label.Text = "class"
		vals := make(plotter.Values, len(p))
		labels := make([]string, len(p))
		for j := range p {
			vals[j] = float64(p[j])
			labels[j] = strconv.Itoa(top[j])
		}
		bars, err := plotter.NewBarChart(vals, vg.Points(18))
		if err != nil {
			return nil, fmt.Errorf("nbutil.TopKChart: %w", err)
		}
		bars.Color = plotter.DefaultLineStyle.Color
		pl.Add(bars)
		// The probabilities as text above the bars: the top-1 bar often dwarfs the rest.
		xys := make(plotter.XYs, len(p))
		texts := make([]string, len(p))
		for j := range p {
			xys[j] = plotter.XY{X: float64(j), Y: float64(p[j]) + 0.04}
			texts[j] = probText(p[j])
		}
		lbl, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
		if err != nil {
			return nil, fmt.Errorf("nbutil.TopKChart: %w", err)
		}
		for j := range lbl.TextStyle {
			lbl.TextStyle[j].XAlign = draw.XCenter
			lbl.TextStyle[j].Font.Size = vg.Points(7)
		}
		pl.Add(lbl)
		pl.NominalX(labels...)
		plots[i/cols][i%cols] = pl
	}
	const tileW, tileH = 2.6 * vg.Inch, 2 * vg.Inch
	titleH := vg.Length(0)
	if title != "" {
		titleH = 0.4 * vg.Inch
	}
	width, height := vg.Length(cols)*tileW, vg.Length(rows)*tileH+titleH
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(96))
	dc := draw.New(img)
	if title != "" {
		sty := plot.New().Title.TextStyle
		sty.XAlign, sty.YAlign = draw.XCenter, draw.YTop
		dc.FillText(sty, vg.Point{X: width / 2, Y: height - 0.1*vg.Inch}, title)
		dc.Max.Y -= titleH
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter, PadY: vg.Millimeter,
		PadTop: vg.Millimeter, PadBottom: vg.Millimeter, PadLeft: vg.Millimeter, PadRight: vg.Millimeter}
	return drawTiles(plots, tiles, dc, img, "nbutil.TopKChart")
}

// drawTiles draws a grid of plots (nil cells stay empty) into dc, aligned,
// and encodes img as PNG.
func drawTiles(plots [][]*plot.Plot, tiles draw.Tiles, dc draw.Canvas, img *vgimg.Canvas, what string) ([]byte, error) {
	canvases := plot.Align(plots, tiles, dc)
	for r := range plots {
		for c, pl := range plots[r] {
			if pl != nil {
				pl.Draw(canvases[r][c])
			}
		}
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return buf.Bytes(), nil
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
