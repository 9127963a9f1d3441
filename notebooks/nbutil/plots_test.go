package nbutil_test

import (
	"image"
	"image/color"
	"math"
	"strings"
	"testing"

	"github.com/bbd-workbench/bbd/notebooks/nbutil"
)

// colourful counts the pixels that are clearly coloured (not white, gray or black).
func colourful(img image.Image) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			hi := max(c.R, c.G, c.B)
			lo := min(c.R, c.G, c.B)
			if hi-lo > 60 {
				n++
			}
		}
	}
	return n
}

func TestLineCharts(t *testing.T) {
	panels := []nbutil.LinePanel{
		{Title: "loss", XLabel: "epoch", YLabel: "loss", Series: []nbutil.Series{
			{Name: "a", X: []float64{1, 2, 3}, Y: []float64{1.2, 0.6, 0.4}},
			{Name: "b", X: []float64{1, 2, 3}, Y: []float64{1.5, 0.8, 0.5}},
		}},
		{Title: "accuracy", XLabel: "epoch", YLabel: "accuracy", YMin: 0, YMax: 1, Series: []nbutil.Series{
			{Name: "a", X: []float64{1, 2, 3}, Y: []float64{0.6, 0.8, 0.9}},
			{Name: "b", X: []float64{1, 2, 3}, Y: []float64{0.5, 0.7, 0.85}},
		}},
	}
	b, err := nbutil.LineCharts("curves", panels, 2)
	if err != nil {
		t.Fatal(err)
	}
	img := decodePNG(t, b)
	if w, h := img.Bounds().Dx(), img.Bounds().Dy(); w < 600 || h < 250 || w < h {
		t.Errorf("two panels side by side drawn as %dx%d", w, h)
	}
	if colourful(img) < 100 {
		t.Error("no coloured lines drawn")
	}
	// One row of two panels is as wide as two rows of one, and less tall.
	b2, err := nbutil.LineCharts("curves", panels, 1)
	if err != nil {
		t.Fatal(err)
	}
	if img2 := decodePNG(t, b2); img2.Bounds().Dy() <= img.Bounds().Dy() {
		t.Errorf("one column is %d high, two columns %d", img2.Bounds().Dy(), img.Bounds().Dy())
	}

	for name, bad := range map[string][]nbutil.LinePanel{
		"no panels":  nil,
		"x/y length": {{Series: []nbutil.Series{{Name: "a", X: []float64{1, 2}, Y: []float64{1}}}}},
		"NaN":        {{Series: []nbutil.Series{{Name: "a", X: []float64{1}, Y: []float64{math.NaN()}}}}},
	} {
		if _, err := nbutil.LineCharts("", bad, 2); err == nil {
			t.Errorf("LineCharts accepts %s", name)
		}
	}
	if _, err := nbutil.LineCharts("", panels, 0); err == nil {
		t.Error("LineCharts accepts 0 columns")
	}
}

func TestGroupedBarChart(t *testing.T) {
	nan := math.NaN()
	groups := []string{"one", "two", "three"}
	series := []nbutil.BarSeries{
		{Name: "clean", Values: []float64{0.9, 0.85, 0.8}},
		{Name: "attack x", Values: []float64{1, nan, 0.95}},
		{Name: "attack y", Values: []float64{nan, 0.99, 0.97}},
	}
	b, err := nbutil.GroupedBarChart("bars", "rate", groups, series)
	if err != nil {
		t.Fatal(err)
	}
	img := decodePNG(t, b)
	if w := img.Bounds().Dx(); w < 400 {
		t.Errorf("chart is only %d pixels wide", w)
	}
	if colourful(img) < 1000 {
		t.Error("no coloured bars drawn")
	}
	// A legend too wide for one row wraps: the image grows taller, not wider.
	long := make([]nbutil.BarSeries, len(series))
	for i, s := range series {
		long[i] = nbutil.BarSeries{Name: strings.Repeat("a long series name, ", 4) + s.Name, Values: s.Values}
	}
	bl, err := nbutil.GroupedBarChart("bars", "rate", groups, long)
	if err != nil {
		t.Fatal(err)
	}
	imgLong := decodePNG(t, bl)
	if imgLong.Bounds().Dx() != img.Bounds().Dx() || imgLong.Bounds().Dy() <= img.Bounds().Dy() {
		t.Errorf("chart with a long legend is %v, with a short one %v: want as wide and taller", imgLong.Bounds().Size(), img.Bounds().Size())
	}
	for name, s := range map[string][]nbutil.BarSeries{
		"no series":      nil,
		"short series":   {{Name: "a", Values: []float64{1}}},
		"negative value": {{Name: "a", Values: []float64{1, -1, 1}}},
		"all NaN":        {{Name: "a", Values: []float64{nan, nan, nan}}},
	} {
		if _, err := nbutil.GroupedBarChart("", "", groups, s); err == nil {
			t.Errorf("GroupedBarChart accepts %s", name)
		}
	}
}

func TestHTMLTableNumbers(t *testing.T) {
	h := nbutil.HTMLTable([]string{"a"}, [][]string{{"0.912"}, {"97.5%"}, {"-3"}, {"sunglasses"}, {"1e-05x"}})
	for _, want := range []string{`right">0.912`, `right">97.5%`, `right">-3`, `left">sunglasses`, `left">1e-05x`} {
		if !strings.Contains(h, want) {
			t.Errorf("HTMLTable output lacks %q:\n%s", want, h)
		}
	}
}
