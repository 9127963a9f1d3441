package defence

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/bbd-workbench/bbd/tfmodels"
)

// TestLastLayerRule checks the rule on made-up weights: only labels above
// the median count (one-sided), the larger of the two indices decides, the
// threshold is Bonferroni over 2n tests, and bad layers are errors that say
// what was expected and found.
func TestLastLayerRule(t *testing.T) {
	const f, n = 4, 50
	k := &tfmodels.WeightTensor{Shape: []int64{f, n}, Values: make([]float32, f*n)}
	b := &tfmodels.WeightTensor{Shape: []int64{n}, Values: make([]float32, n)}
	for c := range n {
		b.Values[c] = float32(c%7) * 0.1 // spread: MAD > 0
		for j := range f {
			k.Values[j*n+c] = float32((c*3+j)%5) * 0.01
		}
	}
	b.Values[7] = 5     // a bias far above: flagged
	b.Values[8] = -5    // far below: not (one-sided)
	k.Values[0*n+9] = 9 // a mean weight far above: flagged
	w := tfmodels.Weights{"out/kernel": k, "out/bias": b}
	r, err := lastLayerOf("out", w, LastLayerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if want := MADBonferroniThreshold(DefaultMADAlpha, 2*n); r.Threshold != max(2, want) {
		t.Errorf("threshold %.3f, want %.3f", r.Threshold, want)
	}
	if len(r.Flagged) != 2 || !(r.Flagged[0] == 7 || r.Flagged[0] == 9) || r.Labels[8].Index != 0 {
		t.Errorf("flagged %v (want 7 and 9), label 8's index %.2f (want 0)", r.Flagged, r.Labels[8].Index)
	}
	if l := r.Labels[9]; l.Index != l.MeanIndex || l.BiasIndex >= l.MeanIndex {
		t.Errorf("label 9: index %.2f, bias index %.2f, mean index %.2f", l.Index, l.BiasIndex, l.MeanIndex)
	}

	bad := func(w tfmodels.Weights, want string) {
		t.Helper()
		_, err := lastLayerOf("out", w, LastLayerConfig{})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `"out"`) {
			t.Errorf("error %v, want one naming the layer and saying %q", err, want)
		}
	}
	bad(tfmodels.Weights{"out/kernel": k}, "found no kernel or no bias")
	bad(tfmodels.Weights{"out/kernel": k, "out/bias": &tfmodels.WeightTensor{Shape: []int64{3}, Values: make([]float32, 3)}}, "bias [3]")
	bad(tfmodels.Weights{"out/kernel": &tfmodels.WeightTensor{Shape: []int64{f, n}, Values: make([]float32, 3)}, "out/bias": b}, "(3 values)")
	nan := &tfmodels.WeightTensor{Shape: k.Shape, Values: append([]float32(nil), k.Values...)}
	nan.Values[5] = float32(math.NaN())
	bad(tfmodels.Weights{"out/kernel": nan, "out/bias": b}, "non-finite")
	small := tfmodels.Weights{"out/kernel": &tfmodels.WeightTensor{Shape: []int64{1, 2}, Values: make([]float32, 2)}, "out/bias": &tfmodels.WeightTensor{Shape: []int64{2}, Values: make([]float32, 2)}}
	bad(small, "at least 3 classes")
	if _, err := lastLayerOf("out", tfmodels.Weights{"out/kernel": k}, LastLayerConfig{}); !errors.Is(err, ErrNoDenseOutput) {
		t.Errorf("missing bias: %v, want ErrNoDenseOutput", err)
	}
	if err := (LastLayerConfig{Alpha: 2}).Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("Alpha 2: %v", err)
	}
}
