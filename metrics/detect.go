package metrics

// Detection counts the decisions of a poisoned-input detector (STRIP, BBD's
// rejection label...) against the truth; positive means poisoned.
type Detection struct {
	TP int `json:"tp"` // poisoned inputs flagged
	FP int `json:"fp"` // clean inputs flagged (false rejections)
	TN int `json:"tn"` // clean inputs passed
	FN int `json:"fn"` // poisoned inputs passed (false acceptances)
}

// Detect counts flagged[i] (the detector flags input i as poisoned) against
// poisoned[i] (input i is poisoned). Slices of different lengths give
// ErrLength; empty slices give zero counts.
func Detect(flagged, poisoned []bool) (Detection, error) {
	if len(flagged) != len(poisoned) {
		return Detection{}, lengthErr("Detect", "flags", len(flagged), "truth values", len(poisoned))
	}
	var d Detection
	for i, f := range flagged {
		switch {
		case poisoned[i] && f:
			d.TP++
		case poisoned[i]:
			d.FN++
		case f:
			d.FP++
		default:
			d.TN++
		}
	}
	return d, nil
}

// Add returns the counts of both, e.g. to accumulate batches.
func (d Detection) Add(o Detection) Detection {
	return Detection{TP: d.TP + o.TP, FP: d.FP + o.FP, TN: d.TN + o.TN, FN: d.FN + o.FN}
}

// Clean is the number of clean inputs, Poisoned of poisoned ones, Total of all.
func (d Detection) Clean() int    { return d.FP + d.TN }
func (d Detection) Poisoned() int { return d.TP + d.FN }
func (d Detection) Total() int    { return d.Clean() + d.Poisoned() }

// FRR is the false rejection rate: clean inputs flagged over clean inputs
// (STRIP's and bbd's definition; also the false positive rate).
func (d Detection) FRR() Ratio { return Ratio{Hits: d.FP, Total: d.Clean()} }

// FAR is the false acceptance rate: poisoned inputs passed over poisoned
// inputs (STRIP's and bbd's definition; also the false negative rate, 1 - TPR).
func (d Detection) FAR() Ratio { return Ratio{Hits: d.FN, Total: d.Poisoned()} }

// TPR is the true positive rate (detection rate, recall): poisoned inputs
// flagged over poisoned inputs.
func (d Detection) TPR() Ratio { return Ratio{Hits: d.TP, Total: d.Poisoned()} }

// Accuracy is the share of correct decisions over all inputs.
func (d Detection) Accuracy() Ratio { return Ratio{Hits: d.TP + d.TN, Total: d.Total()} }

// FRROverTotal is the false rejection count over ALL inputs, as the BBD
// authors' notebook computed it (see the package documentation); not bbd's
// definition, for comparison with the paper's tables only.
func (d Detection) FRROverTotal() Ratio { return Ratio{Hits: d.FP, Total: d.Total()} }

// FAROverTotal is the false acceptance count over ALL inputs, as the BBD
// authors' notebook computed it; not bbd's definition.
func (d Detection) FAROverTotal() Ratio { return Ratio{Hits: d.FN, Total: d.Total()} }

// FlagLabel returns, per input, whether its predicted label is reject: the
// flags of a defence that rejects inputs by predicting a label of its own (BBD
// outputs the extra label N when its two models disagree).
func FlagLabel(pred []int, reject int) []bool {
	f := make([]bool, len(pred))
	for i, p := range pred {
		f[i] = p == reject
	}
	return f
}
