package nbutil_test

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bbd-workbench/bbd/notebooks/nbutil"
)

func TestRoot(t *testing.T) {
	t.Setenv("BBD_ROOT", "")
	t.Setenv("GONB_DIR", "")
	root, err := nbutil.Root()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Abs(filepath.Join("..", ".."))
	if root != want {
		t.Errorf("Root() = %q, want %q", root, want)
	}
	// GONB_DIR (the notebook's folder) wins over the current directory.
	t.Setenv("GONB_DIR", filepath.Join(want, "notebooks"))
	if r, err := nbutil.Root(); err != nil || r != want {
		t.Errorf("Root() with GONB_DIR = %q, %v; want %q", r, err, want)
	}
	t.Setenv("BBD_ROOT", t.TempDir())
	if _, err := nbutil.Root(); err == nil {
		t.Error("Root() accepts a BBD_ROOT without bbd's go.mod")
	}
}

func TestShared(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BBD_SHARED", dir)
	if p, err := nbutil.Shared("x.txt"); err != nil || p != filepath.Join(dir, "x.txt") {
		t.Errorf("Shared(x.txt) = %q, %v", p, err)
	}
	if _, err := nbutil.Shared("missing"); err == nil || !strings.Contains(err.Error(), "BBD_SHARED") {
		t.Errorf("Shared(missing) error = %v, want one naming BBD_SHARED", err)
	}
}

func TestCommas(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 601643: "601,643", -1234567: "-1,234,567"} {
		if got := nbutil.Commas(n); got != want {
			t.Errorf("Commas(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestTopK(t *testing.T) {
	c, p := nbutil.TopK([]float32{0.1, 0.5, 0.1, 0.3}, 3)
	if len(c) != 3 || c[0] != 1 || c[1] != 3 || c[2] != 0 || p[0] != 0.5 || p[2] != 0.1 {
		t.Errorf("TopK = %v %v", c, p)
	}
	if c, _ := nbutil.TopK([]float32{1}, 5); len(c) != 1 {
		t.Errorf("TopK with k > len = %v", c)
	}
}

func decodePNG(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	return img
}

func TestImageGrid(t *testing.T) {
	red := image.NewNRGBA(image.Rect(0, 0, 4, 3))
	for i := range red.Pix {
		if i%4 == 0 || i%4 == 3 {
			red.Pix[i] = 255
		}
	}
	imgs := []image.Image{red, red, red}
	b, err := nbutil.ImageGrid(imgs, [][]string{{"a", "b1"}, {"b"}}, 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	img := decodePNG(t, b)
	// 2 columns, 2 rows; tiles are at least 5x the image size.
	if w, h := img.Bounds().Dx(), img.Bounds().Dy(); w < 2*20 || h < 2*15+2*14 {
		t.Errorf("grid is %dx%d", w, h)
	}
	// The first image's top-left enlarged pixel is red.
	r, g, bl, _ := img.At(6+1, 6+1).RGBA()
	if r>>8 != 255 || g != 0 || bl != 0 {
		t.Errorf("pixel (7,7) = %v, want red", img.At(7, 7))
	}
	if _, err := nbutil.ImageGrid(nil, nil, 2, 1); err == nil {
		t.Error("ImageGrid(nil) gives no error")
	}
}

// saveFigure writes a figure of a test to $NBUTIL_FIGURES/name.png when that is set,
// to look at it.
func saveFigure(t *testing.T, name string, b []byte) {
	t.Helper()
	if dir := os.Getenv("NBUTIL_FIGURES"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, name+".png"), b, 0o644); err != nil {
			t.Error(err)
		}
	}
}

// TestTopKChart: on the log-scale axis every bar of the top k shows, however small
// its probability beside the top one, and the heights follow log10(p / floor).
func TestTopKChart(t *testing.T) {
	probs := []float32{
		0.999, 1e-2, 1e-4, 1e-6, 1e-8, 0, 0, 0, // decades apart: heights 9:7:5:3:1 above 1e-9
		0, 0, 1e-3, 0.5, 0.25, 0.25 - 1e-3, 0, 0,
	}
	b, err := nbutil.TopKChart(nbutil.TopKOptions{Title: "title", K: 5, Cols: 2}, []string{"x", "y"}, 8, probs)
	if err != nil {
		t.Fatal(err)
	}
	saveFigure(t, "topk", b)
	img := decodePNG(t, b)
	w := img.Bounds().Dx()
	if w < 400 {
		t.Errorf("chart is only %d pixels wide", w)
	}
	half := img.Bounds()
	half.Max.X -= w / 2
	left := findBars(img, half)
	if len(left) != 5 {
		t.Fatalf("chart x: %d bars %v, want 5", len(left), left)
	}
	for j, want := range []float64{9, 7, 5, 3, 1} {
		if left[j].h < 5 {
			t.Errorf("chart x: bar %d (p=%g) is %d pixels high: not visible", j, probs[j], left[j].h)
		}
		// Relative to the tallest bar; a pixel or two of rounding.
		if got := float64(left[j].h) / float64(left[0].h); math.Abs(got-want/9) > 0.04 {
			t.Errorf("chart x: bar heights %v, want proportional to 9:7:5:3:1 (log10 p/1e-9)", left)
			break
		}
	}
	// The second chart shares the axis; its bars come most probable first, the
	// two equal probabilities left to right by class.
	right := findBars(img, half.Add(image.Pt(w/2, 0)))
	if len(right) != 4 || !(right[0].h > right[1].h && right[1].h >= right[2].h && right[2].h > right[3].h) {
		t.Errorf("chart y: bars %v, want 4 of decreasing height", right)
	}
	if got, want := float64(right[0].h)/float64(left[0].h), math.Log10(0.5/1e-9)/9; math.Abs(got-want) > 0.02 {
		t.Errorf("chart y: the bar of 0.5 is %d pixels high, the bar of 0.999 in chart x %d: axes differ", right[0].h, left[0].h)
	}
	// A chart without a title has bars too (the title alone is not a chart).
	b, err = nbutil.TopKChart(nbutil.TopKOptions{K: 2, Cols: 1}, []string{"x"}, 8, probs[:8])
	if err != nil {
		t.Fatal(err)
	}
	if bs := findBars(decodePNG(t, b), image.Rect(0, 0, 1<<20, 1<<20)); len(bs) != 2 {
		t.Errorf("untitled chart: bars %v, want 2 bars", bs)
	}
}

// TestTopKChartSideBySide: a clean input and its triggered version side by side, the
// target class highlighted and shown even where it is not among the top k.
func TestTopKChartSideBySide(t *testing.T) {
	clean := []float32{1e-12, 0.97, 0.03 - 1e-5, 1e-5, 0, 0}        // target 0 far down
	triggered := []float32{0.9999, 1e-10, 1e-4, 0, 0, 1e-4 - 1e-10} // the backdoor's target wins
	opt := nbutil.TopKOptions{Series: []string{"clean", "triggered"}, K: 2, Targets: []int{0}, Cols: 1}
	b, err := nbutil.TopKChart(opt, []string{"pair"}, 6, clean, triggered)
	if err != nil {
		t.Fatal(err)
	}
	saveFigure(t, "topk-pair", b)
	img := decodePNG(t, b)
	// Classes 0 (target), 1 and 2 (the union of both top 2, ordered by their largest
	// probability), two bars each: clean, triggered.
	// Above the legend, whose thumbnails look like bars.
	charts := img.Bounds()
	charts.Max.Y -= 60
	bs := findBars(img, charts)
	if len(bs) != 6 {
		t.Fatalf("%d bars %v, want 6", len(bs), bs)
	}
	for j, bar := range bs {
		if bar.c != bs[j%2].c || (j%2 == 1 && bar.c == bs[0].c) {
			t.Errorf("bar colours %v, want clean and triggered alternating", bs)
			break
		}
	}
	// Heights above the floor 1e-13: log10(p / 1e-13).
	want := []float64{1, 13, 12.99, 3, 11.48, 9}
	for j := range want {
		if got := float64(bs[j].h) / float64(bs[1].h); math.Abs(got-want[j]/13) > 0.04 {
			t.Errorf("bar heights %v, want proportional to %v", bs, want)
			break
		}
	}
	if bs[0].h < 5 {
		t.Errorf("the clean input's target bar (1e-12) is %d pixels high: not visible", bs[0].h)
	}
	// The band behind the target class holds its two bars, and no other.
	x0, x1 := bandColumns(img)
	if x0 < 0 || x0 > bs[0].x0 || x1 < bs[1].x1 || x1 >= bs[2].x0 {
		t.Errorf("target band over columns %d..%d, want over the bars %v and %v only", x0, x1, bs[0], bs[1])
	}
	for _, bad := range []struct {
		opt   nbutil.TopKOptions
		probs [][]float32
	}{
		{opt, [][]float32{clean}},                                   // 2 series names for 1 series
		{nbutil.TopKOptions{K: 2, Cols: 1}, [][]float32{clean[:5]}}, // wrong length
		{nbutil.TopKOptions{K: 2, Cols: 1, Targets: []int{6}}, [][]float32{clean}},
		{nbutil.TopKOptions{K: 0, Cols: 1}, [][]float32{clean}},
		{nbutil.TopKOptions{K: 2, Cols: 1}, [][]float32{{float32(math.NaN()), 0, 0, 0, 0, 1}}},
	} {
		if _, err := nbutil.TopKChart(bad.opt, []string{"x"}, 6, bad.probs...); err == nil {
			t.Errorf("TopKChart(%+v, %v) gives no error", bad.opt, bad.probs)
		}
	}
}

// barRun is a bar found in a chart: columns x0..x1-1, height h pixels, colour c.
type barRun struct {
	x0, x1, h int
	c         color.NRGBA
}

// findBars finds the filled bars of a bar chart in the part r of img:
// runs of at least 8 adjacent columns that each hold a vertical run of at least 4
// pixels of the same clear, not pale colour (axes, grid, text and the pale target
// band do not count), adjacent bars of different colours apart. Left to right.
func findBars(img image.Image, r image.Rectangle) []barRun {
	b := r.Intersect(img.Bounds())
	x0, x1 := b.Min.X, b.Max.X
	at := func(x, y int) (color.NRGBA, bool) {
		c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
		hi, lo := max(c.R, c.G, c.B), min(c.R, c.G, c.B)
		return c, hi-lo > 60 && hi < 235
	}
	// column returns the colour of the longest single-colour run of column x and its length.
	column := func(x int) (color.NRGBA, int) {
		var best, cur color.NRGBA
		bestN, n := 0, 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			c, ok := at(x, y)
			switch {
			case !ok:
				n = 0
			case n > 0 && c == cur:
				n++
			default:
				cur, n = c, 1
			}
			if n > bestN {
				best, bestN = cur, n
			}
		}
		return best, bestN
	}
	var out []barRun
	start := -1
	var startC color.NRGBA
	for x := x0; x <= x1; x++ {
		var c color.NRGBA
		n := 0
		if x < x1 {
			c, n = column(x)
		}
		if start >= 0 && (n < 4 || c != startC) {
			if x-start >= 8 {
				_, h := column((start + x) / 2)
				out = append(out, barRun{start, x, h, startC})
			}
			start = -1
		}
		if start < 0 && n >= 4 {
			start, startC = x, c
		}
	}
	return out
}

// bandColumns returns the first and last column of img holding a vertical run of at
// least 20 pixels of pale yellow (the target band); -1, -1 for none.
func bandColumns(img image.Image) (int, int) {
	b := img.Bounds()
	first, last := -1, -1
	for x := b.Min.X; x < b.Max.X; x++ {
		n := 0
		for y := b.Min.Y; y < b.Max.Y && n < 20; y++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			if c.R > 240 && c.G > 215 && c.B < 190 {
				n++
			} else {
				n = 0
			}
		}
		if n >= 20 {
			if first < 0 {
				first = x
			}
			last = x
		}
	}
	return first, last
}

func TestHTMLTable(t *testing.T) {
	h := nbutil.HTMLTable([]string{"layer", "params"}, [][]string{{"<conv>", "1,000"}})
	for _, want := range []string{"<th>layer</th>", "&lt;conv&gt;", `text-align:right">1,000`} {
		if !strings.Contains(h, want) {
			t.Errorf("HTMLTable output lacks %q:\n%s", want, h)
		}
	}
}

func TestDims(t *testing.T) {
	for _, c := range []struct {
		shape []int64
		want  string
	}{{[]int64{-1, 55, 47, 3}, "55x47x3"}, {[]int64{1283}, "1283"}, {nil, ""}} {
		if got := nbutil.Dims(c.shape); got != c.want {
			t.Errorf("Dims(%v) = %q, want %q", c.shape, got, c.want)
		}
	}
}
