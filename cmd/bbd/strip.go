package main

// bbd strip: black-box input detectors (STRIP, SCALE-UP, TeCo).
//
//	bbd strip --model M --pool CLEAN [--method strip|scaleup|teco|all] [--overlays 100]
//	          [--blend 0.15 | --auto-blend | --sum] [--bits] [--seed 1] [--frr 0.05 [--rule normal|empirical] | --threshold T]
//	          [--calibrate X]... [--adaptive [--confidence 0.95]] [--clean X]... [--poisoned Y]... [--bbd DIR] [--limit N]
//	          [--json] [--quiet] [--export DIR [--overwrite]] [INPUT...]
//
// STRIP superimposes by a light blend, 0.85 x + 0.15 o, by default (see
// defence.DefaultBlendAlpha for why); --sum gives STRIP's paper's pixel sum
// (the one the paper's fixed thresholds 0.18 / 0.25 / 0.30 are for);
// --auto-blend chooses the blend's weight from --pool (defence.AlphaAuto:
// the largest at which at most --frr of the clean images lose their label in
// most of their overlaid copies), printed on stderr and as "alpha_choice" in
// JSON.
//
// --pool is the defender's clean data (an HDF5 file in the competition format
// or a folder of images): STRIP draws its overlays from it, and, unless
// --calibrate names other clean data, the threshold is chosen from its scores
// at --frr (the empirical FRR-percentile of the clean scores by default;
// --rule normal for STRIP's paper's rule, the FRR-quantile of a normal fitted
// to them; SCALE-UP and TeCo always use the empirical one, their scores being
// discrete). --threshold T fixes the threshold instead (STRIP
// only). Inputs: --clean and --poisoned sets (repeatable) are labelled, and
// give FRR, FAR and AUROC; positional inputs are scored unlabelled. Output:
// per input "<name>\t<set>\t<score>\t<label>\t<clean|poisoned>" (the label is
// the model's; --quiet drops these lines), then the method, threshold, FRR,
// FAR and AUROC lines, and for a threshold chosen from clean scores its 90 %
// bootstrap interval with FRR and FAR at both ends
// (defence.ThresholdInterval). --method all scores the same inputs with the
// three detectors and prints a table. --adaptive runs adaptive STRIP and, for
// comparison, fixed-M STRIP on the same inputs (mean overlays per input in
// the method column). With several --poisoned sets, FAR and AUROC are also
// given per set ("poisoned_sets" in JSON). --json prints one document:
// threshold, frr, far, auroc, scores (one per input, in order), inputs
// (name, set, label, decision), histograms (the data of the BBD paper's
// Figure 3) and, with --method all or --adaptive, "methods". --export DIR writes STRIP's filter SavedModel
// (label, or N = the number of classes for "poisoned"). --bbd DIR adds a
// BBD model's decision on the same inputs as one more row (its score, for
// AUROC, is defence.BBD.Detect's).

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/exporter"
	"github.com/bbd-workbench/bbd/internal/progress"
	"github.com/bbd-workbench/bbd/metrics"
	"github.com/bbd-workbench/bbd/tfmodels"
)

var stripCommand = &command{name: "strip", summary: "flag poisoned inputs with STRIP (or SCALE-UP, TeCo): scores, FRR, FAR, AUROC, filter export",
	usage: "--model M --pool CLEAN [--method strip|scaleup|teco|all] [--overlays 100] [--blend 0.15 | --auto-blend | --sum] [--score mean|profile] [--frr 0.05 | --threshold T] [--adaptive] [--clean X]... [--poisoned Y]... [--bbd DIR] [--json] [--export DIR] [INPUT...]",
	run:   runStrip}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// stripSet is the inputs of one --clean, --poisoned or positional argument.
type stripSet struct {
	kind string // "clean", "poisoned" or "input"
	src  *source
	imgs *data.Images
}

// methodResult is what one detector says of all inputs.
type methodResult struct {
	Method    string         `json:"method"`
	Threshold float64        `json:"threshold"`
	Rule      string         `json:"rule"`
	FRR       *metrics.Ratio `json:"frr,omitempty"`
	FAR       *metrics.Ratio `json:"far,omitempty"`
	AUROC     *float64       `json:"auroc,omitempty"`
	Scores    []float64      `json:"scores"`
	Labels    []int          `json:"-"`
	Flags     []bool         `json:"-"`
	Overlays  *float64       `json:"mean_overlays,omitempty"`
	// AlphaChoice is how --auto-blend chose STRIP's blend weight.
	AlphaChoice *defence.AlphaChoice `json:"alpha_choice,omitempty"`
	Hist        *stripHistogram      `json:"histograms,omitempty"`
	// Sets has FAR and AUROC per --poisoned set (AUROC against all clean
	// inputs) when there are several.
	Sets []setFigures `json:"poisoned_sets,omitempty"`
	// Interval is the threshold's bootstrap interval, for a threshold
	// chosen from clean scores.
	Interval *thresholdInterval `json:"threshold_interval,omitempty"`
}

// The threshold's bootstrap interval: its level and resamples.
const (
	intervalLevel     = 0.9
	intervalResamples = 200
)

// thresholdInterval is how far the threshold moves with the calibration
// data (defence.ThresholdInterval), and FRR and FAR on the labelled inputs
// at its two ends.
type thresholdInterval struct {
	Level       float64    `json:"level"`
	Resamples   int        `json:"resamples"`
	Calibration int        `json:"calibration_scores"`
	Low         float64    `json:"low"`
	High        float64    `json:"high"`
	FRR         [2]float64 `json:"frr_at_ends"`
	FAR         [2]float64 `json:"far_at_ends"`
}

func (t *thresholdInterval) copy() *thresholdInterval {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

// setFigures is one --poisoned set's FAR and AUROC.
type setFigures struct {
	Set   string         `json:"set"`
	FAR   *metrics.Ratio `json:"far"`
	AUROC *float64       `json:"auroc,omitempty"`
}

type stripHistogram struct {
	Edges    []float64 `json:"edges"`
	Clean    []int     `json:"clean"`
	Poisoned []int     `json:"poisoned"`
}

type stripInput struct {
	Name     string `json:"name"`
	Set      string `json:"set"`
	Label    int    `json:"label"`
	Poisoned bool   `json:"poisoned"`
}

func runStrip(c *cmdEnv, args []string) error {
	fl := c.flags
	modelPath := fl.String("model", "", "model: a SavedModel directory (any, black-box too) or a Keras .h5 file (required)")
	arch := fl.String("arch", "", "architecture of a weights-only Keras file (deepid)")
	pool := fl.String("pool", "", "clean data: STRIP's overlay pool and, without --calibrate, the threshold's clean scores (HDF5 file or image folder; required)")
	method := fl.String("method", "strip", "detector: strip, scaleup, teco, or all (one table)")
	overlays := fl.Int("overlays", 100, "STRIP: overlays per input (M)")
	blend := fl.Float64("blend", defence.DefaultBlendAlpha, "STRIP: the overlay's weight A of the blend (1-A) x + A o")
	autoBlend := fl.Bool("auto-blend", false, "STRIP: choose the blend's weight from --pool (clean data only; see defence.AlphaAuto) instead of --blend")
	sum := fl.Bool("sum", false, "STRIP: superimpose by pixel sum x + o, no clipping (STRIP's paper and the BBD notebooks; the paper's fixed thresholds) instead of the blend")
	bits := fl.Bool("bits", false, "STRIP: entropy in bits (default nats)")
	scoreKind := fl.String("score", "mean", "STRIP: the score of an input's M entropies: mean (STRIP's) or profile (bbd's: how unusual their pattern is against the clean calibration images'; needs at least 6 M of them)")
	seed := fl.Uint64("seed", 1, "seed of the overlay draw and of TeCo's noise")
	frr := fl.Float64("frr", defence.DefaultFRR, "target false rejection rate of the threshold chosen from clean data")
	rule := fl.String("rule", "", "threshold rule from clean scores: empirical (the FRR-percentile, the default) or normal (STRIP's paper: a normal fitted to them)")
	threshold := fl.Float64("threshold", math.NaN(), "STRIP: a fixed threshold (e.g. the paper's 0.18) instead of one from clean data")
	adaptive := fl.Bool("adaptive", false, "adaptive STRIP: overlays in rounds of 10, stopping early for clear inputs; prints fixed-M STRIP on the same inputs too")
	confidence := fl.Float64("confidence", 0, "with --adaptive: confidence of the stopping rule, in (0, 1) (0: 0.95)")
	var calibrate, clean, poisoned listFlag
	fl.Var(&calibrate, "calibrate", "clean data the threshold is chosen from (repeatable; default: --pool)")
	fl.Var(&clean, "clean", "labelled clean inputs (HDF5 file or image folder; repeatable)")
	fl.Var(&poisoned, "poisoned", "labelled poisoned inputs (HDF5 file or image folder; repeatable)")
	limit := fl.Int("limit", 0, "use only the first N images of each data set (0: all)")
	batch := fl.Int("batch", tfmodels.DefaultBatchSize, "images per TensorFlow run (each input with its copies)")
	asJSON := fl.Bool("json", false, "print one JSON document")
	quiet := fl.Bool("quiet", false, "no per-input lines")
	bbdPath := fl.String("bbd", "", "a BBD SavedModel (bbd defend --out) to score on the same inputs: one more row of the table")
	export := fl.String("export", "", "STRIP: write the filter SavedModel to this folder")
	overwrite := fl.Bool("overwrite", false, "with --export: replace an existing folder")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	switch {
	case *modelPath == "":
		return usagef("--model is required")
	case *pool == "":
		return usagef("--pool is required (the defender's clean data)")
	case *method != "strip" && *method != "scaleup" && *method != "teco" && *method != "all":
		return usagef("--method must be strip, scaleup, teco or all, got %q", *method)
	case len(pos)+len(clean)+len(poisoned) == 0 && *export == "":
		return usagef("expected inputs: --clean, --poisoned or positional images, folders, HDF5 files")
	case *export != "" && *method != "strip":
		return usagef("--export writes STRIP's filter: use it with --method strip")
	case *limit < 0 || *batch <= 0:
		return usagef("--limit must be >= 0 and --batch positive")
	}
	fixed := !math.IsNaN(*threshold)
	th := defence.ThresholdConfig{Rule: defence.ThresholdRule(*rule), FRR: *frr}
	if fixed {
		th = defence.ThresholdConfig{Rule: defence.ThresholdFixed, Value: *threshold}
	}
	cfg := defence.STRIPConfig{Overlays: *overlays, Seed: *seed, Threshold: th, BatchSize: *batch, Adaptive: *adaptive, Confidence: *confidence}
	if *confidence != 0 && !*adaptive {
		return usagef("--confidence needs --adaptive")
	}
	cfg.Overlay, cfg.Alpha = defence.OverlayBlend, *blend
	blendSet := false
	fl.Visit(func(f *flag.Flag) { blendSet = blendSet || f.Name == "blend" })
	if *autoBlend {
		if blendSet || *sum {
			return usagef("--auto-blend excludes --blend and --sum")
		}
		cfg.Alpha = defence.AlphaAuto
	}
	if *sum {
		if blendSet {
			return usagef("--sum and --blend exclude each other")
		}
		cfg.Overlay, cfg.Alpha = defence.OverlaySum, 0
	}
	if *bits {
		cfg.Entropy = defence.Bits
	}
	cfg.Score = defence.STRIPScore(*scoreKind)
	if cfg.Score == defence.ScoreProfile && *method != "strip" && *method != "all" {
		return usagef("--score is STRIP's: use it with --method strip or all")
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}

	m, _, err := loadModel(*modelPath, modelOptions{Arch: *arch, BatchSize: *batch})
	if err != nil {
		return err
	}
	defer m.Close()
	load := func(kind string, args []string) ([]*stripSet, error) {
		var sets []*stripSet
		for _, a := range args {
			s, err := openSource(a, m.InputShape, false)
			if err != nil {
				return nil, err
			}
			n := s.n
			if *limit > 0 {
				n = min(n, *limit)
			}
			imgs, err := s.batch(0, n, m.InputShape, false)
			if s.h5 != nil {
				s.h5.Close()
			}
			if err != nil {
				return nil, err
			}
			sets = append(sets, &stripSet{kind: kind, src: s, imgs: imgs})
		}
		return sets, nil
	}
	poolSets, err := load("pool", []string{*pool})
	if err != nil {
		return err
	}
	calSets := poolSets
	if len(calibrate) > 0 {
		if calSets, err = load("calibrate", calibrate); err != nil {
			return err
		}
	}
	var sets []*stripSet
	for _, g := range []struct {
		kind string
		args []string
	}{{"clean", clean}, {"poisoned", poisoned}, {"input", pos}} {
		s, err := load(g.kind, g.args)
		if err != nil {
			return err
		}
		sets = append(sets, s...)
	}
	calImgs, err := concatSets(calSets)
	if err != nil {
		return err
	}
	inputs, err := concatSets(sets)
	if err != nil && len(sets) > 0 {
		return err
	}

	methods := []string{*method}
	if *method == "all" {
		methods = []string{"strip", "scaleup", "teco"}
	}
	var results []*methodResult
	for _, name := range methods {
		r, err := runDetector(c, name, m, poolSets[0].imgs, calImgs, inputs, sets, cfg, *seed, *batch, *export, *overwrite)
		if err != nil {
			return err
		}
		results = append(results, r...)
	}
	if *bbdPath != "" && inputs != nil {
		r, err := bbdRow(*bbdPath, m.InputShape, inputs, sets)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	return printStrip(c, results, sets, *asJSON, *quiet)
}

// bbdRow scores the inputs with a BBD SavedModel: its decision, and its
// score for AUROC (defence.BBD.Detect).
func bbdRow(path string, shape [3]int, inputs *data.Images, sets []*stripSet) (*methodResult, error) {
	if _, err := checkModelPath(path); err != nil {
		return nil, err
	}
	b, err := defence.LoadBBD(path, tfmodels.LoadOptions{})
	if err != nil {
		return nil, modelError(path, err)
	}
	defer b.Close()
	if b.Model.InputShape != shape {
		return nil, &tfmodels.InputError{Input: path, Expected: fmt.Sprintf("a BBD model reading the --model's input %v", shape), Found: fmt.Sprintf("input %v", b.Model.InputShape)}
	}
	x, err := inputs.Float32(0, inputs.Len())
	if err != nil {
		return nil, err
	}
	det, err := b.Detect(context.Background(), x, inputs.Len())
	if err != nil {
		return nil, err
	}
	rule := "labels disagree"
	if b.Config.MaxGap > 0 {
		rule = "labels disagree or gap > threshold"
	}
	r := &methodResult{Method: b.Name(), Threshold: det.Threshold, Rule: rule, Scores: det.Scores, Labels: det.Labels, Flags: det.Flags}
	return r, r.figures(sets, det.Direction)
}

func concatSets(sets []*stripSet) (*data.Images, error) {
	var parts []*data.Images
	for _, s := range sets {
		parts = append(parts, s.imgs)
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("no inputs")
	}
	return data.Concat(parts...)
}

// detectorOf is what runStrip needs of a detector.
type detectorOf interface {
	ScoreExamples(ctx context.Context, ex defence.Examples) ([]float64, []int, error)
	Calibrate(ctx context.Context, clean defence.Examples) ([]float64, error)
	CalibrateScores(clean []float64) error
	Threshold() (float64, bool)
	Flags(scores []float64) ([]bool, error)
	Direction() metrics.Direction
	Close() error
}

// runDetector runs one detector on the inputs; with --adaptive, STRIP's
// result is the adaptive one followed by fixed-M STRIP's on the same inputs,
// for comparison.
func runDetector(c *cmdEnv, name string, m *tfmodels.Model, pool, cal, inputs *data.Images, sets []*stripSet, cfg defence.STRIPConfig, seed uint64, batch int, export string, overwrite bool) ([]*methodResult, error) {
	var bar *progress.Bar
	done := int64(0)
	prog := func(d, total int) {
		if bar != nil && int64(d) > done {
			bar.Add(int64(d) - done)
			done = int64(d)
		}
	}
	var d detectorOf
	var s *defence.STRIP
	var err error
	rule := string(cfg.Threshold.Rule)
	switch name {
	case "strip":
		cfg.Progress = prog
		s, err = defence.NewSTRIP(m, pool, cfg)
		d = s
		if err == nil && s.AlphaChoice() != nil {
			ch := s.AlphaChoice()
			steps := make([]string, len(ch.Steps))
			for i, st := range ch.Steps {
				steps[i] = fmt.Sprintf("%g: %.3f", st.Alpha, st.Lost)
			}
			fmt.Fprintf(c.stderr, "strip: --auto-blend chose alpha %g (share of %d pool images losing their label in most copies, at most %g: %s)\n",
				ch.Alpha, ch.Inputs, ch.MaxLost, strings.Join(steps, ", "))
		}
		if rule == "" {
			rule = string(defence.ThresholdEmpirical)
		}
	case "scaleup":
		th := cfg.Threshold
		if th.Rule != defence.ThresholdFixed {
			th.Rule = defence.ThresholdEmpirical
		} else {
			return nil, usagef("--threshold is STRIP's; SCALE-UP's threshold comes from --frr")
		}
		rule = string(th.Rule)
		d, err = defence.NewScaleUp(m, defence.ScaleUpConfig{Threshold: th, BatchSize: batch, Progress: prog})
	case "teco":
		th := cfg.Threshold
		if th.Rule != defence.ThresholdFixed {
			th.Rule = defence.ThresholdEmpirical
		} else {
			return nil, usagef("--threshold is STRIP's; TeCo's threshold comes from --frr")
		}
		rule = string(th.Rule)
		d, err = defence.NewTeCo(m, defence.TeCoConfig{Seed: seed, Threshold: th, BatchSize: batch, Progress: prog})
	}
	if err != nil {
		return nil, err
	}
	defer d.Close()
	ctx := context.Background()
	score := func(label string, ex *data.Images) ([]float64, []int, error) {
		bar, done = progress.New(c.stderr, name+" "+label, int64(ex.Len())), 0
		defer bar.Finish()
		return d.ScoreExamples(ctx, ex)
	}
	var interval *thresholdInterval
	if cfg.Threshold.Rule != defence.ThresholdFixed {
		// Calibrate, not ScoreExamples + CalibrateScores: STRIP's profile
		// score fits the clean profiles there and returns cross-fitted scores.
		bar, done = progress.New(c.stderr, name+" calibrate", int64(cal.Len())), 0
		cs, err := d.Calibrate(ctx, cal)
		bar.Finish()
		if err != nil {
			return nil, err
		}
		lo, hi, err := defence.ThresholdInterval(cs, defence.ThresholdRule(rule), cfg.Threshold.FRR, d.Direction(), intervalLevel, intervalResamples, seed)
		if err != nil {
			return nil, err
		}
		interval = &thresholdInterval{Level: intervalLevel, Resamples: intervalResamples, Calibration: len(cs), Low: lo, High: hi}
	} else if err := d.CalibrateScores(nil); err != nil {
		return nil, err
	}
	t, _ := d.Threshold()
	r := &methodResult{Method: name, Threshold: t, Rule: rule, Interval: interval}
	if s != nil {
		r.Method = s.Name() // strip-profile with --score profile
		r.AlphaChoice = s.AlphaChoice()
	}
	results := []*methodResult{r}
	if inputs != nil {
		if s != nil && cfg.Adaptive {
			x, err := inputs.Float32(0, inputs.Len())
			if err != nil {
				return nil, err
			}
			bar, done = progress.New(c.stderr, "strip adaptive", int64(inputs.Len())), 0
			det, err := s.DetectAdaptive(ctx, x, inputs.Len())
			bar.Finish()
			if err != nil {
				return nil, err
			}
			r.Method = "strip-adaptive"
			r.Scores, r.Labels, r.Flags = det.Scores, det.Labels, det.Flags
			total := 0
			for _, q := range det.Queries {
				total += q
			}
			avg := float64(total) / float64(len(det.Queries))
			r.Overlays = &avg
			fixed := &methodResult{Method: name, Threshold: t, Rule: rule, Interval: interval.copy()}
			if fixed.Scores, fixed.Labels, err = score("inputs (fixed M)", inputs); err != nil {
				return nil, err
			}
			if fixed.Flags, err = d.Flags(fixed.Scores); err != nil {
				return nil, err
			}
			full := float64(cfg.Overlays)
			fixed.Overlays = &full
			if err := fixed.figures(sets, d.Direction()); err != nil {
				return nil, err
			}
			results = append(results, fixed)
		} else {
			if r.Scores, r.Labels, err = score("inputs", inputs); err != nil {
				return nil, err
			}
			if r.Flags, err = d.Flags(r.Scores); err != nil {
				return nil, err
			}
		}
		if err := r.figures(sets, d.Direction()); err != nil {
			return nil, err
		}
	}
	if export != "" {
		if err := s.Export(export, exporter.Options{Overwrite: overwrite}); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// figures computes FRR, FAR, AUROC and the histograms over the labelled sets.
func (r *methodResult) figures(sets []*stripSet, dir metrics.Direction) error {
	var scores, cleanS, poisS []float64
	var flags, truth []bool
	type span struct {
		arg        string
		start, end int
	}
	var poisSets []span
	i := 0
	for _, s := range sets {
		if s.kind == "poisoned" {
			poisSets = append(poisSets, span{s.src.arg, i, i + s.imgs.Len()})
		}
		for j := 0; j < s.imgs.Len(); j, i = j+1, i+1 {
			if s.kind == "input" {
				continue
			}
			scores, flags, truth = append(scores, r.Scores[i]), append(flags, r.Flags[i]), append(truth, s.kind == "poisoned")
			if s.kind == "poisoned" {
				poisS = append(poisS, r.Scores[i])
			} else {
				cleanS = append(cleanS, r.Scores[i])
			}
		}
	}
	if len(scores) == 0 {
		return nil
	}
	det, err := metrics.Detect(flags, truth)
	if err != nil {
		return err
	}
	if det.Clean() > 0 {
		v := det.FRR()
		r.FRR = &v
	}
	if det.Poisoned() > 0 {
		v := det.FAR()
		r.FAR = &v
	}
	if r.Interval != nil {
		for e, thr := range []float64{r.Interval.Low, r.Interval.High} {
			at := make([]bool, len(scores))
			for k, v := range scores {
				at[k] = dir.Flags(float64(float32(v)), thr) // as the detectors flag
			}
			d, err := metrics.Detect(at, truth)
			if err != nil {
				return err
			}
			if d.Clean() > 0 {
				r.Interval.FRR[e] = d.FRR().Value()
			}
			if d.Poisoned() > 0 {
				r.Interval.FAR[e] = d.FAR().Value()
			}
		}
	}
	if det.Clean() > 0 && det.Poisoned() > 0 {
		a, err := metrics.AUROC(scores, truth, dir)
		if err != nil {
			return err
		}
		r.AUROC = &a
	}
	if len(poisSets) > 1 && det.Clean() > 0 {
		for _, ps := range poisSets {
			var sc []float64
			var fl, tr []bool
			for k := range r.Scores {
				if in := k >= ps.start && k < ps.end; in || isClean(sets, k) {
					sc, fl, tr = append(sc, r.Scores[k]), append(fl, r.Flags[k]), append(tr, in)
				}
			}
			d, err := metrics.Detect(fl, tr)
			if err != nil {
				return err
			}
			far := d.FAR()
			a, err := metrics.AUROC(sc, tr, dir)
			if err != nil {
				return err
			}
			r.Sets = append(r.Sets, setFigures{Set: ps.arg, FAR: &far, AUROC: &a})
		}
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range scores {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if hi <= lo {
		hi = lo + 1
	}
	hc, err := defence.NewHistogram(cleanS, 20, lo, hi)
	if err != nil {
		return err
	}
	hp, err := defence.NewHistogram(poisS, 20, lo, hi)
	if err != nil {
		return err
	}
	r.Hist = &stripHistogram{Edges: hc.Edges, Clean: hc.Counts, Poisoned: hp.Counts}
	return nil
}

// isClean reports whether input k belongs to a --clean set.
func isClean(sets []*stripSet, k int) bool {
	for _, s := range sets {
		if k < s.imgs.Len() {
			return s.kind == "clean"
		}
		k -= s.imgs.Len()
	}
	return false
}

func printStrip(c *cmdEnv, results []*methodResult, sets []*stripSet, asJSON, quiet bool) error {
	out := bufio.NewWriter(c.stdout)
	defer out.Flush()
	r := results[0]
	var inputs []stripInput
	for _, s := range sets {
		for j := 0; j < s.imgs.Len(); j++ {
			inputs = append(inputs, stripInput{Name: s.src.name(j, s.imgs.Name(j)), Set: s.kind})
		}
	}
	for i := range inputs {
		if i < len(r.Labels) {
			inputs[i].Label, inputs[i].Poisoned = r.Labels[i], r.Flags[i]
		}
	}
	if asJSON {
		doc := struct {
			*methodResult
			Inputs  []stripInput    `json:"inputs"`
			Methods []*methodResult `json:"methods,omitempty"`
		}{methodResult: r, Inputs: inputs}
		if len(results) > 1 {
			doc.Methods = results
		}
		if doc.Scores == nil {
			doc.Scores = []float64{}
		}
		enc := json.NewEncoder(out)
		return enc.Encode(doc)
	}
	if !quiet && len(results) == 1 {
		for i, in := range inputs {
			decision := "clean"
			if in.Poisoned {
				decision = "poisoned"
			}
			fmt.Fprintf(out, "%s\t%s\t%.6f\t%d\t%s\n", in.Name, in.Set, r.Scores[i], in.Label, decision)
		}
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "method\tthreshold\trule\tFRR\tFAR\tAUROC\t")
	for _, r := range results {
		name := r.Method
		if r.Overlays != nil {
			name += fmt.Sprintf(" (%.1f overlays/input)", *r.Overlays)
		}
		fmt.Fprintf(tw, "%s\t%.6f\t%s\t%s\t%s\t%s\t\n", name, r.Threshold, r.Rule, ratioOrDash(r.FRR), ratioOrDash(r.FAR), floatOrDash(r.AUROC))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		if iv := r.Interval; iv != nil {
			fmt.Fprintf(out, "%s: the threshold moves within [%.6g, %.6g] (%g bootstrap interval, %d resamples of the %d calibration scores)", r.Method, iv.Low, iv.High, iv.Level, iv.Resamples, iv.Calibration)
			if r.FRR != nil || r.FAR != nil {
				fmt.Fprintf(out, ": FRR %.3f to %.3f, FAR %.3f to %.3f on these inputs", iv.FRR[0], iv.FRR[1], iv.FAR[0], iv.FAR[1])
			}
			fmt.Fprintln(out)
		}
	}
	if len(r.Sets) == 0 {
		return nil
	}
	// FAR and AUROC per poisoned set, each method's threshold.
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	{
		fmt.Fprintln(tw, "poisoned set\tmethod\tFAR\tAUROC (vs all clean)\t")
		for _, ps := range r.Sets {
			for _, r := range results {
				for _, q := range r.Sets {
					if q.Set == ps.Set {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", ps.Set, r.Method, ratioOrDash(q.FAR), floatOrDash(q.AUROC))
					}
				}
			}
		}
	}
	return tw.Flush()
}

func ratioOrDash(r *metrics.Ratio) string {
	if r == nil {
		return "-"
	}
	return r.String()
}

func floatOrDash(f *float64) string {
	if f == nil {
		return "-"
	}
	return fmt.Sprintf("%.4f", *f)
}
