package plots

import (
	"bytes"
	"flag"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden images in testdata/")

// Tolerance of the golden comparison: font rasterisation and anti-aliasing may differ a
// little across machines and Go versions, a changed figure differs a lot.
const (
	channelDelta  = 16    // a pixel differs when a channel moves by more than this
	maxDifferFrac = 0.005 // the share of pixels that may differ
)

// checkGolden compares the PNG of f with testdata/<name>_golden.png (rewriting it with
// -update). On a mismatch it writes what it got to testdata/<name>_got.png.
func checkGolden(t *testing.T, name string, f *Figure) {
	t.Helper()
	got, err := f.PNG()
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", name+"_golden.png")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./plots -update to create it)", err)
	}
	frac, err := pngDiff(got, want)
	if err == nil && frac <= maxDifferFrac {
		return
	}
	gotPath := filepath.Join("testdata", name+"_got.png")
	if werr := os.WriteFile(gotPath, got, 0o644); werr != nil {
		t.Errorf("writing %s: %v", gotPath, werr)
	}
	if err != nil {
		t.Errorf("%s: %v; got image in %s (go test ./plots -update accepts it)", golden, err, gotPath)
		return
	}
	t.Errorf("%s: %.2f%% of the pixels differ (at most %.2f%% may); got image in %s (go test ./plots -update accepts it)",
		golden, 100*frac, 100*maxDifferFrac, gotPath)
}

// pngDiff decodes two PNGs and returns the fraction of their pixels that differ by more
// than channelDelta in some channel; images of different sizes are an error.
func pngDiff(a, b []byte) (float64, error) {
	ia, err := png.Decode(bytes.NewReader(a))
	if err != nil {
		return 0, err
	}
	ib, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	return imageDiff(ia, ib)
}

type sizeError struct{ a, b image.Point }

func (e sizeError) Error() string { return "image is " + e.a.String() + ", golden " + e.b.String() }

func imageDiff(a, b image.Image) (float64, error) {
	ra, rb := a.Bounds(), b.Bounds()
	if ra.Size() != rb.Size() {
		return 1, sizeError{ra.Size(), rb.Size()}
	}
	differ := 0
	for y := 0; y < ra.Dy(); y++ {
		for x := 0; x < ra.Dx(); x++ {
			ca := color.NRGBAModel.Convert(a.At(ra.Min.X+x, ra.Min.Y+y)).(color.NRGBA)
			cb := color.NRGBAModel.Convert(b.At(rb.Min.X+x, rb.Min.Y+y)).(color.NRGBA)
			if delta(ca.R, cb.R) > channelDelta || delta(ca.G, cb.G) > channelDelta ||
				delta(ca.B, cb.B) > channelDelta || delta(ca.A, cb.A) > channelDelta {
				differ++
			}
		}
	}
	if ra.Dx()*ra.Dy() == 0 {
		return 0, nil
	}
	return float64(differ) / float64(ra.Dx()*ra.Dy()), nil
}

func delta(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

func TestImageDiff(t *testing.T) {
	a := image.NewNRGBA(image.Rect(0, 0, 100, 100))
	b := image.NewNRGBA(image.Rect(0, 0, 100, 100))
	b.Set(0, 0, color.NRGBA{R: 16}) // within the channel tolerance
	b.Set(1, 0, color.NRGBA{R: 17})
	b.Set(2, 0, color.NRGBA{A: 200})
	if frac, err := imageDiff(a, b); err != nil || frac != 2.0/10000 {
		t.Errorf("imageDiff = %v, %v; want 0.0002", frac, err)
	}
	if _, err := imageDiff(a, image.NewNRGBA(image.Rect(0, 0, 100, 99))); err == nil {
		t.Error("images of different sizes compare")
	}
}
