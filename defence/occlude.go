package defence

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/bbd-workbench/bbd/tfmodels"
)

// NoOcclusion, as FinePruneConfig.Occlude, fine-tunes on the plain clean
// images: the authors' fine-tuning.
const NoOcclusion = -1

// DefaultOcclude is FinePruneConfig.Occlude's default: Random Erasing's
// probability.
const DefaultOcclude = 0.5

// The rectangles' shapes are Random Erasing's defaults (Zhong et al.,
// "Random Erasing Data Augmentation", AAAI 2020): an area of 2 to 40 % of
// the image and an aspect ratio between 0.3 and 1/0.3, log-uniform.
const (
	occludeMinArea, occludeMaxArea = 0.02, 0.4
	occludeMinAspect               = 0.3
	occludeTries                   = 10 // shapes drawn before an image is left as it is
)

// occluded is a view of examples that paints, with probability p, one
// rectangle of one random colour at a random place over each image it
// gathers. A seeded generator draws the rectangles in the order the images
// are gathered, so training from the same seed sees the same rectangles.
type occluded struct {
	ex      Examples
	p       float64
	h, w, c int
	rng     *rand.Rand
}

// occludedSoft keeps the soft targets of the examples it occludes.
type occludedSoft struct {
	*occluded
	soft tfmodels.SoftExamples
}

func (o *occludedSoft) Targets(idx []int, classes int, t []float32) error {
	return o.soft.Targets(idx, classes, t)
}

// occlude returns ex seen through random occlusion with probability p
// (ex itself when p <= 0), for images of shape h x w x c.
func occlude(ex Examples, p float64, shape [3]int, seed uint64) Examples {
	if p <= 0 {
		return ex
	}
	o := &occluded{ex: ex, p: p, h: shape[0], w: shape[1], c: shape[2], rng: rand.New(rand.NewPCG(seed, 0x6f63636c75646521))}
	if soft, ok := ex.(tfmodels.SoftExamples); ok {
		return &occludedSoft{occluded: o, soft: soft}
	}
	return o
}

func (o *occluded) Len() int { return o.ex.Len() }

func (o *occluded) Gather(idx []int, x []float32, labels []int32) error {
	per := o.h * o.w * o.c
	if len(x) != len(idx)*per {
		return fmt.Errorf("occlusion: %d values for %d images of %dx%dx%d", len(x), len(idx), o.h, o.w, o.c)
	}
	if err := o.ex.Gather(idx, x, labels); err != nil {
		return err
	}
	colour := make([]float32, o.c)
	for k := range idx {
		if o.rng.Float64() >= o.p {
			continue
		}
		rh, rw, ok := o.shape()
		if !ok {
			continue
		}
		y0, x0 := o.rng.IntN(o.h-rh+1), o.rng.IntN(o.w-rw+1)
		for i := range colour {
			colour[i] = o.rng.Float32()
		}
		img := x[k*per : (k+1)*per]
		for y := y0; y < y0+rh; y++ {
			for xx := x0; xx < x0+rw; xx++ {
				copy(img[(y*o.w+xx)*o.c:], colour)
			}
		}
	}
	return nil
}

// shape draws a rectangle's height and width as Random Erasing does: an
// area and a log-uniform aspect ratio, redrawn when it does not fit.
func (o *occluded) shape() (h, w int, ok bool) {
	lo, hi := math.Log(occludeMinAspect), math.Log(1/occludeMinAspect)
	for range occludeTries {
		area := (occludeMinArea + (occludeMaxArea-occludeMinArea)*o.rng.Float64()) * float64(o.h*o.w)
		aspect := math.Exp(lo + (hi-lo)*o.rng.Float64())
		h = int(math.Round(math.Sqrt(area * aspect)))
		w = int(math.Round(math.Sqrt(area / aspect)))
		if h >= 1 && w >= 1 && h <= o.h && w <= o.w {
			return h, w, true
		}
	}
	return 0, 0, false
}
