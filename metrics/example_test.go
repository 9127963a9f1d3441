package metrics_test

import (
	"fmt"

	"github.com/bbd-workbench/bbd/metrics"
)

func ExampleAccuracy() {
	pred := []int{3, 1, 4, 1, 5}
	truth := []int{3, 1, 4, 2, -1} // -1: unlabelled, left out
	acc, err := metrics.Accuracy(pred, truth)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("accuracy:", acc)
	fmt.Printf("value only: %.2f\n", acc)
	// Output:
	// accuracy: 0.7500 (3/4)
	// value only: 0.75
}

func ExampleAttackSuccess() {
	// Predictions on triggered images, target 0; the second image's true
	// class is 0 already, so it is left out.
	pred := []int{0, 0, 7, 0}
	trueLabels := []int{2, 0, 7, 9}
	asr, _ := metrics.AttackSuccess(pred, trueLabels, 0)
	fmt.Println("attack success:", asr)
	// Output:
	// attack success: 0.6667 (2/3)
}

func ExampleDetection() {
	// Six clean and four poisoned inputs; the detector flags two clean ones
	// and three poisoned ones.
	poisoned := []bool{false, false, false, false, false, false, true, true, true, true}
	flagged := []bool{true, false, false, true, false, false, true, true, false, true}
	d, _ := metrics.Detect(flagged, poisoned)
	fmt.Printf("%+v\n", d)
	fmt.Println("FRR:", d.FRR(), "FAR:", d.FAR())
	fmt.Println("as the authors' notebook (over all inputs): FRR", d.FRROverTotal(), "FAR", d.FAROverTotal())
	// Output:
	// {TP:3 FP:2 TN:4 FN:1}
	// FRR: 0.3333 (2/6) FAR: 0.2500 (1/4)
	// as the authors' notebook (over all inputs): FRR 0.2000 (2/10) FAR 0.1000 (1/10)
}

func ExampleAUROC() {
	// STRIP-like entropies: poisoned inputs have low entropy.
	entropy := []float64{0.9, 1.2, 0.4, 0.05, 0.1, 0.4}
	poisoned := []bool{false, false, false, true, true, true}
	auc, _ := metrics.AUROC(entropy, poisoned, metrics.LowerPoisoned)
	fmt.Printf("AUROC %.4f\n", auc) // 0.4 vs 0.4 ties: counts one half
	// Output:
	// AUROC 0.9444
}

func ExampleThresholdAtFRR() {
	// Choose the threshold from clean entropies alone for an FRR of at most
	// 0.25, then measure FRR and FAR on a mixed set.
	clean := []float64{0.9, 1.2, 0.4, 0.7}
	t, _ := metrics.ThresholdAtFRR(clean, 0.25, metrics.LowerPoisoned)
	scores := []float64{0.9, 1.2, 0.4, 0.7, 0.05, 0.5}
	poisoned := []bool{false, false, false, false, true, true}
	d, _ := metrics.Detect(metrics.FlagScores(scores, t, metrics.LowerPoisoned), poisoned)
	fmt.Println("threshold", t, "FRR", d.FRR(), "FAR", d.FAR())
	// Output:
	// threshold 0.7 FRR 0.2500 (1/4) FAR 0.0000 (0/2)
}

func ExampleConfusion() {
	c, _ := metrics.Confusion([]int{0, 1, 1, 2}, []int{0, 1, 2, 2}, 3)
	fmt.Println(c.Counts, "recall of class 2:", c.Recall(2))
	// Output:
	// [[1 0 0] [0 1 0] [0 1 1]] recall of class 2: 0.5000 (1/2)
}
