package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// benchCleanse times Neural Cleanse on a real BadNet in one run: the plain
// scan as the original code runs it (one label at a time, the full schedule
// with early stopping, at most 300 steps) on the first `plain` labels, its
// seconds per label extrapolated to every label, then the fast budget over
// every label (logit screen, reference sample, step screen, successive
// halving), whose report is written to a new temporary folder. The clean
// data are the faces folder plus the clean samples (cl_*) of ytf-samples
// beside it. The flags are settled by a second initialisation (Confirm).
// The machine's load average is printed with the figures.
func benchCleanse(w io.Writer, model, faces string, plain int, steps int) error {
	m, err := tfmodels.ImportKerasH5(model, tfmodels.DeepID(), tfmodels.BuildOptions{Source: model})
	if err != nil {
		return modelError(model, err)
	}
	defer m.Close()
	paths := []string{faces}
	extra, _ := filepath.Glob(filepath.Join(filepath.Dir(filepath.Dir(filepath.Clean(faces))), "ytf-samples", "cl_*"))
	paths = append(paths, extra...)
	clean, err := loadImages(paths, m.InputShape)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "bbd bench --cleanse: %s, %d classes, %d clean images (%s), preset original, at most %d steps per label\n",
		model, m.NumClasses, clean.Len(), strings.Join(paths, ", "), steps)
	fmt.Fprintf(w, "load average before: %s; %s\n", loadAvg(), oneDNNSetting())

	// The plain scan, one label at a time.
	var labels []int
	for l := 0; l < min(plain, m.NumClasses); l++ {
		labels = append(labels, l)
	}
	var plainSec float64
	var plainSteps int
	if len(labels) > 0 {
		c, err := defence.NewCleanse(defence.CleanseConfig{Slots: 1, MaxSteps: steps, Labels: labels})
		if err != nil {
			return err
		}
		r, err := c.Run(context.Background(), m, clean)
		if err != nil {
			return err
		}
		plainSec = r.Seconds
		for _, l := range r.Labels {
			plainSteps += l.Steps
			fmt.Fprintf(w, "  plain label %d: %d steps, %.1f s, L1 %.1f, attack success %.3f\n", l.Label, l.Steps, l.Seconds, l.L1, l.AttackSuccess)
		}
		per := plainSec / float64(len(labels))
		fmt.Fprintf(w, "plain scan (1 label at a time): %d labels, %d label-steps, %.1f s: %.2f s per label, %.3f s per label-step; all %d labels: about %s\n",
			len(labels), plainSteps, plainSec, per, plainSec/float64(plainSteps), m.NumClasses,
			(time.Duration(per * float64(m.NumClasses) * float64(time.Second))).Round(time.Minute))
	}

	// The fast full scan.
	start := time.Now()
	phases := map[string]time.Duration{}
	var order []string
	last, lastPhase := start, ""
	cfg := defence.CleanseConfig{Budget: defence.BudgetFast, MaxSteps: steps, Confirm: true}
	cfg.Progress = func(p defence.CleanseProgress) {
		now := time.Now()
		if p.Phase != lastPhase {
			if !slices.Contains(order, p.Phase) {
				order = append(order, p.Phase)
			}
			lastPhase = p.Phase
		}
		phases[p.Phase] += now.Sub(last)
		last = now
	}
	c, err := defence.NewCleanse(cfg)
	if err != nil {
		return err
	}
	r, err := c.Run(context.Background(), m, clean)
	if err != nil {
		return err
	}
	wall := time.Since(start)
	b := r.Budget
	fmt.Fprintf(w, "fast scan: %d labels in %s wall (%.0f s), %d label-steps (plain at most %d); %.3f s per label-step\n",
		len(r.Labels), wall.Round(time.Second), wall.Seconds(), b.LabelSteps, b.PlainMaxSteps, wall.Seconds()/float64(max(1, b.LabelSteps)))
	if b.Logit != nil {
		fmt.Fprintf(w, "  logit screen: top %d of %d patches x %d images, %.1f s; protected %v\n", b.Logit.TopK, b.Logit.Patches, clean.Len(), b.Logit.Seconds, b.Logit.Protected)
	}
	for _, ph := range order {
		fmt.Fprintf(w, "  phase %s: %.0f s\n", ph, phases[ph].Seconds())
	}
	for _, rd := range b.Rounds {
		fmt.Fprintf(w, "  round to step %d: %d labels (%d explored)\n", rd.Until, len(rd.Kept), len(rd.Explored))
	}
	exact := 0
	for _, l := range r.Labels {
		if l.Exact {
			exact++
		}
	}
	fmt.Fprintf(w, "  %d labels exact, %d bounds; reference %d labels\n", exact, len(r.Labels)-exact, len(r.Reference))
	fmt.Fprintf(w, "flagged (verdict %s): %v; Neural Cleanse alone (%s): %v; anomaly index of the smallest norm %.2f\n", r.Config.Verdict, r.Flagged, describeRule(r), r.NCFlagged, r.AnomalyIndex)
	if ll := r.LastLayer; ll != nil && len(ll.Flagged) > 0 {
		fmt.Fprintf(w, "last layer proposes %v; its candidates need index > %.2f\n", ll.Flagged, r.CandidateThreshold)
	} else if ll != nil {
		fmt.Fprintln(w, "last layer proposes no label")
	}
	if r.Fixed != nil {
		fmt.Fprintf(w, "flagged (%s, fixed threshold %g): %v\n", r.Fixed.Rule, r.Fixed.Threshold, r.Fixed.Flagged)
	}
	if r.Original != nil {
		fmt.Fprintf(w, "flagged (original: %s): %v; anomaly index %.2f\n", r.Original.Rule, r.Original.Flagged, r.Original.AnomalyIndex)
	}
	byNorm := slices.Clone(r.Labels)
	slices.SortFunc(byNorm, func(a, b defence.CleanseLabel) int { return int((a.L1 - b.L1) * 1000) })
	for _, l := range byNorm[:min(10, len(byNorm))] {
		fmt.Fprintf(w, "  label %d: L1 %.1f, index %.2f (original %.2f), attack success %.3f, steps %d, exact %v, protected %v",
			l.Label, l.L1, l.AnomalyIndex, l.OriginalIndex, l.AttackSuccess, l.Steps, l.Exact, l.Protected)
		if l.ConfirmL1 > 0 {
			fmt.Fprintf(w, ", first L1 %.1f, second initialisation %.1f", l.FirstL1, l.ConfirmL1)
		}
		fmt.Fprintln(w)
	}
	if plainSec > 0 {
		est := plainSec / float64(len(labels)) * float64(len(r.Labels))
		fmt.Fprintf(w, "fast scan vs plain scan of all %d labels (extrapolated): %.0f s vs %.0f s (%.1fx)\n", len(r.Labels), wall.Seconds(), est, est/wall.Seconds())
	}
	fmt.Fprintf(w, "load average after: %s\n", loadAvg())
	dir, err := os.MkdirTemp("", "bbd-bench-cleanse-")
	if err != nil {
		return err
	}
	out := filepath.Join(dir, "report")
	if err := r.Write(out); err != nil {
		return err
	}
	fmt.Fprintf(w, "report: %s\n", out)
	return nil
}

func describeRule(r *defence.CleanseReport) string {
	return fmt.Sprintf("%s, %s, index > %.2f", r.Config.MADScale, r.Config.MADRule, r.Threshold)
}

// oneDNNSetting describes TF_ENABLE_ONEDNN_OPTS, which libtensorflow reads
// when it is loaded: unset, it turns oneDNN on only for some CPUs (those
// with AVX-512 among them), and a 2-core CPU with AVX2 alone scans about
// 1.8x faster with it set to 1 (README, Neural Cleanse).
func oneDNNSetting() string {
	v, ok := os.LookupEnv("TF_ENABLE_ONEDNN_OPTS")
	if !ok {
		return "TF_ENABLE_ONEDNN_OPTS unset (libtensorflow's choice for this CPU)"
	}
	return "TF_ENABLE_ONEDNN_OPTS=" + v
}

// loadAvg is /proc/loadavg's first three figures ("?" elsewhere).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
