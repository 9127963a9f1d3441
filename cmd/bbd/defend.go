package main

import (
	"context"
	"encoding/json"
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
		var cfg defence.BBDConfig
		if *targets != "" {
			if cfg.Targets, err = parseInts(*targets); err != nil {
				return usagef("--targets %q: %v", *targets, err)
			}
		}
		return buildBBD(c.stdout, *badnet, *repaired, *arch, cfg, *out, *overwrite, *asJSON)
	case eval:
		if *model == "" || *test == "" || len(poisoned) == 0 {
			return usagef("evaluating needs --model, --test and at least one --poisoned")
		}
		return evaluateBBD(c.stdout, *model, *test, poisoned, *asJSON)
	}
	return usagef("give --badnet, --repaired and --out to build, or --model, --test and --poisoned to evaluate")
}

func buildBBD(w io.Writer, badnetPath, repairedPath, arch string, cfg defence.BBDConfig, out string, overwrite, asJSON bool) error {
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
	defer b.Close()
	if err := b.Export(out, exporter.Options{Overwrite: overwrite}); err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(w).Encode(map[string]any{"out": out, "mode": cfg.Mode(), "targets": cfg.Targets, "classes": b.N,
			"badnet": badnetPath, "repaired": repairedPath})
	}
	fmt.Fprintf(w, "wrote %s: %s BBD of %s and %s; label %d means poisoned\n", out, cfg.Mode(), badnetPath, repairedPath, b.N)
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
