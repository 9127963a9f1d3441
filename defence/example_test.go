package defence_test

import (
	"fmt"

	"github.com/bbd-workbench/bbd/defence"
)

// The Bimodel decision on a few label pairs (BadNet, repaired model) for a
// 10-class model: untargeted, any disagreement is "poisoned" (label 10);
// targeted on label 0, only a disagreement on a BadNet answer of 0 is.
func ExampleDecide() {
	pairs := [][2]int{{3, 3}, {0, 7}, {5, 2}}
	for _, cfg := range []defence.BBDConfig{{}, {Targets: []int{0}}} {
		fmt.Print(cfg.Mode(), ":")
		for _, p := range pairs {
			fmt.Print(" ", defence.Decide(p[0], p[1], cfg, 10))
		}
		fmt.Println()
	}
	// Output:
	// untargeted: 3 10 10
	// targeted: 3 10 5
}

// The decision with a confidence gap of 0.4 on three inputs of a 3-class
// model: the two models agree on label 0 each time, but on the second input
// the BadNet is sure (0.99) where the repaired model hesitates (0.50), so
// the gap, 0.49, judges it poisoned (label 3). Probabilities of two
// lengths give -1.
func ExampleDecideProbs() {
	cfg := defence.BBDConfig{MaxGap: 0.4}
	badnet := [][]float32{{0.90, 0.05, 0.05}, {0.99, 0.005, 0.005}, {0.60, 0.30, 0.10}}
	repaired := [][]float32{{0.85, 0.10, 0.05}, {0.50, 0.45, 0.05}, {0.40, 0.35, 0.25}}
	for i := range badnet {
		fmt.Print(defence.DecideProbs(badnet[i], repaired[i], cfg), " ")
	}
	fmt.Println(defence.DecideProbs([]float32{1}, []float32{0.5, 0.5}, cfg))
	// Output:
	// 0 3 0 -1
}

// What the paper's equations (3)-(6) predict for a BadNet with clean
// accuracy 0.92 and attack success 1.0, repaired to 0.90 and 0.01.
func ExamplePredictBBD() {
	p := defence.PredictBBD(0.92, 1.0, 0.90, 0.01, 1283, 1)
	fmt.Printf("targeted: clean %.4f, poisoned %.4f\n", p.TargetedClean, p.TargetedPoisoned)
	fmt.Printf("untargeted: clean [%.2f, %.2f], poisoned [%.2f, %.2f]\n", p.UntargetedClean[0], p.UntargetedClean[1], p.UntargetedPoisoned[0], p.UntargetedPoisoned[1])
	// Output:
	// targeted: clean 0.9199, poisoned 0.9900
	// untargeted: clean [0.82, 0.92], poisoned [0.99, 1.00]
}
