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
	// pick keeps each example's targets: example 1 alone gives its row.
	one := make([]float32, 3)
	if err := s.pick([]int{1}).Targets([]int{0}, 3, one); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(one, got[:3]) {
		t.Errorf("picked example 1's targets %v, want %v", one, got[:3])
	}
	s.labels[0] = 3
	var ie *tfmodels.InputError
	if err := s.Targets([]int{0}, 3, got[:3]); !errors.As(err, &ie) {
		t.Errorf("label 3 of 3 classes: error %v, want an InputError", err)
	}
}
