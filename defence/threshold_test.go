package defence_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/metrics"
)

// TestThresholdInterval: the bootstrap interval holds the threshold chosen
// from all the clean scores, is the same for the same seed, and narrows when
// there are more clean scores.
func TestThresholdInterval(t *testing.T) {
	normal := func(n int) []float64 {
		rng := rand.New(rand.NewPCG(7, 7))
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64()
		}
		return v
	}
	width := map[int]float64{}
	for _, n := range []int{200, 5000} {
		clean := normal(n)
		for _, rule := range []defence.ThresholdRule{defence.ThresholdEmpirical, defence.ThresholdNormal} {
			point, err := defence.ThresholdFromClean(clean, rule, 0.05, metrics.LowerPoisoned)
			if err != nil {
				t.Fatal(err)
			}
			lo, hi, err := defence.ThresholdInterval(clean, rule, 0.05, metrics.LowerPoisoned, 0.9, 200, 1)
			if err != nil {
				t.Fatal(err)
			}
			if !(lo <= point && point <= hi && lo < hi) {
				t.Errorf("%d scores, %s: interval [%v, %v] does not hold the threshold %v", n, rule, lo, hi, point)
			}
			if lo2, hi2, _ := defence.ThresholdInterval(clean, rule, 0.05, metrics.LowerPoisoned, 0.9, 200, 1); lo2 != lo || hi2 != hi {
				t.Errorf("same seed, another interval: [%v, %v] then [%v, %v]", lo, hi, lo2, hi2)
			}
			if rule == defence.ThresholdEmpirical {
				width[n] = hi - lo
			}
		}
	}
	if !(width[5000] < width[200]/2) {
		t.Errorf("interval widths: %v with 200 scores, %v with 5000; want much narrower with more", width[200], width[5000])
	}
	for _, c := range []struct {
		level     float64
		resamples int
	}{{0, 200}, {1, 200}, {0.9, 1}} {
		if _, _, err := defence.ThresholdInterval(normal(10), defence.ThresholdEmpirical, 0.05, metrics.LowerPoisoned, c.level, c.resamples, 1); !errors.Is(err, metrics.ErrRange) {
			t.Errorf("level %v, %d resamples: %v, want ErrRange", c.level, c.resamples, err)
		}
	}
	if _, _, err := defence.ThresholdInterval(nil, defence.ThresholdEmpirical, 0.05, metrics.LowerPoisoned, 0.9, 200, 1); !errors.Is(err, metrics.ErrEmpty) {
		t.Errorf("no clean scores: %v, want ErrEmpty", err)
	}
}
