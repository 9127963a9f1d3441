package nbutil_test

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
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

func TestTopKChart(t *testing.T) {
	probs := []float32{0.7, 0.2, 0.1, 0, 0.25, 0.25, 0.5, 0}
	b, err := nbutil.TopKChart("title", []string{"x", "y"}, probs, 4, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	img := decodePNG(t, b)
	w := img.Bounds().Dx()
	if w < 200 {
		t.Errorf("chart is only %d pixels wide", w)
	}
	// Each of the two charts (side by side) shows its 3 most probable classes as
	// bars, most probable first, as tall as their probabilities.
	for i, want := range [][]float64{{0.7, 0.2, 0.1}, {0.5, 0.25, 0.25}} {
		heights := bars(img, img.Bounds().Min.X+i*w/2, img.Bounds().Min.X+(i+1)*w/2)
		if len(heights) != len(want) {
			t.Errorf("chart %d: %d bars of heights %v, want %d", i, len(heights), heights, len(want))
			continue
		}
		for j := range want {
			// Relative to the tallest bar; a pixel or two of rounding.
			got := float64(heights[j]) / float64(heights[0])
			if r := want[j] / want[0]; got < r-0.06 || got > r+0.06 {
				t.Errorf("chart %d: bar heights %v, want proportional to %v", i, heights, want)
				break
			}
		}
	}
	// A chart without a title has bars too (the title alone is not a chart).
	b, err = nbutil.TopKChart("", []string{"x"}, probs[:4], 4, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if h := bars(decodePNG(t, b), 0, 1<<20); len(h) != 2 {
		t.Errorf("untitled chart: bars of heights %v, want 2 bars", h)
	}
	if _, err := nbutil.TopKChart("", []string{"x"}, probs, 4, 3, 2); err == nil {
		t.Error("TopKChart accepts probabilities of the wrong length")
	}
}

// bars finds the filled bars of a bar chart between columns x0 and x1 of img:
// runs of at least 8 adjacent columns that each hold a vertical run of at
// least 4 dark pixels (axes, ticks and text strokes are thinner). It returns
// their heights in pixels, left to right.
func bars(img image.Image, x0, x1 int) []int {
	b := img.Bounds()
	x0, x1 = max(x0, b.Min.X), min(x1, b.Max.X)
	dark := func(x, y int) bool {
		c := color.GrayModel.Convert(img.At(x, y)).(color.Gray)
		return c.Y < 100
	}
	longestRun := func(x int) int {
		best, run := 0, 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			if dark(x, y) {
				run++
				best = max(best, run)
			} else {
				run = 0
			}
		}
		return best
	}
	var heights []int
	start := -1
	for x := x0; x <= x1; x++ {
		if x < x1 && longestRun(x) >= 4 {
			if start < 0 {
				start = x
			}
			continue
		}
		if start >= 0 && x-start >= 8 {
			heights = append(heights, longestRun((start+x)/2))
		}
		start = -1
	}
	return heights
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
