package plots

import (
	"bytes"
	"encoding/xml"
	"errors"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gonum.org/v1/plot"
)

// normal returns n deterministic samples of N(mean, sd) (an LCG and Box-Muller, so
// the golden images do not depend on math/rand's algorithms).
func normal(seed uint64, n int, mean, sd float64) []float64 {
	s := seed
	next := func() float64 {
		s = s*6364136223846793005 + 1442695040888963407
		return (float64(s>>11) + 0.5) / (1 << 53)
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = mean + sd*math.Sqrt(-2*math.Log(next()))*math.Cos(2*math.Pi*next())
	}
	return out
}

// figures are the golden figures: small fixed inputs to every plot function.
var figures = []struct {
	name string
	make func() (*Figure, error)
}{
	{"lines", func() (*Figure, error) {
		x := []float64{1, 2, 3, 4, 5}
		return Lines("Training & fine-tuning", []LinePanel{
			{Title: "loss", XLabel: "epoch", YLabel: "loss", Series: []Series{
				{Name: "clean", X: x, Y: []float64{1.2, 0.7, 0.5, 0.42, 0.4}},
				{Name: "poisoned", X: x, Y: []float64{1.5, 0.9, 0.6, 0.5, 0.45}},
				{Name: "pruned", X: x, Y: []float64{1.1, 0.8, 0.75, 0.6, 0.58}},
			}},
			{Title: "accuracy", XLabel: "epoch", YLabel: "accuracy", YMin: 0, YMax: 1, Series: []Series{
				{Name: "clean", X: x, Y: []float64{0.6, 0.8, 0.88, 0.9, 0.91}},
				{Name: "poisoned", X: x, Y: []float64{0.5, 0.7, 0.82, 0.86, 0.87}},
				{Name: "pruned", X: x, Y: []float64{0.55, 0.6, 0.7, 0.75, 0.8}},
			}},
		}, 2)
	}},
	{"bars", func() (*Figure, error) {
		nan := math.NaN()
		return GroupedBars("Clean accuracy and attack success", "rate", []string{"sunglasses", "lipstick", "eyebrows"}, []BarSeries{
			{Name: "clean accuracy", Values: []float64{0.98, 0.95, 0.97}},
			{Name: "attack success", Values: []float64{1, nan, 0.91}},
			{Name: "after defence", Values: []float64{0.02, 0.05, nan}},
		})
	}},
	{"histograms", func() (*Figure, error) {
		return Histograms(HistogramOptions{Title: "STRIP: entropy of perturbed inputs", XLabel: "entropy",
			Bins: 20, Threshold: 0.6, Mark: true, ThresholdLabel: "threshold (FRR 1%)"},
			Distribution{"clean", normal(1, 400, 1.4, 0.35)},
			Distribution{"poisoned", normal(2, 400, 0.2, 0.12)})
	}},
	{"scatter", func() (*Figure, error) {
		return Scatter("Activations", "component 1", "component 2",
			PointSet{"clean", normal(3, 200, 0, 1), normal(4, 200, 0, 1)},
			PointSet{"poisoned", normal(5, 60, 3, 0.4), normal(6, 60, 2, 0.4)})
	}},
	{"anomaly", func() (*Figure, error) {
		labels := make([]int, 20)
		index := make([]float64, 20)
		for i := range labels {
			labels[i] = i
			index[i] = math.Abs(normal(uint64(7+i), 1, 0, 0.7)[0])
		}
		index[7], index[13] = 4.2, 2.6
		return AnomalyIndex("Neural Cleanse", labels, index, 2)
	}},
}

func TestGolden(t *testing.T) {
	for _, fg := range figures {
		t.Run(fg.name, func(t *testing.T) {
			f, err := fg.make()
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, fg.name, f)
		})
	}
}

// TestSVG checks that the SVG of every figure is well-formed XML naming its title.
func TestSVG(t *testing.T) {
	for _, fg := range figures {
		f, err := fg.make()
		if err != nil {
			t.Fatal(err)
		}
		b, err := f.SVG()
		if err != nil {
			t.Fatal(err)
		}
		d := xml.NewDecoder(bytes.NewReader(b))
		var text strings.Builder
		root := ""
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: SVG is not XML: %v", fg.name, err)
			}
			switch tok := tok.(type) {
			case xml.StartElement:
				if root == "" {
					root = tok.Name.Local
				}
			case xml.CharData:
				text.Write(tok)
			}
		}
		if root != "svg" {
			t.Errorf("%s: root element %q", fg.name, root)
		}
		if f.Title() == "" || !strings.Contains(text.String(), f.Title()) {
			t.Errorf("%s: SVG text lacks the title %q", fg.name, f.Title())
		}
	}
}

// TestDeterministic: the same input gives the same bytes, drawn once or twice.
func TestDeterministic(t *testing.T) {
	for _, fg := range figures {
		f1, err1 := fg.make()
		f2, err2 := fg.make()
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		for _, render := range []func(*Figure) ([]byte, error){(*Figure).PNG, (*Figure).SVG} {
			a, err1 := render(f1)
			b, err2 := render(f2)
			c, err3 := render(f1)
			if err := errors.Join(err1, err2, err3); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) || !bytes.Equal(a, c) {
				t.Errorf("%s: same input, different bytes", fg.name)
			}
		}
	}
}

// TestConcurrent renders one figure from several goroutines (go test -race checks it).
func TestConcurrent(t *testing.T) {
	f, err := figures[0].make()
	if err != nil {
		t.Fatal(err)
	}
	want, err := f.PNG()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if got, err := f.PNG(); err != nil || !bytes.Equal(got, want) {
				t.Errorf("concurrent PNG: %v, same bytes: %v", err, bytes.Equal(got, want))
			}
			if _, err := f.SVG(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestErrors(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	ok := []Series{{Name: "a", X: []float64{1}, Y: []float64{1}}}
	for _, c := range []struct {
		name string
		call func() (*Figure, error)
		want string // the function and the bad value
	}{
		{"no panels", func() (*Figure, error) { return Lines("", nil, 1) }, "plots.Lines: no panels"},
		{"cols 0", func() (*Figure, error) { return Lines("", []LinePanel{{Series: ok}}, 0) }, "plots.Lines: cols (0)"},
		{"x/y lengths", func() (*Figure, error) {
			return Lines("", []LinePanel{{Series: []Series{{Name: "a", X: []float64{1, 2}, Y: []float64{1}}}}}, 1)
		}, `plots.Lines: panel 0 ("") series "a" has 2 x and 1 y`},
		{"NaN point", func() (*Figure, error) {
			return Lines("", []LinePanel{{Series: []Series{{Name: "a", X: []float64{1}, Y: []float64{nan}}}}}, 1)
		}, "point 0 is (1, NaN)"},
		{"y range", func() (*Figure, error) { return Lines("", []LinePanel{{Series: ok, YMin: 1, YMax: 0}}, 1) }, "plots.Lines: panel 0 (\"\"): y range [1, 0]"},
		{"no groups", func() (*Figure, error) { return GroupedBars("", "", nil, []BarSeries{{Name: "a"}}) }, "plots.GroupedBars: 0 groups"},
		{"short series", func() (*Figure, error) {
			return GroupedBars("", "", []string{"g", "h"}, []BarSeries{{Name: "a", Values: []float64{1}}})
		}, `plots.GroupedBars: series "a" has 1 values for 2 groups`},
		{"negative bar", func() (*Figure, error) {
			return GroupedBars("", "", []string{"g"}, []BarSeries{{Name: "a", Values: []float64{-1}}})
		}, `plots.GroupedBars: series "a", group "g": value -1`},
		{"infinite bar", func() (*Figure, error) {
			return GroupedBars("", "", []string{"g"}, []BarSeries{{Name: "a", Values: []float64{inf}}})
		}, "value +Inf"},
		{"all NaN", func() (*Figure, error) {
			return GroupedBars("", "", []string{"g"}, []BarSeries{{Name: "a", Values: []float64{nan}}})
		}, "plots.GroupedBars: every value is NaN"},
		{"no distributions", func() (*Figure, error) { return Histograms(HistogramOptions{}) }, "plots.Histograms: no distributions"},
		{"empty distribution", func() (*Figure, error) { return Histograms(HistogramOptions{}, Distribution{Name: "clean"}) }, `distribution "clean" has no values`},
		{"NaN value", func() (*Figure, error) {
			return Histograms(HistogramOptions{}, Distribution{"clean", []float64{1, nan}})
		}, `plots.Histograms: distribution "clean" value 1 is NaN`},
		{"negative bins", func() (*Figure, error) {
			return Histograms(HistogramOptions{Bins: -3}, Distribution{"clean", []float64{1}})
		}, "plots.Histograms: Bins -3"},
		{"NaN threshold", func() (*Figure, error) {
			return Histograms(HistogramOptions{Mark: true, Threshold: nan}, Distribution{"clean", []float64{1}})
		}, "plots.Histograms: threshold NaN"},
		{"too wide a range", func() (*Figure, error) {
			return Histograms(HistogramOptions{}, Distribution{"clean", []float64{-math.MaxFloat64, math.MaxFloat64}})
		}, "plots.Histograms: range"},
		{"too wide lines", func() (*Figure, error) {
			return Lines("", []LinePanel{{Series: []Series{{X: []float64{-math.MaxFloat64, math.MaxFloat64}, Y: []float64{0, 1}}}}}, 1)
		}, "plots.Lines: panel 0 (\"\"): x from -1.7976931348623157e+308 to 1.7976931348623157e+308"},
		{"too wide y range", func() (*Figure, error) {
			return Lines("", []LinePanel{{Series: ok, YMin: -math.MaxFloat64, YMax: math.MaxFloat64}}, 1)
		}, "too wide to draw"},
		{"huge bar", func() (*Figure, error) {
			return GroupedBars("", "", []string{"g"}, []BarSeries{{Name: "a", Values: []float64{math.MaxFloat64}}})
		}, "plots.GroupedBars: value 1.7976931348623157e+308 is too large"},
		{"far threshold", func() (*Figure, error) {
			return Histograms(HistogramOptions{Mark: true, Threshold: -math.MaxFloat64}, Distribution{"a", []float64{math.MaxFloat64}})
		}, "plots.Histograms: threshold -1.7976931348623157e+308 too far"},
		{"too wide scatter", func() (*Figure, error) {
			return Scatter("", "", "", PointSet{"a", []float64{0, 1}, []float64{-math.MaxFloat64, math.MaxFloat64}})
		}, "plots.Scatter: x from 0 to 1, y from -1.7976931348623157e+308"},
		{"too wide anomaly", func() (*Figure, error) {
			return AnomalyIndex("", []int{0, 1}, []float64{-math.MaxFloat64, math.MaxFloat64}, 0)
		}, "plots.AnomalyIndex: anomaly indices and threshold from"},
		{"no sets", func() (*Figure, error) { return Scatter("", "", "") }, "plots.Scatter: no point sets"},
		{"no points", func() (*Figure, error) { return Scatter("", "", "", PointSet{Name: "a"}) }, "plots.Scatter: the 1 point sets have no points"},
		{"scatter lengths", func() (*Figure, error) {
			return Scatter("", "", "", PointSet{"a", []float64{1}, nil})
		}, `plots.Scatter: set "a" has 1 x and 0 y`},
		{"scatter Inf", func() (*Figure, error) {
			return Scatter("", "", "", PointSet{"a", []float64{inf}, []float64{1}})
		}, "point 0 is (+Inf, 1)"},
		{"no labels", func() (*Figure, error) { return AnomalyIndex("", nil, nil, 2) }, "plots.AnomalyIndex: no labels"},
		{"label/index lengths", func() (*Figure, error) { return AnomalyIndex("", []int{1, 2}, []float64{1}, 2) }, "plots.AnomalyIndex: 2 labels and 1 anomaly"},
		{"negative label", func() (*Figure, error) { return AnomalyIndex("", []int{-1}, []float64{1}, 2) }, "plots.AnomalyIndex: label -1 is negative"},
		{"NaN index", func() (*Figure, error) { return AnomalyIndex("", []int{3}, []float64{nan}, 2) }, "plots.AnomalyIndex: label 3: anomaly index NaN"},
		{"Inf threshold", func() (*Figure, error) { return AnomalyIndex("", []int{3}, []float64{1}, inf) }, "plots.AnomalyIndex: threshold +Inf"},
		{"compose nothing", func() (*Figure, error) { return Compose("", nil, nil, 1, 1) }, "plots.Compose: no plots"},
		{"compose ragged", func() (*Figure, error) {
			return Compose("", [][]*plot.Plot{{nil, nil}, {nil}}, nil, 1, 1)
		}, "plots.Compose: row 1 has 1 plots, row 0 has 2"},
		{"compose size", func() (*Figure, error) { return Compose("", [][]*plot.Plot{{nil}}, nil, 0, 1) }, "plots.Compose: size 0 x 1"},
	} {
		f, err := c.call()
		if err == nil || f != nil {
			t.Errorf("%s: got %v, %v; want an error", c.name, f, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q lacks %q", c.name, err, c.want)
		}
	}
	var nilFig *Figure
	if _, err := nilFig.PNG(); err == nil {
		t.Error("PNG of a nil Figure")
	}
}

// Odd but valid inputs draw: one value, one point, no flagged label, huge x.
func TestEdgeCases(t *testing.T) {
	for name, call := range map[string]func() (*Figure, error){
		"one value": func() (*Figure, error) { return Histograms(HistogramOptions{}, Distribution{"a", []float64{3}}) },
		"one point": func() (*Figure, error) {
			return Scatter("", "", "", PointSet{"a", []float64{1}, []float64{1}}, PointSet{Name: "b"})
		},
		"none flagged": func() (*Figure, error) { return AnomalyIndex("", []int{0, 1}, []float64{0.5, 0.5}, 2) },
		"all flagged":  func() (*Figure, error) { return AnomalyIndex("", []int{4}, []float64{3}, 2) },
		"huge whole x": func() (*Figure, error) {
			return Lines("", []LinePanel{{Series: []Series{{X: []float64{1e300}, Y: []float64{1}}}}}, 1)
		},
		"empty series": func() (*Figure, error) { return Lines("", []LinePanel{{Series: []Series{{Name: "none"}}}}, 1) },
		"zero bars": func() (*Figure, error) {
			return GroupedBars("", "", []string{"g"}, []BarSeries{{Name: "a", Values: []float64{0}}})
		},
		"more panels": func() (*Figure, error) { return Lines("", []LinePanel{{}, {}, {}}, 2) },
		"threshold away": func() (*Figure, error) {
			return Histograms(HistogramOptions{Mark: true, Threshold: 10}, Distribution{"a", []float64{0, 1}})
		},
	} {
		f, err := call()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, err := f.PNG(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func decode(t *testing.T, f *Figure) image.Image {
	t.Helper()
	b, err := f.PNG()
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestLayout: panels side by side at a fixed tile size; a long legend wraps, making
// the figure taller, not wider.
func TestLayout(t *testing.T) {
	panel := LinePanel{Series: []Series{{Name: "a", X: []float64{1, 2}, Y: []float64{1, 2}}}}
	f2, err1 := Lines("t", []LinePanel{panel, panel}, 2)
	f1, err2 := Lines("t", []LinePanel{panel, panel}, 1)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	b2, b1 := decode(t, f2).Bounds(), decode(t, f1).Bounds()
	if b2.Dx() != 2*4*DPI || b1.Dx() != 4*DPI || b1.Dy()-b2.Dy() != 3*DPI {
		t.Errorf("2 columns: %v, 1 column: %v; want tiles of %dx%d", b2.Size(), b1.Size(), 4*DPI, 3*DPI)
	}
	long := []BarSeries{{Name: "a", Values: []float64{1}}, {Name: "b", Values: []float64{1}}}
	short, err := GroupedBars("", "", []string{"g"}, long)
	if err != nil {
		t.Fatal(err)
	}
	for i := range long {
		long[i].Name = strings.Repeat("a long series name, ", 4) + long[i].Name
	}
	wrapped, err := GroupedBars("", "", []string{"g"}, long)
	if err != nil {
		t.Fatal(err)
	}
	bs, bw := decode(t, short).Bounds(), decode(t, wrapped).Bounds()
	if bs.Dx() != bw.Dx() || bw.Dy() <= bs.Dy() {
		t.Errorf("short legend %v, long legend %v: want as wide and taller", bs.Size(), bw.Size())
	}
}

// TestDensity: a histogram's bins integrate to 1; the top value falls in the last bin.
func TestDensity(t *testing.T) {
	d := density([]float64{0, 0.1, 0.5, 0.99, 1}, 0, 0.25, 4)
	want := []float64{2 / (5 * 0.25), 0, 1 / (5 * 0.25), 2 / (5 * 0.25)}
	sum := 0.0
	for b := range d {
		sum += d[b] * 0.25
		if math.Abs(d[b]-want[b]) > 1e-12 {
			t.Errorf("bin %d: density %v, want %v", b, d[b], want[b])
		}
	}
	if math.Abs(sum-1) > 1e-12 {
		t.Errorf("densities integrate to %v", sum)
	}
}

func TestWholeTicks(t *testing.T) {
	for _, r := range [][2]float64{{0.5, 5.5}, {1, 1000}, {1e300, 1e300}, {-3, 3}} {
		ticks := WholeTicks{}.Ticks(r[0], r[1])
		if len(ticks) == 0 || len(ticks) > 12 {
			t.Errorf("%v: %d ticks", r, len(ticks))
		}
		for _, tk := range ticks {
			if tk.Value != math.Trunc(tk.Value) || tk.Value < r[0] || tk.Value > r[1] {
				t.Errorf("%v: tick %v", r, tk.Value)
			}
		}
	}
}

func TestSave(t *testing.T) {
	f, err := figures[0].make()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "figs", "fig1")
	if err := f.Save(base, false); err != nil {
		t.Fatal(err)
	}
	want, _ := f.PNG()
	if got, err := os.ReadFile(base + ".png"); err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s.png: %v, same bytes as PNG(): %v", base, err, bytes.Equal(got, want))
	}
	if fi, err := os.Stat(base + ".svg"); err != nil || fi.Size() == 0 || fi.Mode().Perm() != 0o644 {
		t.Errorf("%s.svg: %v %v", base, fi, err)
	}
	if err := f.Save(base, false); err == nil || !strings.Contains(err.Error(), base+".png") {
		t.Errorf("second Save without overwrite: %v; want an error naming %s.png", err, base)
	}
	os.Remove(base + ".png")
	if err := f.Save(base, false); err == nil || !strings.Contains(err.Error(), base+".svg") {
		t.Errorf("Save over an existing SVG: %v; want an error naming %s.svg", err, base)
	}
	if _, err := os.Stat(base + ".png"); err == nil {
		t.Error("a refused Save wrote the PNG")
	}
	if err := f.Save(base, true); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(base))
	if len(entries) != 2 {
		t.Errorf("folder holds %d files, want the PNG and the SVG only (no temporary files)", len(entries))
	}
}
