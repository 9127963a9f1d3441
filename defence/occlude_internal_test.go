package defence

import (
	"slices"
	"testing"

	"github.com/bbd-workbench/bbd/tfmodels"
)

// flatImages are n gray h x w x c images in memory, image i of value i/n
// and labelled i.
func flatImages(n, h, w, c int) *floatExamples {
	per := h * w * c
	f := &floatExamples{x: make([]float32, n*per), y: make([]int32, n), per: per}
	for i := range n {
		for j := range per {
			f.x[i*per+j] = float32(i) / float32(n)
		}
		f.y[i] = int32(i)
	}
	return f
}

// TestOcclude: with probability 1 every image gathered gets exactly one
// rectangle of one colour, 2-40 % of the image (Random Erasing's shapes,
// up to rounding), and nothing else changes; the same seed draws the same
// rectangles and another seed others; probability 0 leaves the examples
// as they are; soft targets pass through; a buffer of the wrong size is an
// error.
func TestOcclude(t *testing.T) {
	const n, h, w, c = 40, 55, 47, 3
	ex := flatImages(n, h, w, c)
	shape := [3]int{h, w, c}
	per := h * w * c
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	gather := func(e Examples) ([]float32, []int32) {
		x, l := make([]float32, len(idx)*per), make([]int32, len(idx))
		if err := e.Gather(idx, x, l); err != nil {
			t.Fatal(err)
		}
		return x, l
	}
	plain, plainLabels := gather(ex)
	x, labels := gather(occlude(ex, 1, shape, 7))
	if !slices.Equal(labels, plainLabels) {
		t.Fatalf("labels changed: %v", labels)
	}
	var areas []float64
	for k := range idx {
		img, orig := x[k*per:(k+1)*per], plain[k*per:(k+1)*per]
		y0, x0, y1, x1, changed := h, w, -1, -1, 0
		var colour []float32
		for y := range h {
			for xx := range w {
				p := (y*w + xx) * c
				if slices.Equal(img[p:p+c], orig[p:p+c]) {
					continue
				}
				changed++
				if colour == nil {
					colour = slices.Clone(img[p : p+c])
				} else if !slices.Equal(img[p:p+c], colour) {
					t.Fatalf("image %d: pixel (%d,%d) is %v, the rectangle's colour %v", k, y, xx, img[p:p+c], colour)
				}
				y0, x0, y1, x1 = min(y0, y), min(x0, xx), max(y1, y), max(x1, xx)
			}
		}
		// A pixel may keep its value if the colour happens to equal it, so
		// the changed pixels fill their bounding box up to such pixels.
		box := (y1 - y0 + 1) * (x1 - x0 + 1)
		if changed == 0 || changed != box {
			t.Fatalf("image %d: %d pixels changed, their bounding box holds %d: not one rectangle", k, changed, box)
		}
		area := float64(box) / float64(h*w)
		if area < 0.015 || area > 0.42 {
			t.Errorf("image %d: rectangle of %.3f of the image, want 0.02-0.4", k, area)
		}
		areas = append(areas, area)
	}
	slices.Sort(areas)
	if areas[0] > 0.15 || areas[len(areas)-1] < 0.25 {
		t.Errorf("40 rectangles' areas span %.3f-%.3f of the image, want small and large ones", areas[0], areas[len(areas)-1])
	}
	again, _ := gather(occlude(ex, 1, shape, 7))
	other, _ := gather(occlude(ex, 1, shape, 8))
	if !slices.Equal(again, x) || slices.Equal(other, x) {
		t.Errorf("seed 7 twice equal: %v, seeds 7 and 8 equal: %v; want true, false", slices.Equal(again, x), slices.Equal(other, x))
	}
	if occlude(ex, 0, shape, 7) != Examples(ex) || occlude(ex, NoOcclusion, shape, 7) != Examples(ex) {
		t.Error("probability 0 or NoOcclusion: the examples were wrapped")
	}
	half, _ := gather(occlude(ex, 0.5, shape, 7))
	kept := 0
	for k := range idx {
		if slices.Equal(half[k*per:(k+1)*per], plain[k*per:(k+1)*per]) {
			kept++
		}
	}
	if kept < 8 || kept > 32 {
		t.Errorf("probability 0.5: %d of 40 images left as they were", kept)
	}

	soft := &softExamples{Examples: ex, probs: make([]float32, n*2), labels: make([]int32, n), classes: 2, weight: 0.5}
	if _, ok := occlude(soft, 0.5, shape, 1).(tfmodels.SoftExamples); !ok {
		t.Error("occluded soft examples lost their targets")
	}
	if err := occlude(ex, 1, shape, 1).Gather(idx, make([]float32, len(idx)*per-1), make([]int32, len(idx))); err == nil {
		t.Error("a buffer one value short: no error")
	}
}
