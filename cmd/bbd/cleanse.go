package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/exporter"
	"github.com/bbd-workbench/bbd/internal/progress"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// repeated is a flag that may be given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// runCleanse: bbd cleanse (scan), bbd cleanse merge, bbd cleanse rescore,
// bbd cleanse --unlearn.
func runCleanse(c *cmdEnv, args []string) error {
	if len(args) > 0 && args[0] == "merge" {
		return runCleanseMerge(c, args[1:])
	}
	if len(args) > 0 && args[0] == "rescore" {
		return runCleanseRescore(c, args[1:])
	}
	if len(args) > 0 && args[0] == "lastlayer" {
		return runCleanseLastLayer(c, args[1:])
	}
	modelPath := c.flags.String("model", "", "model: a SavedModel directory (written by bbd) or a Keras .h5 file (required)")
	arch := c.flags.String("arch", "", "architecture of a weights-only Keras file (deepid)")
	var dataPaths repeated
	c.flags.Var(&dataPaths, "data", "clean images: an HDF5 data file, a folder or an image file (repeatable; required for a scan)")
	labels := c.flags.String("labels", "all", "labels to scan: all, or labels and ranges (0-319, 0,5,8)")
	preset := c.flags.String("preset", defence.PresetOriginal, "optimiser settings: original (Neural Cleanse's example script) or paper (the BBD paper)")
	budget := c.flags.String("budget", defence.BudgetFull, "full (every label to the end) or fast (screen, then successive halving)")
	steps := c.flags.Int("steps", 0, "most steps per label (0: 300)")
	slots := c.flags.Int("slots", 0, "labels optimised at once in one graph (0: 32)")
	images := c.flags.Int("images", 0, "clean images per step (0: all, at most 1000)")
	mask3d := c.flags.Bool("mask3d", false, "a mask per channel instead of one broadcast over the channels")
	madScale := c.flags.String("mad", defence.MADLog, "scale of the MAD outlier test: log (ratios of norms) or linear (the original code); the original rule's result is reported too")
	madRule := c.flags.String("mad-rule", defence.MADSingle, "single (one pass, as the original) or iterative (flag the most anomalous, take it out, test again)")
	madThr, madAlpha := madThresholdFlags(c)
	verdict := c.flags.String("verdict", defence.VerdictCombined, "what is flagged: combined (Neural Cleanse's flags, and the data-free last-layer check's candidates whose trigger the scan confirms) or neural-cleanse (the outlier test alone); both tests are reported")
	confirm := c.flags.Bool("confirm", false, "settle every flag with a second initialisation (the flagged labels keep the larger of two norms)")
	seed := c.flags.Uint64("seed", 0, "seed of the initial masks and patterns, image order and exploration")
	out := c.flags.String("out", "", "report folder to create (required)")
	asJSON := c.flags.Bool("json", false, "print the report as one JSON document")
	unlearn := c.flags.Bool("unlearn", false, "unlearn the triggers of a report's flagged labels (with --model, --report, --clean, --out)")
	reportDir := c.flags.String("report", "", "--unlearn: the scan's report folder")
	cleanPath := c.flags.String("clean", "", "--unlearn: clean labelled data (HDF5 or folder) to fine-tune on")
	epochs := c.flags.Int("epochs", 0, "--unlearn: fine-tuning epochs before the held-out selection starts (0: 15)")
	maxEpochs := c.flags.Int("max-epochs", 0, "--unlearn: fine-tuning epochs at most, the epoch with the lowest held-out check kept (0: 30; -1: exactly --epochs, no hold-out)")
	lr := c.flags.Float64("lr", 0, "--unlearn: Adam learning rate (0: 1e-3)")
	recipe := c.flags.String("recipe", defence.UnlearnAugmented, "--unlearn: augmented (fresh stamps every batch, several strengths, thresholded masks, noise) or paper (20 % stamped once)")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected arguments %q (the clean data goes with --data)", pos)
	}
	if *modelPath == "" || *out == "" {
		return usagef("--model and --out are required")
	}
	if *unlearn {
		return runUnlearn(c, *modelPath, *arch, *reportDir, *cleanPath, *out, defence.UnlearnConfig{Epochs: *epochs, MaxEpochs: *maxEpochs, LearningRate: *lr, Seed: *seed, Recipe: *recipe}, *asJSON)
	}
	if len(dataPaths) == 0 {
		return usagef("--data is required: the defender's clean images")
	}
	ls, err := defence.ParseLabels(*labels)
	if err != nil {
		return usagef("--labels: %v", err)
	}
	cfg := defence.CleanseConfig{Preset: *preset, Budget: *budget, MaxSteps: *steps, Slots: *slots, StepImages: *images,
		Mask3D: *mask3d, Seed: *seed, Labels: ls, MADScale: *madScale, MADRule: *madRule, Confirm: *confirm,
		MADThresholdRule: *madThr, MADAlpha: *madAlpha, Verdict: *verdict}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("report destination %s exists: nothing written", *out)
	}
	m, _, err := loadModel(*modelPath, modelOptions{Arch: *arch})
	if err != nil {
		return err
	}
	defer m.Close()
	if !m.WhiteBox() {
		return fmt.Errorf("model %s: %w", *modelPath, tfmodels.ErrNotWhiteBox)
	}
	clean, err := loadImages(dataPaths, m.InputShape)
	if err != nil {
		return err
	}
	st := newStatus(c.stderr)
	cfg.Progress = st.update
	sc, err := defence.NewCleanse(cfg)
	if err != nil {
		return usagef("%v", err)
	}
	rep, err := sc.Run(context.Background(), m, clean)
	st.finish()
	if err != nil {
		return err
	}
	if err := rep.Write(*out); err != nil {
		return err
	}
	return printCleanse(c.stdout, rep, *out, *asJSON)
}

// loadImages reads and joins the clean images of every path.
func loadImages(paths []string, shape [3]int) (*data.Images, error) {
	var parts []*data.Images
	for _, p := range paths {
		imgs, err := data.Load(p, data.ImageOptions{H: shape[0], W: shape[1]})
		if err != nil {
			return nil, fmt.Errorf("data %s: %w", p, err)
		}
		parts = append(parts, imgs)
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return data.Concat(parts...)
}

// printCleanse prints the report: flagged labels and the smallest norms, or
// the JSON document.
func printCleanse(w io.Writer, rep *defence.CleanseReport, dir string, asJSON bool) error {
	if asJSON {
		return printJSON(w, rep)
	}
	scale := ""
	if rep.Config.MADScale != defence.MADLinear {
		scale = " (of log L1)"
	}
	fmt.Fprintf(w, "labels scanned: %d (%d exact), median %.3g, MAD %.3g%s\n", len(rep.Labels), countExact(rep), rep.Median, rep.MAD, scale)
	thrRule := defence.MADFixed
	if rep.Config.MADThresholdRule != defence.MADFixed {
		thrRule = fmt.Sprintf("Bonferroni: max(%g, z(1 - %g / %d))", fixedThreshold(rep), alphaOf(rep), len(rep.Labels))
	}
	fmt.Fprintf(w, "threshold: anomaly index > %.2f (%s)\n", rep.Threshold, thrRule)
	verdict := "Neural Cleanse, and the last layer's candidates it confirms"
	if rep.Config.Verdict == defence.VerdictNeuralCleanse {
		verdict = "Neural Cleanse alone"
	}
	fmt.Fprintf(w, "flagged (%s): %s\n", verdict, flaggedOrNone(rep.Flagged))
	for _, l := range rep.Flagged {
		f, _ := rep.Label(l)
		fmt.Fprintf(w, "  label %d: L1 %.1f, anomaly index %.2f, attack success %.3f%s, flagged by %s\n", l, f.L1, f.AnomalyIndex, f.AttackSuccess, boundNote(f), flaggedBy(f, rep))
	}
	fmt.Fprintf(w, "Neural Cleanse alone: flagged %s\n", flaggedOrNone(rep.NCFlagged))
	fmt.Fprintf(w, "anomaly index of the smallest norm: %.2f (%s, %s)\n", rep.AnomalyIndex, rep.Config.MADScale, rep.Config.MADRule)
	if f := rep.Fixed; f != nil {
		fmt.Fprintf(w, "fixed threshold %g (%s): flagged %s\n", f.Threshold, f.Rule, flaggedOrNone(f.Flagged))
	}
	if o := rep.Original; o != nil {
		fmt.Fprintf(w, "original rule (%s, threshold %g): flagged %s, anomaly index %.2f\n", o.Rule, o.Threshold, flaggedOrNone(o.Flagged), o.AnomalyIndex)
	}
	if ll := rep.LastLayer; ll != nil {
		fmt.Fprintf(w, "last layer, data-free (bias and mean weight of %s, index > %.2f): flagged %s\n", ll.Layer, ll.Threshold, flaggedOrNone(ll.Flagged))
	}
	fmt.Fprintf(w, "time: %s\n", (time.Duration(rep.Seconds * float64(time.Second))).Round(time.Second))
	if dir != "" {
		fmt.Fprintf(w, "report: %s\n", dir)
	}
	return nil
}

func flaggedOrNone(v []int) string {
	if len(v) == 0 {
		return "none"
	}
	return joinInts(v)
}

func fixedThreshold(rep *defence.CleanseReport) float64 {
	if rep.Config.MADThreshold > 0 {
		return rep.Config.MADThreshold
	}
	return 2
}

func alphaOf(rep *defence.CleanseReport) float64 {
	if rep.Config.MADAlpha > 0 {
		return rep.Config.MADAlpha
	}
	return defence.DefaultMADAlpha
}

// madThresholdFlags declares --mad-threshold and --mad-alpha.
func madThresholdFlags(c *cmdEnv) (*string, *float64) {
	rule := c.flags.String("mad-threshold", defence.MADBonferroni, "threshold of the anomaly index: bonferroni (grows with the labels tested: max(2, z(1 - alpha / n))) or fixed (2, the original code's); the fixed threshold's result is reported too")
	alpha := c.flags.Float64("mad-alpha", defence.DefaultMADAlpha, "--mad-threshold bonferroni: probability that any ordinary label is flagged")
	return rule, alpha
}

func boundNote(f *defence.CleanseLabel) string {
	if f.Exact {
		return ""
	}
	return " (stopped early: an upper bound)"
}

func countExact(rep *defence.CleanseReport) int {
	n := 0
	for _, l := range rep.Labels {
		if l.Exact {
			n++
		}
	}
	return n
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

// runCleanseMerge: bbd cleanse merge DIR... --out DIR
func runCleanseMerge(c *cmdEnv, args []string) error {
	out := c.flags.String("out", "", "merged report folder to create (required)")
	asJSON := c.flags.Bool("json", false, "print the merged report as one JSON document")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 || *out == "" {
		return usagef("expected report folders and --out <dir>")
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("report destination %s exists: nothing written", *out)
	}
	var parts []*defence.CleanseReport
	for _, d := range pos {
		r, err := defence.ReadCleanseReport(d)
		if err != nil {
			return err
		}
		parts = append(parts, r)
	}
	rep, err := defence.MergeCleanseReports(parts, pos)
	if err != nil {
		return err
	}
	if err := rep.Write(*out); err != nil {
		return err
	}
	return printCleanse(c.stdout, rep, *out, *asJSON)
}

// runCleanseRescore: bbd cleanse rescore DIR [--mad ...] [--out NEW]
// applies the outlier test again to a saved report, with its own settings
// (the current defaults for the settings it predates) or the ones given.
// runCleanseLastLayer: bbd cleanse lastlayer --model M [--arch A] [--alpha
// 0.05] [--top 10] [--json]: the data-free check of the final dense layer
// alone (defence.LastLayer), in milliseconds, without data.
func runCleanseLastLayer(c *cmdEnv, args []string) error {
	modelPath := c.flags.String("model", "", "model: a SavedModel directory (written by bbd) or a Keras .h5 file (required)")
	arch := c.flags.String("arch", "", "architecture of a weights-only Keras file (deepid)")
	alpha := c.flags.Float64("alpha", defence.DefaultMADAlpha, "family-wise level of the Bonferroni threshold over 2 indicators x the labels")
	top := c.flags.Int("top", 10, "labels of largest index to print")
	asJSON := c.flags.Bool("json", false, "print the report as one JSON document")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) != 0:
		return usagef("unexpected arguments %q", pos)
	case *modelPath == "":
		return usagef("--model is required")
	case *top < 0:
		return usagef("--top must be >= 0, got %d", *top)
	}
	ll, err := defence.NewLastLayer(defence.LastLayerConfig{Alpha: *alpha})
	if err != nil {
		return usagef("%v", err)
	}
	m, _, err := loadModel(*modelPath, modelOptions{Arch: *arch})
	if err != nil {
		return err
	}
	defer m.Close()
	rep, err := ll.Run(m)
	if err != nil {
		return fmt.Errorf("model %s: %w", *modelPath, err)
	}
	if *asJSON {
		return printJSON(c.stdout, rep)
	}
	w := c.stdout
	fmt.Fprintf(w, "layer %s: %d features, %d labels\n", rep.Layer, rep.Features, len(rep.Labels))
	fmt.Fprintf(w, "threshold: index > %.2f (Bonferroni: max(%g, z(1 - %g / (2 x %d))))\n", rep.Threshold, rep.Config.MinThreshold, rep.Config.Alpha, len(rep.Labels))
	fmt.Fprintf(w, "flagged: %s\n", flaggedOrNone(rep.Flagged))
	fmt.Fprintln(w, "label\tindex\tbias index\tmean weight index\tbias\tmean weight")
	for _, l := range rep.Ranked()[:min(*top, len(rep.Labels))] {
		lb := rep.Labels[l]
		fmt.Fprintf(w, "%d\t%.2f\t%.2f\t%.2f\t%.4g\t%.4g\n", lb.Label, lb.Index, lb.BiasIndex, lb.MeanIndex, lb.Bias, lb.MeanWeight)
	}
	return nil
}

// flaggedBy says how a label entered the verdict.
func flaggedBy(f *defence.CleanseLabel, rep *defence.CleanseReport) string {
	switch {
	case f.NCFlagged && f.LastLayerFlagged:
		return "Neural Cleanse and the last layer"
	case f.LastLayerFlagged:
		return fmt.Sprintf("the last layer, confirmed by its trigger (index > %.2f)", rep.CandidateThreshold)
	default:
		return "Neural Cleanse"
	}
}

func runCleanseRescore(c *cmdEnv, args []string) error {
	madScale := c.flags.String("mad", "", "scale of the MAD test: log or linear (default: the report's)")
	madRule := c.flags.String("mad-rule", "", "single or iterative (default: the report's)")
	madThr := c.flags.String("mad-threshold", "", "bonferroni or fixed (default: the report's; bonferroni for reports made before it existed)")
	madAlpha := c.flags.Float64("mad-alpha", 0, "--mad-threshold bonferroni: the family-wise level (0: the report's, or 0.05)")
	madFixed := c.flags.Float64("threshold", 0, "the fixed threshold, and the Bonferroni threshold's floor (0: the report's, 2)")
	verdict := c.flags.String("verdict", "", "combined or neural-cleanse (default: the report's; combined for reports made before it existed)")
	out := c.flags.String("out", "", "write the rescored report (masks and patterns included) into this new folder")
	asJSON := c.flags.Bool("json", false, "print the rescored report as one JSON document")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("expected one report folder")
	}
	if *out != "" {
		if _, err := os.Stat(*out); err == nil {
			return fmt.Errorf("report destination %s exists: nothing written", *out)
		}
	}
	rep, err := defence.ReadCleanseReport(pos[0])
	if err != nil {
		return err
	}
	cfg := &rep.Config
	for _, o := range []struct {
		dst *string
		v   string
	}{{&cfg.MADScale, *madScale}, {&cfg.MADRule, *madRule}, {&cfg.MADThresholdRule, *madThr}, {&cfg.Verdict, *verdict}} {
		if o.v != "" {
			*o.dst = o.v
		}
	}
	if *madAlpha != 0 {
		cfg.MADAlpha = *madAlpha
	}
	if *madFixed != 0 {
		cfg.MADThreshold = *madFixed
	}
	if cfg.MADThresholdRule == "" {
		cfg.MADThresholdRule = defence.MADBonferroni
	}
	if cfg.MADAlpha == 0 {
		cfg.MADAlpha = defence.DefaultMADAlpha
	}
	if cfg.Verdict == "" {
		cfg.Verdict = defence.VerdictCombined
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	rep.Detect()
	if *out != "" {
		if err := rep.Write(*out); err != nil {
			return err
		}
	}
	return printCleanse(c.stdout, rep, *out, *asJSON)
}

// status draws the scan's progress line on a terminal: phase, labels done,
// steps, the current best label and the time left.
type status struct {
	w     io.Writer
	on    bool
	last  time.Time
	start time.Time
	drawn bool
}

func newStatus(w io.Writer) *status {
	return &status{w: w, on: progress.IsTerminal(w), start: time.Now()}
}

func (s *status) update(p defence.CleanseProgress) {
	if !s.on || time.Since(s.last) < 200*time.Millisecond || time.Since(s.start) < 2*time.Second {
		return
	}
	s.last = time.Now()
	line := fmt.Sprintf("cleanse %s: labels %d/%d, steps %d/%d", p.Phase, p.LabelsDone, p.Labels, p.StepsDone, p.StepsPlanned)
	if p.Best >= 0 {
		line += fmt.Sprintf(", best label %d (L1 %.0f)", p.Best, p.BestL1)
	}
	if p.StepsDone > 0 && p.StepsPlanned > p.StepsDone {
		left := time.Duration(float64(p.Elapsed) * float64(p.StepsPlanned-p.StepsDone) / float64(p.StepsDone))
		line += fmt.Sprintf(", %s left", left.Round(time.Second))
	}
	fmt.Fprintf(s.w, "\r%-100s", line)
	s.drawn = true
}

func (s *status) finish() {
	if s.drawn {
		fmt.Fprintln(s.w)
	}
}

// runUnlearn: bbd cleanse --unlearn --model M --report DIR --clean VAL --out R
func runUnlearn(c *cmdEnv, modelPath, arch, reportDir, cleanPath, out string, cfg defence.UnlearnConfig, asJSON bool) error {
	if reportDir == "" || cleanPath == "" {
		return usagef("--unlearn needs --report <scan report folder> and --clean <labelled clean data>")
	}
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("model destination %s exists: nothing written", out)
	}
	rep, err := defence.ReadCleanseReport(reportDir)
	if err != nil {
		return err
	}
	m, _, err := loadModel(modelPath, modelOptions{Arch: arch})
	if err != nil {
		return err
	}
	defer m.Close()
	if !m.WhiteBox() {
		return fmt.Errorf("model %s: %w", modelPath, tfmodels.ErrNotWhiteBox)
	}
	clean, err := loadImages([]string{cleanPath}, m.InputShape)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	bar := progress.New(c.stderr, "unlearn", 0)
	cfg.Progress = func(p tfmodels.TrainProgress) {
		bar.SetTotal(int64(p.Batches * p.Epochs))
		bar.Add(1)
	}
	u := &defence.Unlearn{Config: cfg, Report: rep}
	rm, r, err := u.Mitigate(context.Background(), m, clean)
	bar.Finish()
	if err != nil {
		return err
	}
	defer rm.Close()
	if err := exporter.WriteModel(out, rm, exporter.Options{}); err != nil {
		return err
	}
	ur := r.(*defence.UnlearnReport)
	if asJSON {
		return json.NewEncoder(c.stdout).Encode(ur)
	}
	fmt.Fprintf(c.stdout, "unlearnt labels: %s (%d of %d clean images stamped)\n", joinInts(ur.Labels), ur.Stamped, ur.Images)
	if h := ur.History; h != nil && len(h.Epochs) > 0 {
		e, ran := h.Epochs[len(h.Epochs)-1], len(h.Epochs)
		if len(ur.Checks) > 0 {
			ran = ur.Checks[len(ur.Checks)-1].Epoch
		}
		fmt.Fprintf(c.stdout, "fine-tuning: %d epochs, loss %.4f and accuracy %.4f at epoch %d\n", ran, e.Loss, e.Accuracy, e.Epoch)
	}
	if len(ur.Checks) > 1 {
		fmt.Fprintf(c.stdout, "held-out check (%d clean images; reversed triggers' attack success summed over the check forms): %.3f before, epoch %d chosen (%s)\n",
			ur.HeldOut, ur.Checks[0].Score, ur.Epochs, ur.Stop)
		for _, ce := range ur.Checks[1:] {
			if ce.Epoch == ur.Epochs {
				fmt.Fprintf(c.stdout, "  epoch %d: check %.3f, held-out clean accuracy %.3f (before %.3f)\n", ce.Epoch, ce.Score, ce.CleanAccuracy, ur.Checks[0].CleanAccuracy)
			}
		}
	}
	fmt.Fprintf(c.stdout, "model: %s\n", out)
	return nil
}
