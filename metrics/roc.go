package metrics

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Direction says which end of a detector's score means poisoned.
type Direction int

const (
	// HigherPoisoned: a higher score means more likely poisoned; an input is
	// flagged when its score is above the threshold.
	HigherPoisoned Direction = iota
	// LowerPoisoned: a lower score means more likely poisoned (STRIP's
	// entropy); an input is flagged when its score is below the threshold.
	LowerPoisoned
)

// Flags reports whether a score is flagged as poisoned at threshold: strictly
// above it (HigherPoisoned) or strictly below it (LowerPoisoned).
func (d Direction) Flags(score, threshold float64) bool {
	if d == LowerPoisoned {
		return score < threshold
	}
	return score > threshold
}

// FlagScores returns, per input, whether dir flags its score at threshold;
// with [Detect] it gives the FRR and FAR at that threshold.
func FlagScores(scores []float64, threshold float64, dir Direction) []bool {
	f := make([]bool, len(scores))
	for i, s := range scores {
		f[i] = dir.Flags(s, threshold)
	}
	return f
}

// ROCPoint is one point of a ROC curve: flagging by [Direction.Flags] at
// Threshold gives the false positive rate FPR (= FRR, clean inputs flagged
// over clean inputs) and the true positive rate TPR (= 1 - FAR, poisoned
// inputs flagged over poisoned inputs).
type ROCPoint struct {
	Threshold float64 `json:"threshold"`
	FPR       float64 `json:"fpr"`
	TPR       float64 `json:"tpr"`
}

func (d Direction) check(fn string) error {
	if d != HigherPoisoned && d != LowerPoisoned {
		return fmt.Errorf("metrics.%s: direction %d: %w", fn, d, ErrRange)
	}
	return nil
}

// checkScores checks the direction, one score per input, none NaN, and at
// least one clean and one poisoned input.
func checkScores(fn string, scores []float64, poisoned []bool, dir Direction) error {
	if err := dir.check(fn); err != nil {
		return err
	}
	if len(scores) != len(poisoned) {
		return lengthErr(fn, "scores", len(scores), "truth values", len(poisoned))
	}
	np := 0
	for i, s := range scores {
		if math.IsNaN(s) {
			return fmt.Errorf("metrics.%s: score %d is NaN: %w", fn, i, ErrRange)
		}
		if poisoned[i] {
			np++
		}
	}
	if np == 0 || np == len(scores) {
		return fmt.Errorf("metrics.%s: %d poisoned and %d clean inputs, need some of each: %w", fn, np, len(scores)-np, ErrEmpty)
	}
	return nil
}

// ROC returns the ROC curve of a detector's scores against the truth, from
// (0, 0) (nothing flagged) to (1, 1) (everything flagged): one point per
// distinct score, whose threshold is that score (flagging the inputs that
// score strictly more poisoned), then a last point whose threshold is just
// beyond the least poisoned score (math.Nextafter; it flags every input).
// Inputs of equal score enter together, so ties make a diagonal step and the
// trapezoidal area under the curve equals [AUROC]. scores and poisoned of
// different lengths give ErrLength, a NaN score ErrRange, no clean or no
// poisoned input ErrEmpty, a Direction other than the two constants ErrRange.
func ROC(scores []float64, poisoned []bool, dir Direction) ([]ROCPoint, error) {
	if err := checkScores("ROC", scores, poisoned, dir); err != nil {
		return nil, err
	}
	// Most poisoned first.
	idx := sortedIndex(scores, dir)
	var np, nc float64
	for _, p := range poisoned {
		if p {
			np++
		} else {
			nc++
		}
	}
	var tp, fp float64
	var pts []ROCPoint
	for i := 0; i < len(idx); {
		s := scores[idx[i]]
		pts = append(pts, ROCPoint{Threshold: s, FPR: fp / nc, TPR: tp / np})
		for ; i < len(idx) && scores[idx[i]] == s; i++ {
			if poisoned[idx[i]] {
				tp++
			} else {
				fp++
			}
		}
	}
	return append(pts, ROCPoint{Threshold: dir.beyond(scores[idx[len(idx)-1]]), FPR: 1, TPR: 1}), nil
}

// beyond returns the threshold just beyond the least poisoned score least,
// which flags every score.
func (d Direction) beyond(least float64) float64 {
	if d == LowerPoisoned {
		return math.Nextafter(least, math.Inf(1))
	}
	return math.Nextafter(least, math.Inf(-1))
}

// sortedIndex returns the indices of scores from the most poisoned score to
// the least.
func sortedIndex(scores []float64, dir Direction) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		if dir == LowerPoisoned {
			return cmp.Compare(scores[a], scores[b])
		}
		return cmp.Compare(scores[b], scores[a])
	})
	return idx
}

// AUROC is the area under the ROC curve: the probability that a random
// poisoned input scores as more poisoned than a random clean input, ties
// counting one half (Mann-Whitney U / (poisoned x clean), with mid-ranks for
// tied scores). 1 separates perfectly, 0.5 is chance (and the value when all
// scores tie). Errors as for [ROC].
func AUROC(scores []float64, poisoned []bool, dir Direction) (float64, error) {
	if err := checkScores("AUROC", scores, poisoned, dir); err != nil {
		return 0, err
	}
	// Least poisoned first: rank 1 is the least poisoned score.
	idx := sortedIndex(scores, dir)
	slices.Reverse(idx)
	var rankSum, np float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		mid := float64(i+1+j) / 2 // mean of the ranks i+1..j
		for k := i; k < j; k++ {
			if poisoned[idx[k]] {
				rankSum += mid
				np++
			}
		}
		i = j
	}
	nc := float64(len(scores)) - np
	u := rankSum - np*(np+1)/2
	return u / (np * nc), nil
}

// ThresholdAtFRR returns the threshold at which a detector flags at most a
// share frr of the clean inputs, from their scores clean (STRIP's way of
// choosing a threshold from clean data alone): with n clean scores and
// k = floor(frr*n), it is the (k+1)-th most poisoned clean score (an
// empirical percentile), so the k clean scores beyond it are flagged (fewer
// when several tie with it); for k = n, it is just beyond the least poisoned
// clean score, so every clean input is flagged. Flag with [Direction.Flags]
// or [FlagScores]. frr outside [0, 1] or a NaN score gives ErrRange, no clean
// score ErrEmpty, a Direction other than the two constants ErrRange.
func ThresholdAtFRR(clean []float64, frr float64, dir Direction) (float64, error) {
	if err := dir.check("ThresholdAtFRR"); err != nil {
		return 0, err
	}
	if !(frr >= 0 && frr <= 1) {
		return 0, fmt.Errorf("metrics.ThresholdAtFRR: FRR %v not in [0, 1]: %w", frr, ErrRange)
	}
	if len(clean) == 0 {
		return 0, fmt.Errorf("metrics.ThresholdAtFRR: no clean scores: %w", ErrEmpty)
	}
	for i, s := range clean {
		if math.IsNaN(s) {
			return 0, fmt.Errorf("metrics.ThresholdAtFRR: score %d is NaN: %w", i, ErrRange)
		}
	}
	n := len(clean)
	// The small slack keeps frr*n from rounding below a whole number
	// (0.29*100 = 28.999999999999996).
	k := min(int(math.Floor(frr*float64(n)+1e-9)), n)
	idx := sortedIndex(clean, dir)
	if k < n {
		return clean[idx[k]], nil
	}
	return dir.beyond(clean[idx[n-1]]), nil
}
