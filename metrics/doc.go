// Package metrics computes the figures by which bbd judges BadNets and
// backdoor defences, in one place: the zoo, the bbd command and the notebooks
// all use it. It is plain Go (no TensorFlow, no cgo): it takes predicted
// labels, true labels, detector flags and detector scores as slices.
//
// # Figures
//
//   - [Accuracy]: predictions equal to the true label, over the labelled
//     inputs (a negative true label means "unknown" and is left out, the
//     convention of package data).
//   - [AttackSuccess]: poisoned inputs classified as the attacker's target,
//     leaving out those whose true class is the target (for them the
//     "attack" is an ordinary correct prediction).
//   - [Confusion]: multi-class confusion counts.
//   - [Detect] and [Detection]: a poisoned-input detector's decisions against
//     the truth (TP, FP, TN, FN; positive = poisoned) with its false rejection
//     rate [Detection.FRR] and false acceptance rate [Detection.FAR].
//   - [ROC], [AUROC], [ThresholdAtFRR], [FlagScores]: detectors that output a
//     score; [FlagLabel]: defences that reject by predicting a label of their own.
//
// Counted figures are a [Ratio] (hits over total), so a figure prints as
// "0.9162 (4581/5000)" and records how many inputs it is measured on. A ratio
// over zero inputs has the value 0, never NaN.
//
// # Definitions
//
// FRR and FAR follow STRIP (Gao et al., "STRIP: a defence against trojan
// attacks on deep neural networks", ACSAC 2019) and the BBD paper
// (../shared/paper/bbd-paper.md, section 3.1.1): the false rejection rate is the
// probability that a benign input is flagged as a trojan input, the false
// acceptance rate the probability that a trojan input is accepted as benign.
// bbd therefore divides FRR by the number of clean inputs and FAR by the number
// of poisoned inputs ([Detection.FRR], [Detection.FAR]).
//
// The BBD authors' notebook (../shared/paper/reference-results.md, "BBD
// (Table 4)") divided both counts by the total number of inputs, clean and
// poisoned together. [Detection.FRROverTotal] and [Detection.FAROverTotal]
// compute that variant, to compare with the paper's tables; it is not bbd's
// definition. The notebook's FRR is bbd's times the share of clean inputs in
// the set, its FAR bbd's times the share of poisoned inputs: about half of
// bbd's when the set is half clean, half poisoned.
//
// AUROC is the probability that a random poisoned input scores as more
// poisoned than a random clean one, ties counting one half (the Mann-Whitney
// U statistic over the product of the two counts); it equals the area under
// [ROC] by the trapezoidal rule.
//
// # Errors
//
// Bad arguments give an error, never a panic: slices of different lengths wrap
// [ErrLength], missing inputs [ErrEmpty], and values out of range (a class
// index, a NaN score, a rate outside [0, 1]) [ErrRange]; test with
// [errors.Is].
package metrics
