package reproduce

import (
	"fmt"
	"math"
	"slices"

	"github.com/bbd-workbench/bbd/defence"
)

// Table1 is the paper's Table 1 measured by bbd: clean test accuracy and
// attack success of each BadNet under each defence, at the fractions the
// automatic rule chose; Table1Paper the paper's.
func Table1(fp *FinePruningResults) *Table {
	t := &Table{Name: "table1-bbd", Title: "Table 1 (bbd): clean accuracy and attack success after each defence",
		Header: []string{"BadNet", "data", "none", "W-based fine-pruning", "reconstructed", "A-based pruning (unit)", "A-based fine-pruning (unit)", "channel fine-pruning", "fractions (unit / channel)"}}
	for _, name := range fp.Models() {
		cells := [2][]string{{name, "clean"}, {name, "poisoned"}}
		add := func(clean, attack string) {
			cells[0], cells[1] = append(cells[0], clean), append(cells[1], attack)
		}
		scores := func(p *PruneResult, s defence.PruneScores) {
			add(f4(s.CleanAccuracy[CleanTestSet]), f4(p.PooledAttack(s)))
		}
		var first *PruneResult // any run of this BadNet holds its original figures
		for _, m := range []string{"unit", "channel", "weight"} {
			if p, ok := fp.Find(name, m); ok {
				first = p
				break
			}
		}
		scores(first, first.Report.Original)
		if p, ok := fp.Find(name, "weight"); ok {
			scores(p, p.Report.Chosen)
		} else {
			add(NA, NA)
		}
		if rr, ok := fp.reconstructed(name); ok {
			add(f4(rr.CleanAccuracy), f4(rr.AttackSuccess.Value()))
		} else {
			add(NA, NA)
		}
		fr := []string{NA, NA}
		if p, ok := fp.Find(name, "unit"); ok {
			pt := p.chosenPoint()
			scores(p, pt.Pruned)
			scores(p, p.Report.Chosen)
			fr[0] = f2(p.Report.Fraction)
		} else {
			add(NA, NA)
			add(NA, NA)
		}
		if p, ok := fp.Find(name, "channel"); ok {
			scores(p, p.Report.Chosen)
			fr[1] = f2(p.Report.Fraction)
		} else {
			add(NA, NA)
		}
		add(fr[0]+" / "+fr[1], "")
		t.Rows = append(t.Rows, cells[0], cells[1])
	}
	t.Notes = []string{
		"Clean rows: accuracy on the clean test data. Poisoned rows: attack success (share labelled with the target) over all poisoned test sets of the BadNet.",
		"Fractions chosen by bbd's rule from clean data only: the largest whose fine-tuned accuracy on the 20 % of clean validation data held out of fine-tuning is within 3 points of the BadNet's.",
		"W-based fine-pruning: magnitude pruning to 0.8 sparsity during fine-tuning (TensorFlow Model Optimization's schedule); the paper's separate \"W-based pruning\" column is the model before that schedule, i.e. the BadNet.",
		"Reconstructed: the BadNet up to its last hidden layer with a new N+1 head trained on the clean validation data plus the first half of each poisoned set (labelled N); poisoned row: attack success on the other half.",
	}
	return t
}

// Table1Paper is the paper's Table 1 in Table1's layout.
func Table1Paper(models []string) *Table {
	t := &Table{Name: "table1-paper", Title: "Table 1 (paper, YouTube Face BadNets)",
		Header: []string{"BadNet", "data", "none", "W-based fine-pruning", "reconstructed", "A-based pruning", "A-based fine-pruning", "channel fine-pruning", "fraction"}}
	for _, name := range models {
		v, ok := paperTable1[name]
		for row, data := range []string{"clean", "poisoned"} {
			cells := []string{name, data}
			for _, col := range []int{0, 2, 3, 4, 5} {
				cells = append(cells, paperCell(v[row][col], ok))
			}
			cells = append(cells, NA)
			fr := ""
			if row == 0 {
				f, ok := paperFractions[name]
				fr = paperCell(f, ok)
			}
			t.Rows = append(t.Rows, append(cells, fr))
		}
	}
	t.Notes = []string{"Quoted from the paper (its Table 1; fractions from the authors' notebooks), not measured here."}
	return t
}

// TablePruneChoice lists each fine-pruning run's automatic choice and
// whether it meets bbd's goals (attack success <= 0.05, clean test accuracy
// at most 3 points below the BadNet's).
func TablePruneChoice(fp *FinePruningResults) *Table {
	t := &Table{Name: "fine-pruning-choice", Title: "Fine-pruning: the automatic choice of the fraction",
		Header: []string{"BadNet", "method", "fraction", "within budget", "held-out accuracy", "clean test accuracy", "drop", "attack success", "meets both goals"}}
	for _, p := range fp.Prune {
		r := p.Report
		clean := r.Chosen.CleanAccuracy[CleanTestSet]
		drop := r.Original.CleanAccuracy[CleanTestSet] - clean
		attack := p.PooledAttack(r.Chosen)
		t.Rows = append(t.Rows, []string{p.Model, p.Method, f2(r.Fraction), yesNo(r.WithinBudget), f4(r.Chosen.HoldOutAccuracy),
			f4(clean), f4(drop), f4(attack), yesNo(attack <= 0.05 && drop <= 0.03)})
	}
	t.Notes = []string{"Weight pruning's fraction is its final sparsity."}
	return t
}

// Table2 is the paper's Table 2 measured by bbd (STRIP in front of each
// BadNet), with the paper's values beside.
func Table2(st []STRIPResult) *Table {
	t := &Table{Name: "table2", Title: "Table 2: STRIP's FRR, FAR and accuracy on clean plus poisoned test data",
		Header: []string{"BadNet", "FRR", "FAR", "accuracy", "AUROC", "threshold", "paper FRR", "paper FAR", "paper accuracy", "paper threshold"}}
	for _, s := range st {
		p, ok := paperTable2[s.Model]
		th, tok := paperSTRIPThreshold[s.Model]
		t.Rows = append(t.Rows, []string{s.Model, f4(s.FRR.Value()), f4(s.FAR.Value()), f4(s.Accuracy.Value()), f4(s.AUROC), f4(s.Threshold),
			paperCell(p[0], ok), paperCell(p[1], ok), paperCell(p[2], ok), paperCell(th, tok)})
	}
	t.Notes = []string{
		"bbd: M overlays blended 0.85 x + 0.15 overlay, threshold at the 5th percentile of the clean validation images' entropies (no poisoned data used); the model behind the filter is the BadNet.",
		"FRR over the clean test images, FAR over the poisoned ones; accuracy: clean inputs passed and labelled right plus poisoned inputs flagged, over all.",
		"Paper: pixel-sum overlays, thresholds read off the poisoned data, the weight-pruned model.",
	}
	return t
}

// Table3 is the paper's Table 3: the labels Neural Cleanse flags.
func Table3(nc []CleanseResult) *Table {
	t := &Table{Name: "table3", Title: "Table 3: labels Neural Cleanse flags",
		Header: []string{"model", "flagged", "attacker's targets", "found", "missed", "Neural Cleanse flags", "last layer flags", "labels scanned", "threshold", "budget", "seconds", "paper flagged"}}
	for _, c := range nc {
		pf, ok := paperTable3[c.Model]
		paper := NA
		if ok {
			paper = ints(pf)
		}
		last := NA
		if c.LastLayer != nil {
			last = ints(c.LastLayer)
		}
		t.Rows = append(t.Rows, []string{c.Model, ints(c.Flagged), ints(c.Targets), ints(c.Found), ints(c.Missed), ints(c.NCFlagged), last,
			fmt.Sprint(len(c.Labels)), f2(c.Threshold), c.Budget, f2(c.Seconds), paper})
	}
	t.Notes = []string{"Flagged: the scan's verdict, the labels Neural Cleanse flags, then those the last-layer check proposes whose anomaly index passes max(2, z(1 - 0.05/k)) for its k proposals (at most a 10 % chance of any false flag in all). The clean model is a negative control.",
		"Neural Cleanse flags: a label's reversed trigger's L1 norm is below the median and its anomaly index (MAD of log norms) exceeds the threshold: max(2, z(1 - 0.05/n)) for n labels scanned (Bonferroni).",
		"Last layer flags: bbd's data-free check of the final dense layer (a label's bias or mean incoming weight an upper outlier, threshold max(2, z(1 - 0.05/2n)); after DFBScanner), over all labels of the model: the candidates the scan confirms or not."}
	return t
}

// Table4 is the paper's Table 4: the Bimodel defence, targeted and
// untargeted, with the standard denominators and the notebook's (over all
// inputs), and equations (5)-(6).
func Table4(bb []BBDResult) *Table {
	t := &Table{Name: "table4", Title: "Table 4: BBD's FRR, FAR and accuracy on clean plus poisoned test data (relabelled N)",
		Header: []string{"BadNet", "mode", "targets", "FRR", "FAR", "FRR over all", "FAR over all", "accuracy", "eq. (3)/(5) clean", "eq. (4)/(6) poisoned", "inside (5)/(6)", "paper FRR", "paper FAR", "paper accuracy"}}
	for _, b := range bb {
		p, ok := paperTable4[b.Model]
		for i, e := range []*defence.BBDEvaluation{b.Targeted, b.Untargeted} {
			pr := e.Predicted
			var eqC, eqP, inside string
			if i == 0 {
				eqC, eqP, inside = f4(pr.TargetedClean), f4(pr.TargetedPoisoned), NA
			} else {
				eqC = fmt.Sprintf("[%s, %s]", f4(pr.UntargetedClean[0]), f4(pr.UntargetedClean[1]))
				eqP = fmt.Sprintf("[%s, %s]", f4(pr.UntargetedPoisoned[0]), f4(pr.UntargetedPoisoned[1]))
				inside = yesNo(e.InsideEq5) + " / " + yesNo(e.InsideEq6)
			}
			targets := ints(e.Targets) + " (" + b.TargetsFrom + ")"
			if i == 1 {
				targets = "all"
			}
			t.Rows = append(t.Rows, []string{b.Model, e.Mode, targets, f4(e.FRR), f4(e.FAR), f4(e.FRRTotal), f4(e.FARTotal), f4(e.Accuracy.Value()),
				eqC, eqP, inside, paperCell(p[3*i], ok), paperCell(p[3*i+1], ok), paperCell(p[3*i+2], ok)})
		}
	}
	t.Notes = []string{
		"FRR over the clean inputs and FAR over the poisoned inputs; \"over all\" divides the same counts by every input, as the authors' notebook did.",
		"Equations (3)-(6) are evaluated from the BadNet's and the repaired model's measured clean accuracy and attack success; the untargeted intervals bound BBD's clean accuracy (5) and its share of poisoned inputs labelled N (6).",
		"Targeted suspects: the labels Neural Cleanse flagged (neural-cleanse), or the attacker's targets (known) when no scan ran or it flagged none.",
		"The paper prints 0.941 as the untargeted multi-trigger FRR, its accuracy repeated; its notebook's FRR is 0.",
	}
	return t
}

// TableClustering reports activation clustering on each zoo BadNet's
// poisoned training set.
func TableClustering(ac []ActivationResult) *Table {
	t := &Table{Name: "activation-clustering", Title: "Activation clustering of each BadNet's training set",
		Header: []string{"BadNet", "training images", "poisoned", "flagged classes", "flagged images", "precision", "recall", "target-class recall"}}
	for _, a := range ac {
		c := a.Clustering
		if c == nil || c.Evaluation == nil {
			t.Rows = append(t.Rows, []string{a.Model, NA, NA, NA, NA, NA, NA, NA})
			continue
		}
		tp, pos := 0, 0
		for _, cl := range c.Classes {
			if cl.Detection != nil && cl.Detection.Poisoned() > 0 {
				tp, pos = tp+cl.Detection.TP, pos+cl.Detection.Poisoned()
			}
		}
		tr := NA
		if pos > 0 {
			tr = f4(float64(tp) / float64(pos))
		}
		t.Rows = append(t.Rows, []string{a.Model, fmt.Sprint(a.TrainImages), fmt.Sprint(a.Poisoned), ints(c.Flagged), fmt.Sprint(c.FlaggedExamples),
			f4(c.Evaluation.Precision.Value()), f4(c.Evaluation.Recall.Value()), tr})
	}
	t.Notes = []string{"Chen et al. 2018: activations of the last hidden layer, PCA to 10 dimensions per class, 2-means, silhouette analysis. Precision and recall against the poisoned indices the zoo records."}
	return t
}

// Models returns the BadNets fine-pruned, in order (Table1Paper's rows).
func (f *FinePruningResults) Models() []string {
	var out []string
	for _, p := range f.Prune {
		if !slices.Contains(out, p.Model) {
			out = append(out, p.Model)
		}
	}
	return out
}

func (f *FinePruningResults) reconstructed(model string) (*ReconstructResult, bool) {
	for i := range f.Reconstructed {
		if f.Reconstructed[i].Model == model {
			return &f.Reconstructed[i], true
		}
	}
	return nil, false
}

// chosenPoint is the sweep point of the chosen fraction.
func (p *PruneResult) chosenPoint() defence.SweepPoint {
	for _, pt := range p.Report.Sweep {
		if math.Abs(pt.Fraction-p.Report.Fraction) < 1e-9 {
			return pt
		}
	}
	return p.Report.Sweep[len(p.Report.Sweep)-1]
}
