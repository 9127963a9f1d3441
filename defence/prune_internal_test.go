package defence

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/bbd-workbench/bbd/tfmodels"
)

// TestSoftTargets: each target is (1-w) of the one-hot label plus w of the
// teacher's probabilities, a distribution even when the teacher's row does
// not sum to exactly 1; a label outside the classes is an input error.
func TestSoftTargets(t *testing.T) {
	s := &softExamples{
		probs:   []float32{0.7, 0.2, 0.1, 0.1, 0.1, 0.79},
		labels:  []int32{1, 2},
		classes: 3,
		weight:  0.25,
	}
	got := make([]float32, 6)
	if err := s.Targets([]int{1, 0}, 3, got); err != nil {
		t.Fatal(err)
	}
	want := []float32{0.025, 0.025, 0.75 + 0.25*0.79 + 0.25*0.01, 0.175, 0.75 + 0.05, 0.025}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Fatalf("targets %v, want %v", got, want)
		}
	}
	s.labels[0] = 3
	var ie *tfmodels.InputError
	if err := s.Targets([]int{0}, 3, got[:3]); !errors.As(err, &ie) {
		t.Errorf("label 3 of 3 classes: error %v, want an InputError", err)
	}
}

// TestAugmenter: the same seed and step give the same images; every output
// is the input mirrored or not and shifted by at most 5 % (at least one
// pixel) with edges repeated; over many steps both mirrored and plain
// copies and every shift occur.
func TestAugmenter(t *testing.T) {
	const h, w = 20, 40 // shifts up to 1 row and 2 columns
	img := make([]float32, h*w)
	for i := range img {
		img[i] = float32(i)
	}
	at := func(i, j int) float32 { return img[min(max(i, 0), h-1)*w+min(max(j, 0), w-1)] }
	aug := augmenter([3]int{h, w, 1}, 5)
	seen := map[[3]int]bool{}
	for step := 1; step <= 200; step++ {
		a, b := slices.Clone(img), slices.Clone(img)
		aug(a, 1, step)
		aug(b, 1, step)
		if !slices.Equal(a, b) {
			t.Fatalf("step %d: two calls differ", step)
		}
		found := false
		for _, flip := range []bool{false, true} {
			for sy := -1; sy <= 1 && !found; sy++ {
				for sx := -2; sx <= 2 && !found; sx++ {
					ok := true
					for i := 0; i < h && ok; i++ {
						for j := 0; j < w && ok; j++ {
							sj := min(max(j-sx, 0), w-1)
							if flip {
								sj = w - 1 - sj
							}
							ok = a[i*w+j] == at(i-sy, sj)
						}
					}
					if ok {
						found = true
						f := 0
						if flip {
							f = 1
						}
						seen[[3]int{f, sy, sx}] = true
					}
				}
			}
		}
		if !found {
			t.Fatalf("step %d: the image is not a mirrored and shifted copy", step)
		}
	}
	if len(seen) != 2*3*5 {
		t.Errorf("%d of the 30 mirror and shift combinations seen in 200 steps", len(seen))
	}
}
