package metrics

import "fmt"

// Accuracy is the share of labelled inputs whose predicted label pred[i]
// equals the true label truth[i]. A negative true label means the input is
// unlabelled: it is left out of Hits and Total. No labelled input gives the
// ratio 0/0 (no error); pred and truth of different lengths give ErrLength.
func Accuracy(pred, truth []int) (Ratio, error) {
	if len(pred) != len(truth) {
		return Ratio{}, lengthErr("Accuracy", "predictions", len(pred), "true labels", len(truth))
	}
	var r Ratio
	for i, t := range truth {
		if t < 0 {
			continue
		}
		r.Total++
		if pred[i] == t {
			r.Hits++
		}
	}
	return r, nil
}

// AttackSuccess is the attack success rate on poisoned inputs: the share of
// them classified as target. Inputs whose true class is the target are left
// out (for them the target is the correct answer, not the attack's doing), so
// trueLabels[i] holds the class of input i before it was poisoned, or a
// negative value when unknown (such inputs count). With trueLabels nil no true
// class is known and every input counts: right for a poisoned set that already
// leaves out the target class, as the zoo's and the competition's do. A
// negative target gives ErrRange; trueLabels neither nil nor as long as pred,
// ErrLength.
func AttackSuccess(pred, trueLabels []int, target int) (Ratio, error) {
	if target < 0 {
		return Ratio{}, fmt.Errorf("metrics.AttackSuccess: target %d: %w", target, ErrRange)
	}
	if trueLabels != nil && len(trueLabels) != len(pred) {
		return Ratio{}, lengthErr("AttackSuccess", "predictions", len(pred), "true labels", len(trueLabels))
	}
	var r Ratio
	for i, p := range pred {
		if trueLabels != nil && trueLabels[i] == target {
			continue
		}
		r.Total++
		if p == target {
			r.Hits++
		}
	}
	return r, nil
}

// ConfusionMatrix holds the counts of a classifier's predictions per true
// class: Counts[t][p] inputs of true class t were predicted as class p.
type ConfusionMatrix struct {
	Classes int     `json:"classes"`
	Counts  [][]int `json:"counts"`
}

// Confusion counts pred against truth for classes classes (labels 0 to
// classes-1). Inputs with a negative true label are unlabelled and left out.
// A label of classes or more, or a negative prediction for a labelled input,
// gives ErrRange; slices of different lengths, ErrLength.
func Confusion(pred, truth []int, classes int) (*ConfusionMatrix, error) {
	if classes <= 0 {
		return nil, fmt.Errorf("metrics.Confusion: %d classes: %w", classes, ErrRange)
	}
	if len(pred) != len(truth) {
		return nil, lengthErr("Confusion", "predictions", len(pred), "true labels", len(truth))
	}
	c := &ConfusionMatrix{Classes: classes, Counts: make([][]int, classes)}
	for t := range c.Counts {
		c.Counts[t] = make([]int, classes)
	}
	for i, t := range truth {
		if t < 0 {
			continue
		}
		p := pred[i]
		if t >= classes || p < 0 || p >= classes {
			return nil, fmt.Errorf("metrics.Confusion: input %d: true label %d, predicted %d, for %d classes: %w", i, t, p, classes, ErrRange)
		}
		c.Counts[t][p]++
	}
	return c, nil
}

// Total is the number of inputs counted.
func (c *ConfusionMatrix) Total() int {
	n := 0
	for _, row := range c.Counts {
		for _, v := range row {
			n += v
		}
	}
	return n
}

// Accuracy is the share of counted inputs on the diagonal.
func (c *ConfusionMatrix) Accuracy() Ratio {
	r := Ratio{Total: c.Total()}
	for k := range c.Counts {
		r.Hits += c.Counts[k][k]
	}
	return r
}

// Recall is the share of the inputs of true class k predicted as k (the
// accuracy on class k); 0/0 for a class out of range or without inputs.
func (c *ConfusionMatrix) Recall(k int) Ratio {
	if k < 0 || k >= c.Classes {
		return Ratio{}
	}
	r := Ratio{Hits: c.Counts[k][k]}
	for _, v := range c.Counts[k] {
		r.Total += v
	}
	return r
}

// Precision is the share of the inputs predicted as class k whose true class
// is k; 0/0 for a class out of range or never predicted.
func (c *ConfusionMatrix) Precision(k int) Ratio {
	if k < 0 || k >= c.Classes {
		return Ratio{}
	}
	r := Ratio{Hits: c.Counts[k][k]}
	for t := range c.Counts {
		r.Total += c.Counts[t][k]
	}
	return r
}
