package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bbd-workbench/bbd/internal/progress"
	"github.com/bbd-workbench/bbd/tfmodels"
	"github.com/bbd-workbench/bbd/zoo"
)

// runZoo: bbd zoo build --out <dir> [...]
func runZoo(c *cmdEnv, args []string) error {
	out := c.flags.String("out", "", "folder to create for the zoo (required; must not exist unless --overwrite)")
	reduced := c.flags.Bool("reduced", false, "build the reduced zoo (the test suite's: fewer images and epochs)")
	train := c.flags.Int("train", 0, "training images drawn from Fashion-MNIST's 60,000 (0: the config's)")
	epochs := c.flags.Int("epochs", 0, "training epochs (0: the config's)")
	seed := c.flags.Uint64("seed", 1, "seed of every random choice (splits, poisoning, weights, shuffling)")
	only := c.flags.String("only", "", "comma-separated BadNets to build (default all: sunglasses,anonymous_1,anonymous_2,multi_trigger)")
	fmnist := c.flags.String("fashion-mnist", "", "Fashion-MNIST IDX folder (default /usr/share/datasets/fashion-mnist)")
	overwrite := c.flags.Bool("overwrite", false, "replace an existing zoo folder")
	// The flags are defined before the subcommand is checked, so that the
	// usage printed for "bbd zoo", "bbd zoo -h" or a wrong subcommand lists them.
	if len(args) == 0 || args[0] != "build" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return flag.ErrHelp
		}
		return usagef("expected the subcommand build")
	}
	pos, err := c.parse(args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 0 || *out == "" {
		return usagef("expected --out <dir> and no other arguments")
	}
	cfg := zoo.FullConfig()
	if *reduced {
		cfg = zoo.ReducedConfig()
	}
	if *train > 0 {
		cfg.TrainSize = *train
	}
	if *epochs > 0 {
		cfg.Epochs = *epochs
	}
	cfg.Seed = *seed
	cfg.FashionMNIST = *fmnist
	cfg.Overwrite = *overwrite
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
	}
	if _, err := os.Stat(*out); err == nil && !*overwrite {
		return fmt.Errorf("zoo destination %s exists: nothing written (use --overwrite to replace it)", *out)
	}
	cfg.Log = c.stderr
	var bar *progress.Bar
	var current string
	cfg.Progress = func(name string, p tfmodels.TrainProgress) {
		if name != current || bar == nil {
			if bar != nil {
				bar.Finish()
			}
			current = name
			bar = progress.New(c.stderr, "train "+name, int64(p.Epochs*p.Batches))
		}
		bar.Add(1)
	}
	man, err := zoo.Build(*out, cfg)
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return err
	}
	w := c.stdout
	fmt.Fprintf(w, "zoo written to %s (manifest.json)\n", *out)
	fmt.Fprintf(w, "%-14s %-14s %8s  %s\n", "badnet", "clean acc", "train s", "attack success")
	for _, b := range man.BadNets {
		var sets []string
		for set := range b.AttackSuccess {
			sets = append(sets, set)
		}
		sort.Strings(sets)
		var asr []string
		for _, set := range sets {
			asr = append(asr, fmt.Sprintf("%s %.4f", filepath.Base(set), b.AttackSuccess[set]))
		}
		fmt.Fprintf(w, "%-14s %-14.4f %8.0f  %s\n", b.Name, b.CleanAccuracy, b.TrainSeconds, strings.Join(asr, ", "))
	}
	return nil
}
