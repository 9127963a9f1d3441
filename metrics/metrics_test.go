package metrics_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/bbd-workbench/bbd/metrics"
)

func TestRatio(t *testing.T) {
	r := metrics.Ratio{Hits: 4581, Total: 5000}
	for _, c := range []struct{ format, want string }{
		{"%v", "0.9162 (4581/5000)"},
		{"%s", "0.9162 (4581/5000)"},
		{"%.4f", "0.9162"},
		{"%-8.2f|", "0.92    |"},
		{"%g", "0.9162"},
		{"%d", "%!d(metrics.Ratio=0.9162 (4581/5000))"},
	} {
		if got := fmt.Sprintf(c.format, r); got != c.want {
			t.Errorf("Sprintf(%q) = %q, want %q", c.format, got, c.want)
		}
	}
	if r.String() != "0.9162 (4581/5000)" {
		t.Errorf("String() = %q", r.String())
	}
	if v := (metrics.Ratio{}).Value(); v != 0 {
		t.Errorf("0/0 has value %v, want 0", v)
	}
	if s := (metrics.Ratio{}).String(); s != "0.0000 (0/0)" {
		t.Errorf("0/0 prints %q", s)
	}
	if got := r.Add(metrics.Ratio{Hits: 1, Total: 3}); got != (metrics.Ratio{Hits: 4582, Total: 5003}) {
		t.Errorf("Add = %v", got)
	}
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != `{"hits":4581,"total":5000,"value":0.9162}` {
		t.Errorf("JSON %s", raw)
	}
	var back metrics.Ratio
	if err := json.Unmarshal(raw, &back); err != nil || back != r {
		t.Errorf("JSON round trip: %v, %v", back, err)
	}
}

func TestAccuracy(t *testing.T) {
	for _, c := range []struct {
		name        string
		pred, truth []int
		want        metrics.Ratio
	}{
		{"three of four", []int{1, 2, 3, 4}, []int{1, 2, 0, 4}, metrics.Ratio{Hits: 3, Total: 4}},
		{"unlabelled left out", []int{1, 2, 3}, []int{1, -1, 0}, metrics.Ratio{Hits: 1, Total: 2}},
		{"none labelled", []int{1, 2}, []int{-1, -1}, metrics.Ratio{}},
		{"empty", nil, nil, metrics.Ratio{}},
	} {
		got, err := metrics.Accuracy(c.pred, c.truth)
		if err != nil || got != c.want {
			t.Errorf("%s: Accuracy = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	if _, err := metrics.Accuracy([]int{1}, []int{1, 2}); !errors.Is(err, metrics.ErrLength) {
		t.Errorf("mismatched lengths: error %v, want ErrLength", err)
	}
}

func TestAttackSuccess(t *testing.T) {
	for _, c := range []struct {
		name        string
		pred, truth []int
		target      int
		want        metrics.Ratio
	}{
		// Input 1 is of the target class: left out.
		{"target class left out", []int{0, 0, 1, 0}, []int{3, 0, 2, 5}, 0, metrics.Ratio{Hits: 2, Total: 3}},
		{"no true labels: all count", []int{0, 0, 1, 0}, nil, 0, metrics.Ratio{Hits: 3, Total: 4}},
		{"unknown true labels count", []int{4, 1}, []int{-1, -1}, 4, metrics.Ratio{Hits: 1, Total: 2}},
		{"all of the target class", []int{0, 0}, []int{0, 0}, 0, metrics.Ratio{}},
		{"empty", nil, nil, 3, metrics.Ratio{}},
	} {
		got, err := metrics.AttackSuccess(c.pred, c.truth, c.target)
		if err != nil || got != c.want {
			t.Errorf("%s: AttackSuccess = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	if _, err := metrics.AttackSuccess([]int{0}, []int{1, 2}, 0); !errors.Is(err, metrics.ErrLength) {
		t.Errorf("mismatched lengths: error %v, want ErrLength", err)
	}
	if _, err := metrics.AttackSuccess([]int{0}, nil, -1); !errors.Is(err, metrics.ErrRange) {
		t.Errorf("negative target: error %v, want ErrRange", err)
	}
}

func TestConfusion(t *testing.T) {
	c, err := metrics.Confusion([]int{0, 1, 1, 2, 2, 0}, []int{0, 1, 2, 2, -1, 1}, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int{{1, 0, 0}, {1, 1, 0}, {0, 1, 1}}
	if c.Classes != 3 || !reflect.DeepEqual(c.Counts, want) {
		t.Errorf("Confusion = %+v, want counts %v", c, want)
	}
	for _, f := range []struct {
		name      string
		got, want metrics.Ratio
	}{
		{"accuracy", c.Accuracy(), metrics.Ratio{Hits: 3, Total: 5}},
		{"recall 1", c.Recall(1), metrics.Ratio{Hits: 1, Total: 2}},
		{"recall 0", c.Recall(0), metrics.Ratio{Hits: 1, Total: 1}},
		{"precision 0", c.Precision(0), metrics.Ratio{Hits: 1, Total: 2}},
		{"precision 2", c.Precision(2), metrics.Ratio{Hits: 1, Total: 1}},
		{"recall out of range", c.Recall(3), metrics.Ratio{}},
		{"precision out of range", c.Precision(-1), metrics.Ratio{}},
	} {
		if f.got != f.want {
			t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
		}
	}
	if c.Total() != 5 {
		t.Errorf("Total = %d, want 5", c.Total())
	}
	empty, err := metrics.Confusion(nil, nil, 2)
	if err != nil || empty.Total() != 0 || empty.Accuracy() != (metrics.Ratio{}) {
		t.Errorf("empty Confusion = %+v, %v", empty, err)
	}
	for name, bad := range map[string]struct {
		pred, truth []int
		classes     int
		want        error
	}{
		"true label too large": {[]int{0}, []int{3}, 3, metrics.ErrRange},
		"negative prediction":  {[]int{-1}, []int{0}, 3, metrics.ErrRange},
		"prediction too large": {[]int{5}, []int{0}, 3, metrics.ErrRange},
		"no classes":           {nil, nil, 0, metrics.ErrRange},
		"mismatched lengths":   {[]int{0, 1}, []int{0}, 3, metrics.ErrLength},
	} {
		if _, err := metrics.Confusion(bad.pred, bad.truth, bad.classes); !errors.Is(err, bad.want) {
			t.Errorf("%s: error %v, want %v", name, err, bad.want)
		}
	}
}

func TestDetect(t *testing.T) {
	d, err := metrics.Detect([]bool{true, true, false, false, true, false}, []bool{true, false, true, false, false, false})
	if err != nil {
		t.Fatal(err)
	}
	if d != (metrics.Detection{TP: 1, FP: 2, TN: 2, FN: 1}) {
		t.Fatalf("Detect = %+v", d)
	}
	if d.Clean() != 4 || d.Poisoned() != 2 || d.Total() != 6 {
		t.Errorf("clean %d, poisoned %d, total %d; want 4, 2, 6", d.Clean(), d.Poisoned(), d.Total())
	}
	for _, f := range []struct {
		name      string
		got, want metrics.Ratio
	}{
		{"FRR", d.FRR(), metrics.Ratio{Hits: 2, Total: 4}},
		{"FAR", d.FAR(), metrics.Ratio{Hits: 1, Total: 2}},
		{"TPR", d.TPR(), metrics.Ratio{Hits: 1, Total: 2}},
		{"accuracy", d.Accuracy(), metrics.Ratio{Hits: 3, Total: 6}},
		{"FRR over total", d.FRROverTotal(), metrics.Ratio{Hits: 2, Total: 6}},
		{"FAR over total", d.FAROverTotal(), metrics.Ratio{Hits: 1, Total: 6}},
	} {
		if f.got != f.want {
			t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
		}
	}
	if got := d.Add(metrics.Detection{TP: 1, FN: 2}); got != (metrics.Detection{TP: 2, FP: 2, TN: 2, FN: 3}) {
		t.Errorf("Add = %+v", got)
	}
	// Only clean inputs: FAR is 0/0, not NaN.
	d, err = metrics.Detect([]bool{false, true}, []bool{false, false})
	if err != nil || d.FAR() != (metrics.Ratio{}) || d.FRR() != (metrics.Ratio{Hits: 1, Total: 2}) {
		t.Errorf("clean only: %+v, %v", d, err)
	}
	if d, err := metrics.Detect(nil, nil); err != nil || d != (metrics.Detection{}) {
		t.Errorf("empty: %+v, %v", d, err)
	}
	if _, err := metrics.Detect([]bool{true}, nil); !errors.Is(err, metrics.ErrLength) {
		t.Errorf("mismatched lengths: error %v, want ErrLength", err)
	}
	if got := metrics.FlagLabel([]int{3, 10, 10, 0}, 10); !reflect.DeepEqual(got, []bool{false, true, true, false}) {
		t.Errorf("FlagLabel = %v", got)
	}
}

func TestROCAndAUROC(t *testing.T) {
	after := math.Nextafter
	for _, c := range []struct {
		name     string
		scores   []float64
		poisoned []bool
		dir      metrics.Direction
		auroc    float64
		roc      []metrics.ROCPoint
	}{
		{
			// Pairs (poisoned, clean) ranked right: 0.9 and 0.8 above all three
			// clean scores, 0.6 above two: 8 of 9.
			name:     "distinct",
			scores:   []float64{0.9, 0.8, 0.7, 0.6, 0.55, 0.5},
			poisoned: []bool{true, true, false, true, false, false},
			auroc:    8.0 / 9,
			roc: []metrics.ROCPoint{{0.9, 0, 0}, {0.8, 0, 1.0 / 3}, {0.7, 0, 2.0 / 3}, {0.6, 1.0 / 3, 2.0 / 3},
				{0.55, 1.0 / 3, 1}, {0.5, 2.0 / 3, 1}, {after(0.5, math.Inf(-1)), 1, 1}},
		},
		{
			name:     "distinct, lower means poisoned",
			scores:   []float64{0.9, 0.8, 0.7, 0.6, 0.55, 0.5},
			poisoned: []bool{true, true, false, true, false, false},
			dir:      metrics.LowerPoisoned,
			auroc:    1.0 / 9,
			roc: []metrics.ROCPoint{{0.5, 0, 0}, {0.55, 1.0 / 3, 0}, {0.6, 2.0 / 3, 0}, {0.7, 2.0 / 3, 1.0 / 3},
				{0.8, 1, 1.0 / 3}, {0.9, 1, 2.0 / 3}, {after(0.9, math.Inf(1)), 1, 1}},
		},
		{
			// 2 > 1, 2 > 0, 1 = 1 (one half), 1 > 0: 3.5 of 4.
			name:     "a tie across classes",
			scores:   []float64{2, 1, 1, 0},
			poisoned: []bool{true, true, false, false},
			auroc:    0.875,
			roc:      []metrics.ROCPoint{{2, 0, 0}, {1, 0, 0.5}, {0, 0.5, 1}, {after(0, math.Inf(-1)), 1, 1}},
		},
		{
			name:     "all tied",
			scores:   []float64{3, 3, 3},
			poisoned: []bool{true, false, false},
			auroc:    0.5,
			roc:      []metrics.ROCPoint{{3, 0, 0}, {after(3, math.Inf(-1)), 1, 1}},
		},
		{
			name:     "perfect",
			scores:   []float64{-1, 5, 4, -2},
			poisoned: []bool{false, true, true, false},
			auroc:    1,
			roc:      []metrics.ROCPoint{{5, 0, 0}, {4, 0, 0.5}, {-1, 0, 1}, {-2, 0.5, 1}, {after(-2, math.Inf(-1)), 1, 1}},
		},
	} {
		a, err := metrics.AUROC(c.scores, c.poisoned, c.dir)
		if err != nil || math.Abs(a-c.auroc) > 1e-12 {
			t.Errorf("%s: AUROC = %v, %v; want %v", c.name, a, err, c.auroc)
		}
		roc, err := metrics.ROC(c.scores, c.poisoned, c.dir)
		if err != nil {
			t.Errorf("%s: ROC: %v", c.name, err)
			continue
		}
		if !rocEqual(roc, c.roc) {
			t.Errorf("%s: ROC = %v, want %v", c.name, roc, c.roc)
		}
		// Every point's rates are those of flagging at its threshold.
		for _, p := range roc {
			d, _ := metrics.Detect(metrics.FlagScores(c.scores, p.Threshold, c.dir), c.poisoned)
			if d.FRR().Value() != p.FPR || d.TPR().Value() != p.TPR {
				t.Errorf("%s: at threshold %v flagging gives FRR %v, TPR %v; ROC says %v, %v", c.name, p.Threshold, d.FRR(), d.TPR(), p.FPR, p.TPR)
			}
		}
	}
}

func rocEqual(a, b []metrics.ROCPoint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Threshold != b[i].Threshold || math.Abs(a[i].FPR-b[i].FPR) > 1e-12 || math.Abs(a[i].TPR-b[i].TPR) > 1e-12 {
			return false
		}
	}
	return true
}

// TestAUROCRandom checks AUROC against counting every (poisoned, clean) pair
// and against the trapezoidal area under ROC, on scores with many ties.
func TestAUROCRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		n := 2 + rng.IntN(40)
		scores := make([]float64, n)
		poisoned := make([]bool, n)
		for i := range scores {
			scores[i] = float64(rng.IntN(6)) // few values: ties
			poisoned[i] = rng.IntN(2) == 0
		}
		poisoned[0], poisoned[1] = true, false
		var pairs, right float64
		for i := range scores {
			for j := range scores {
				if !poisoned[i] || poisoned[j] {
					continue
				}
				pairs++
				switch {
				case scores[i] > scores[j]:
					right++
				case scores[i] == scores[j]:
					right += 0.5
				}
			}
		}
		want := right / pairs
		for _, dir := range []metrics.Direction{metrics.HigherPoisoned, metrics.LowerPoisoned} {
			if dir == metrics.LowerPoisoned {
				want = 1 - want
			}
			a, err := metrics.AUROC(scores, poisoned, dir)
			if err != nil || math.Abs(a-want) > 1e-12 {
				t.Fatalf("trial %d, direction %d: AUROC = %v, %v; pairs give %v", trial, dir, a, err, want)
			}
			roc, err := metrics.ROC(scores, poisoned, dir)
			if err != nil {
				t.Fatal(err)
			}
			area := 0.0
			for k := 1; k < len(roc); k++ {
				area += (roc[k].FPR - roc[k-1].FPR) * (roc[k].TPR + roc[k-1].TPR) / 2
			}
			if math.Abs(area-want) > 1e-12 {
				t.Fatalf("trial %d, direction %d: area under ROC %v, AUROC %v", trial, dir, area, want)
			}
		}
	}
}

func TestScoreErrors(t *testing.T) {
	nan := math.NaN()
	for name, c := range map[string]struct {
		scores   []float64
		poisoned []bool
		dir      metrics.Direction
		want     error
	}{
		"empty":              {nil, nil, metrics.HigherPoisoned, metrics.ErrEmpty},
		"no clean input":     {[]float64{1, 2}, []bool{true, true}, metrics.HigherPoisoned, metrics.ErrEmpty},
		"no poisoned input":  {[]float64{1, 2}, []bool{false, false}, metrics.LowerPoisoned, metrics.ErrEmpty},
		"NaN":                {[]float64{1, nan}, []bool{true, false}, metrics.HigherPoisoned, metrics.ErrRange},
		"mismatched lengths": {[]float64{1, 2}, []bool{true}, metrics.HigherPoisoned, metrics.ErrLength},
		"bad direction":      {[]float64{1, 2}, []bool{true, false}, metrics.Direction(7), metrics.ErrRange},
	} {
		if _, err := metrics.AUROC(c.scores, c.poisoned, c.dir); !errors.Is(err, c.want) {
			t.Errorf("AUROC, %s: error %v, want %v", name, err, c.want)
		}
		if _, err := metrics.ROC(c.scores, c.poisoned, c.dir); !errors.Is(err, c.want) {
			t.Errorf("ROC, %s: error %v, want %v", name, err, c.want)
		}
	}
}

func TestThresholdAtFRR(t *testing.T) {
	entropy := []float64{0.5, 0.1, 0.4, 0.2, 0.3}
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(99 - i)
	}
	for _, c := range []struct {
		name    string
		clean   []float64
		frr     float64
		dir     metrics.Direction
		want    float64
		flagged int
	}{
		{"lower, 0.2", entropy, 0.2, metrics.LowerPoisoned, 0.2, 1},
		{"lower, 0.39 rounds down", entropy, 0.39, metrics.LowerPoisoned, 0.2, 1},
		{"lower, 0", entropy, 0, metrics.LowerPoisoned, 0.1, 0},
		{"lower, 1", entropy, 1, metrics.LowerPoisoned, math.Nextafter(0.5, 1), 5},
		{"higher, 0.4", entropy, 0.4, metrics.HigherPoisoned, 0.3, 2},
		{"higher, 1", entropy, 1, metrics.HigherPoisoned, math.Nextafter(0.1, 0), 5},
		{"ties flag fewer", []float64{1, 1, 1, 2}, 0.5, metrics.LowerPoisoned, 1, 0},
		{"0.29 of 100 is 29", hundred, 0.29, metrics.LowerPoisoned, 29, 29},
	} {
		got, err := metrics.ThresholdAtFRR(c.clean, c.frr, c.dir)
		if err != nil || got != c.want {
			t.Errorf("%s: ThresholdAtFRR = %v, %v; want %v", c.name, got, err, c.want)
			continue
		}
		n := 0
		for _, f := range metrics.FlagScores(c.clean, got, c.dir) {
			if f {
				n++
			}
		}
		if n != c.flagged {
			t.Errorf("%s: %d clean inputs flagged at %v, want %d", c.name, n, got, c.flagged)
		}
	}
	for name, c := range map[string]struct {
		clean []float64
		frr   float64
		dir   metrics.Direction
		want  error
	}{
		"no scores":     {nil, 0.1, metrics.LowerPoisoned, metrics.ErrEmpty},
		"FRR above 1":   {entropy, 1.5, metrics.LowerPoisoned, metrics.ErrRange},
		"negative FRR":  {entropy, -0.1, metrics.LowerPoisoned, metrics.ErrRange},
		"NaN FRR":       {entropy, math.NaN(), metrics.LowerPoisoned, metrics.ErrRange},
		"NaN score":     {[]float64{math.NaN()}, 0.1, metrics.LowerPoisoned, metrics.ErrRange},
		"bad direction": {entropy, 0.1, metrics.Direction(-1), metrics.ErrRange},
	} {
		if _, err := metrics.ThresholdAtFRR(c.clean, c.frr, c.dir); !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", name, err, c.want)
		}
	}
}
