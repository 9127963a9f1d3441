package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/exporter"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// runDefend builds the combined BBD SavedModel (--badnet, --repaired,
// --out) or evaluates one (--model, --test, --poisoned).
func runDefend(c *cmdEnv, args []string) error {
	fs := c.flags
	badnet := fs.String("badnet", "", "the BadNet: a SavedModel written by bbd or a Keras HDF5 file")
	repaired := fs.String("repaired", "", "the repaired model (bbd prune --out, or bbd cleanse --unlearn --out)")
	arch := fs.String("arch", "", "architecture of weights-only Keras files (deepid)")
	targets := fs.String("targets", "", "suspect labels of the targeted defence, e.g. 0,4 (e.g. a Neural Cleanse scan's flagged labels)")
	untargeted := fs.Bool("untargeted", false, "the untargeted defence (the default when --targets is not given)")
	clean := fs.String("clean", "", "clean data (e.g. clean_validation_data.h5) to choose the confidence gap from; without it (and --max-gap) the decision reads the labels alone")
	gapFRR := fs.Float64("gap-frr", 0.01, "with --clean: share of the clean inputs the confidence gap may reject beyond those the labels reject (0: labels only)")
	maxGap := fs.Float64("max-gap", 0, "the confidence gap itself, in (0, 1), instead of choosing it with --clean")
	out := fs.String("out", "", "the combined SavedModel to write")
	overwrite := fs.Bool("overwrite", false, "replace an existing --out SavedModel")
	model := fs.String("model", "", "a combined SavedModel to evaluate")
	test := fs.String("test", "", "clean test data to evaluate on (competition HDF5 or image folder)")
	var poisoned repeated
	fs.Var(&poisoned, "poisoned", "poisoned data labelled with the target, relabelled N for the evaluation (repeatable)")
	asJSON := fs.Bool("json", false, "print one JSON document")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %v", pos)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	build := *badnet != "" || *repaired != "" || *out != ""
	eval := *model != "" || *test != "" || len(poisoned) > 0
	switch {
	case build && eval:
		return usagef("build (--badnet --repaired --out) or evaluate (--model --test --poisoned), not both")
	case build:
		if *badnet == "" || *repaired == "" || *out == "" {
			return usagef("building needs --badnet, --repaired and --out")
		}
		if *untargeted && *targets != "" {
			return usagef("--untargeted and --targets exclude each other")
		}
		switch {
		case !(*gapFRR >= 0 && *gapFRR < 1):
			return usagef("--gap-frr %v: expected a share of the clean inputs in [0, 1)", *gapFRR)
		case !(*maxGap >= 0 && *maxGap < 1):
			return usagef("--max-gap %v: expected a probability gap in (0, 1), or 0 for labels only", *maxGap)
		case set["max-gap"] && *clean != "":
			return usagef("--max-gap and --clean exclude each other (--clean chooses the gap)")
		case set["gap-frr"] && *clean == "":
			return usagef("--gap-frr needs --clean, the data to choose the gap from")
		}
		var cfg defence.BBDConfig
		if *targets != "" {
			if cfg.Targets, err = parseInts(*targets); err != nil {
				return usagef("--targets %q: %v", *targets, err)
			}
		}
		cfg.MaxGap = *maxGap
		gap := gapChoice{clean: *clean, frr: *gapFRR}
		if *clean == "" {
			gap.frr = 0
		}
		return buildBBD(c.stdout, c.stderr, *badnet, *repaired, *arch, cfg, gap, *out, *overwrite, *asJSON)
	case eval:
		if set["clean"] || set["gap-frr"] || set["max-gap"] {
			return usagef("--clean, --gap-frr and --max-gap are for building (--badnet --repaired --out)")
		}
		if *model == "" || *test == "" || len(poisoned) == 0 {
			return usagef("evaluating needs --model, --test and at least one --poisoned")
		}
		return evaluateBBD(c.stdout, *model, *test, poisoned, *asJSON)
	}
	return usagef("give --badnet, --repaired and --out to build, or --model, --test and --poisoned to evaluate")
}

// gapChoice is where the confidence gap comes from: frr > 0 chooses it
// from the clean data at that extra FRR.
type gapChoice struct {
	clean string
	frr   float64
}

func buildBBD(w, logw io.Writer, badnetPath, repairedPath, arch string, cfg defence.BBDConfig, gap gapChoice, out string, overwrite, asJSON bool) error {
	if err := exporter.CheckDestination(out, exporter.Options{Overwrite: overwrite}); err != nil {
		return err
	}
	bd, _, err := loadModel(badnetPath, modelOptions{Arch: arch})
	if err != nil {
		return err
	}
	defer bd.Close()
	rep, _, err := loadModel(repairedPath, modelOptions{Arch: arch})
	if err != nil {
		return err
	}
	defer rep.Close()
	b, err := defence.NewBBD(bd, rep, cfg)
	if err != nil {
		return err
	}
	defer func() { b.Close() }()
	if gap.frr > 0 {
		clean, err := loadImages([]string{gap.clean}, bd.InputShape)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		fmt.Fprintf(logw, "choosing the confidence gap on %d clean images of %s (extra FRR %g)\n", clean.Len(), gap.clean, gap.frr)
		if cfg.MaxGap, err = b.GapForFRR(ctx, clean, gap.frr); err != nil {
			return err
		}
		b.Close()
		if b, err = defence.NewBBD(bd, rep, cfg); err != nil {
			return err
		}
	}
	if err := b.Export(out, exporter.Options{Overwrite: overwrite}); err != nil {
		return err
	}
	if asJSON {
		doc := map[string]any{"out": out, "mode": cfg.Mode(), "targets": cfg.Targets, "classes": b.N,
			"badnet": badnetPath, "repaired": repairedPath, "max_gap": cfg.MaxGap}
		if gap.frr > 0 {
			doc["clean"], doc["gap_frr"] = gap.clean, gap.frr
		}
		return json.NewEncoder(w).Encode(doc)
	}
	fmt.Fprintf(w, "wrote %s: %s BBD of %s and %s; label %d means poisoned\n", out, cfg.Mode(), badnetPath, repairedPath, b.N)
	if cfg.MaxGap > 0 {
		fmt.Fprintf(w, "confidence gap %.4f: also poisoned where the BadNet's probability for its label exceeds the repaired model's by more\n", cfg.MaxGap)
	}
	return nil
}

// defendJSON is bbd defend's evaluation: the Table 4 figures.
type defendJSON struct {
	Model string `json:"model"`
	*defence.BBDEvaluation
}

func evaluateBBD(w io.Writer, modelPath, test string, poisoned []string, asJSON bool) error {
	if _, err := checkModelPath(modelPath); err != nil {
		return err
	}
	b, err := defence.LoadBBD(modelPath, tfmodels.LoadOptions{})
	if err != nil {
		return modelError(modelPath, err)
	}
	defer b.Close()
	clean, err := loadImages([]string{test}, b.Model.InputShape)
	if err != nil {
		return err
	}
	var sets []defence.EvalSet
	for _, p := range poisoned {
		imgs, err := loadImages([]string{p}, b.Model.InputShape)
		if err != nil {
			return err
		}
		sets = append(sets, defence.EvalSet{Name: filepath.Base(p), Data: imgs, Poisoned: true})
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	e, err := defence.EvaluateBBD(ctx, b, clean, sets)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(w, defendJSON{Model: modelPath, BBDEvaluation: e})
	}
	fmt.Fprintf(w, "%s BBD %s on %d clean and %d poisoned images (label %d = poisoned)\n", e.Mode, modelPath, e.CleanImages, e.PoisonedImages, e.Classes)
	if e.MaxGap > 0 {
		fmt.Fprintf(w, "confidence gap %.4f: judged poisoned although both networks agree: %d clean, %d poisoned inputs\n", e.MaxGap, e.GapFlaggedClean, e.GapFlaggedPoisoned)
	}
	fmt.Fprintf(w, "accuracy: %v\n", e.Accuracy)
	fmt.Fprintf(w, "frr: %.4f (clean inputs rejected / clean inputs; over all inputs, as the authors' notebook: %.4f)\n", e.FRR, e.FRRTotal)
	fmt.Fprintf(w, "far: %.4f (poisoned inputs accepted / poisoned inputs; over all inputs: %.4f)\n", e.FAR, e.FARTotal)
	fmt.Fprintf(w, "clean accuracy: %v   poisoned labelled %d: %v\n", e.CleanAccuracy, e.Classes, e.PoisonedAccuracy)
	names := make([]string, 0, len(e.AttackSuccess))
	for k := range e.AttackSuccess {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(w, "attack success (%s): %.4f\n", k, e.AttackSuccess[k])
	}
	fmt.Fprintf(w, "badnet alone: clean accuracy %.4f, attack success %.4f; repaired alone: %.4f, %.4f\n",
		e.BadNet.CleanAccuracy, e.BadNet.AttackSuccess, e.Repaired.CleanAccuracy, e.Repaired.AttackSuccess)
	p := e.Predicted
	fmt.Fprintf(w, "paper's equations: targeted clean (3) %.4f, poisoned (4) %.4f; untargeted clean (5) [%.4f, %.4f] %s, poisoned (6) [%.4f, %.4f] %s\n",
		p.TargetedClean, p.TargetedPoisoned, p.UntargetedClean[0], p.UntargetedClean[1], inside(e.InsideEq5),
		p.UntargetedPoisoned[0], p.UntargetedPoisoned[1], inside(e.InsideEq6))
	return nil
}

func inside(ok bool) string {
	if ok {
		return "(measured inside)"
	}
	return "(measured outside)"
}

// parseInts reads a comma list of non-negative integers.
func parseInts(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 0 {
			return nil, fmt.Errorf("expected non-negative integers, found %q", p)
		}
		out = append(out, v)
	}
	return out, nil
}
