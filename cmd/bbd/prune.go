package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/exporter"
	"github.com/bbd-workbench/bbd/internal/progress"
	"github.com/bbd-workbench/bbd/internal/safefs"
)

// pruneEntry is one point of the prune report as the CLI prints it.
type pruneEntry struct {
	CleanAccuracy   float64            `json:"clean_accuracy"`
	HoldOutAccuracy float64            `json:"holdout_accuracy"`
	AttackSuccess   map[string]float64 `json:"attack_success"`
}

// pruneJSON is bbd prune's report (--json, and <out>.report.json).
type pruneJSON struct {
	Model  string   `json:"model"`
	Out    string   `json:"out"`
	Method string   `json:"method"`
	Layers []string `json:"layers"`
	// Fraction is the chosen fraction; the top-level figures are the
	// repaired model's.
	Fraction     float64 `json:"fraction"`
	Rule         string  `json:"rule"`
	WithinBudget bool    `json:"within_budget"`
	// CleanAccuracy is on --test when given, otherwise on the held-out clean
	// data (CleanSource says which).
	CleanSource     string             `json:"clean_source"`
	CleanAccuracy   float64            `json:"clean_accuracy"`
	HoldOutAccuracy float64            `json:"holdout_accuracy"`
	AttackSuccess   map[string]float64 `json:"attack_success"`
	Original        pruneEntry         `json:"original"`
	Sweep           []struct {
		Fraction  float64    `json:"fraction"`
		Pruned    pruneEntry `json:"pruned"`
		FineTuned pruneEntry `json:"fine_tuned"`
		Seconds   float64    `json:"seconds"`
	} `json:"sweep"`
	// Refit, with --refit, is the returned model: the chosen fraction
	// fine-tuned again on all the clean data (no held-out figure).
	Refit    *pruneEntry `json:"refit,omitempty"`
	FineTune any         `json:"fine_tune"`
	Seconds  float64     `json:"seconds"`
}

func runPrune(c *cmdEnv, args []string) error {
	fs := c.flags
	model := fs.String("model", "", "the BadNet: a SavedModel written by bbd or a Keras HDF5 file")
	arch := fs.String("arch", "", "architecture of a weights-only Keras file (deepid)")
	clean := fs.String("clean", "", "the defender's clean data (competition HDF5 or image folder): scored, fine-tuned on, a share held out")
	test := fs.String("test", "", "clean test data, measured for the report")
	var poisoned repeated
	fs.Var(&poisoned, "poisoned", "poisoned data labelled with the target, measured for the report (repeatable)")
	method := fs.String("method", defence.PruneUnit, "unit, channel or weight")
	fractions := fs.String("fractions", "", "fractions to sweep: FROM:TO:STEP or a comma list (default 0.5:0.95:0.05)")
	fraction := fs.Float64("fraction", 0, "prune this fraction only (no sweep)")
	auto := fs.Bool("auto", false, "choose the fraction automatically (the default when --fraction is not given)")
	layers := fs.String("layers", "", "comma list of layers to prune (default: see bbd help prune)")
	epochs := fs.Int("epochs", 0, "fine-tuning epochs (default 20; weight: 10)")
	batch := fs.Int("batch", 0, "fine-tuning batch size (default 64; weight: 128)")
	lr := fs.Float64("lr", 0, "fine-tuning learning rate (default 1e-3)")
	holdout := fs.Float64("holdout", 0, "share of the clean data held out from fine-tuning for the choice (default 0.2)")
	distill := fs.Float64("distill", 0, "fine-tune on labels mixed with this weight of the unpruned model's predictions (0: labels only)")
	occlude := fs.Float64("occlude", defence.DefaultOcclude, "probability that a fine-tuning image gets a random rectangle of a random colour (random erasing; 0: plain images, the authors' fine-tuning)")
	refit := fs.Bool("refit", false, "after the choice, fine-tune the chosen fraction again on all the clean data (held-out part included) and write that model")
	maxDrop := fs.Float64("max-drop", 0, "automatic rule: largest fraction whose held-out accuracy drops at most this much (default 0.02)")
	seed := fs.Uint64("seed", 1, "seed of the held-out split and the fine-tuning shuffles")
	out := fs.String("out", "", "the repaired SavedModel to write (its report goes to <out>.report.json)")
	overwrite := fs.Bool("overwrite", false, "replace an existing --out SavedModel and report")
	asJSON := fs.Bool("json", false, "print the report as one JSON document")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %v", pos)
	}
	if *model == "" || *clean == "" || *out == "" {
		return usagef("--model, --clean and --out are required")
	}
	if *auto && *fraction > 0 {
		return usagef("--auto and --fraction exclude each other")
	}
	cfg := defence.FinePruneConfig{Method: *method, Fraction: *fraction, HoldOut: *holdout, MaxAccuracyDrop: *maxDrop, Distill: *distill, Refit: *refit, Seed: *seed}
	cfg.FineTune.Epochs, cfg.FineTune.BatchSize, cfg.FineTune.Optimizer.LearningRate = *epochs, *batch, *lr
	switch {
	case *occlude < 0 || *occlude > 1 || math.IsNaN(*occlude):
		return usagef("--occlude %v: want a probability in [0, 1]", *occlude)
	case *occlude == 0:
		cfg.Occlude = defence.NoOcclusion
	default:
		cfg.Occlude = *occlude
	}
	if *layers != "" {
		cfg.Layers = strings.Split(*layers, ",")
	}
	if *fractions != "" {
		if cfg.Fractions, err = parseFractions(*fractions); err != nil {
			return usagef("--fractions %q: %v", *fractions, err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	report := *out + ".report.json"
	if err := exporter.CheckDestination(*out, exporter.Options{Overwrite: *overwrite}); err != nil {
		return err
	}
	if err := checkFileDestination(report, *overwrite); err != nil {
		return err
	}

	m, _, err := loadModel(*model, modelOptions{Arch: *arch})
	if err != nil {
		return err
	}
	defer m.Close()
	if !m.WhiteBox() {
		return fmt.Errorf("%s: fine-pruning needs a white-box model (a Keras HDF5 file or a SavedModel written by bbd)", *model)
	}
	val, err := loadImages([]string{*clean}, m.InputShape)
	if err != nil {
		return err
	}
	var evals []defence.EvalSet
	if *test != "" {
		imgs, err := loadImages([]string{*test}, m.InputShape)
		if err != nil {
			return err
		}
		evals = append(evals, defence.EvalSet{Name: filepath.Base(*test), Data: imgs})
	}
	for _, p := range poisoned {
		imgs, err := loadImages([]string{p}, m.InputShape)
		if err != nil {
			return err
		}
		evals = append(evals, defence.EvalSet{Name: filepath.Base(p), Data: imgs, Poisoned: true})
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	bar := pruneBar(c.stderr, cfg, val.Len())
	cfg.Progress = func(p defence.PruneProgress) {
		if (p.Stage == "fine-tuning" || p.Stage == "refitting") && p.Train.Batch > 0 {
			bar.Add(1)
		}
	}
	repaired, rep, err := defence.FinePrune(ctx, m, val, evals, cfg)
	bar.Finish()
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted: nothing written")
	}
	if err != nil {
		return err
	}
	defer repaired.Close()
	js := pruneReport(*model, *out, rep, *test)
	raw, err := json.MarshalIndent(js, "", "  ")
	if err != nil {
		return err
	}
	if err := exporter.WriteModel(*out, repaired, exporter.Options{Overwrite: *overwrite}); err != nil {
		return err
	}
	if err := safefs.WriteFile(report, append(raw, '\n'), 0o644, *overwrite); err != nil {
		return fmt.Errorf("writing the report %s: %w", report, err)
	}
	if *asJSON {
		_, err := fmt.Fprintln(c.stdout, string(raw))
		return err
	}
	printPrune(c.stdout, js, report)
	return nil
}

// pruneBar counts fine-tuning batches over the whole sweep.
func pruneBar(w io.Writer, cfg defence.FinePruneConfig, n int) *progress.Bar {
	cfg = cfg.WithDefaults()
	points := len(cfg.Fractions)
	if cfg.Fraction > 0 || cfg.Method == defence.PruneWeight {
		points = 1
	}
	tune, batch := n-cfg.HeldOut(n), cfg.FineTune.BatchSize
	total := points * cfg.FineTune.Epochs * ((tune + batch - 1) / batch)
	if cfg.Refit && cfg.Method != defence.PruneWeight {
		total += cfg.FineTune.Epochs * ((n + batch - 1) / batch)
	}
	return progress.New(w, "prune (batches)", int64(total))
}

func pruneReport(model, out string, r *defence.FinePruneReport, test string) *pruneJSON {
	entry := func(s defence.PruneScores) pruneEntry {
		e := pruneEntry{HoldOutAccuracy: s.HoldOutAccuracy, AttackSuccess: s.AttackSuccess, CleanAccuracy: s.HoldOutAccuracy}
		if test != "" {
			e.CleanAccuracy = s.CleanAccuracy[filepath.Base(test)]
		}
		return e
	}
	js := &pruneJSON{Model: model, Out: out, Method: r.PruneMethod, Layers: r.Layers, Fraction: r.Fraction, Rule: r.Rule, WithinBudget: r.WithinBudget,
		Original: entry(r.Original), FineTune: r.FineTune, Seconds: r.Seconds}
	chosen := entry(r.Chosen)
	js.CleanAccuracy, js.HoldOutAccuracy, js.AttackSuccess = chosen.CleanAccuracy, chosen.HoldOutAccuracy, chosen.AttackSuccess
	js.CleanSource = "held-out clean data"
	if test != "" {
		js.CleanSource = filepath.Base(test)
	}
	if r.Refit != nil {
		// Nothing was held out of the refit, so its held-out figure (and,
		// without --test, its clean accuracy) is zero.
		e := entry(*r.Refit)
		if test == "" {
			js.CleanSource = "held-out clean data, measured before the refit fine-tuned on it"
		} else {
			js.CleanAccuracy = e.CleanAccuracy
		}
		js.AttackSuccess = e.AttackSuccess
		js.Refit = &e
	}
	for _, p := range r.Sweep {
		js.Sweep = append(js.Sweep, struct {
			Fraction  float64    `json:"fraction"`
			Pruned    pruneEntry `json:"pruned"`
			FineTuned pruneEntry `json:"fine_tuned"`
			Seconds   float64    `json:"seconds"`
		}{p.Fraction, entry(p.Pruned), entry(p.FineTuned), p.Seconds})
	}
	return js
}

func printPrune(w io.Writer, js *pruneJSON, report string) {
	fmt.Fprintf(w, "%s fine-pruning of %s (layers %s)\n", js.Method, js.Model, strings.Join(js.Layers, ", "))
	var poisoned []string
	for k := range js.Original.AttackSuccess {
		poisoned = append(poisoned, k)
	}
	sort.Strings(poisoned)
	fmt.Fprintf(w, "%-10s %-22s %-22s", "fraction", "clean acc pruned/tuned", "held-out pruned/tuned")
	for _, p := range poisoned {
		fmt.Fprintf(w, " %s (attack) pruned/tuned", p)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-10s %-22s %-22s", "original", fmt.Sprintf("%.4f", js.Original.CleanAccuracy), fmt.Sprintf("%.4f", js.Original.HoldOutAccuracy))
	for _, p := range poisoned {
		fmt.Fprintf(w, " %.4f", js.Original.AttackSuccess[p])
	}
	fmt.Fprintln(w)
	for _, s := range js.Sweep {
		fmt.Fprintf(w, "%-10.2f %-22s %-22s", s.Fraction, fmt.Sprintf("%.4f / %.4f", s.Pruned.CleanAccuracy, s.FineTuned.CleanAccuracy),
			fmt.Sprintf("%.4f / %.4f", s.Pruned.HoldOutAccuracy, s.FineTuned.HoldOutAccuracy))
		for _, p := range poisoned {
			fmt.Fprintf(w, " %.4f / %.4f", s.Pruned.AttackSuccess[p], s.FineTuned.AttackSuccess[p])
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "chosen: fraction %.2f (%s)\n", js.Fraction, js.Rule)
	if js.Refit != nil {
		fmt.Fprintf(w, "refit: fraction %.2f fine-tuned again on all the clean data; the figures below are that model's\n", js.Fraction)
	}
	fmt.Fprintf(w, "clean accuracy (%s): %.4f\n", js.CleanSource, js.CleanAccuracy)
	for _, p := range poisoned {
		fmt.Fprintf(w, "attack success (%s): %.4f\n", p, js.AttackSuccess[p])
	}
	fmt.Fprintf(w, "wrote %s and %s (%.0f s)\n", js.Out, report, js.Seconds)
}

// parseFractions reads FROM:TO:STEP or a comma list.
func parseFractions(s string) ([]float64, error) {
	if parts := strings.Split(s, ":"); len(parts) == 3 {
		var v [3]float64
		for i, p := range parts {
			f, err := strconv.ParseFloat(p, 64)
			if err != nil {
				return nil, err
			}
			v[i] = f
		}
		if v[2] <= 0 || v[1] < v[0] {
			return nil, fmt.Errorf("expected FROM <= TO and STEP > 0")
		}
		var out []float64
		for i := 0; ; i++ {
			f := v[0] + float64(i)*v[2]
			if f > v[1]+1e-9 {
				break
			}
			out = append(out, float64(int(f*1e6+0.5))/1e6)
		}
		return out, nil
	}
	var out []float64
	for _, p := range strings.Split(s, ",") {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// checkFileDestination refuses an existing path unless overwrite, and then
// replaces only a regular file; called before any long work starts.
func checkFileDestination(path string, overwrite bool) error {
	return safefs.Check(path, overwrite, safefs.IsRegularFile)
}
