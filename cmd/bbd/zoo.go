package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

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
	only := c.flags.String("only", "", "comma-separated models to build (default all: sunglasses,anonymous_1,anonymous_2,multi_trigger,clean)")
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
	// Epoch and model lines go to stderr above the training bar: each one
	// first clears the bar's line (on a terminal), and the bar redraws below.
	cfg.Log = &aboveBar{w: c.stderr, tty: progress.IsTerminal(c.stderr)}
	var bar *progress.Bar
	var current string
	cfg.Progress = func(name string, p tfmodels.TrainProgress) {
		if name != current || bar == nil {
			bar.Finish()
			current = name
			bar = progress.New(c.stderr, fmt.Sprintf("%s: training batches of %d", name, cfg.BatchSize), int64(p.Epochs*p.Batches))
		}
		bar.Add(1)
		if p.Epoch == p.Epochs && p.Batch == p.Batches {
			bar.Finish() // before the last epoch's line
		}
	}
	man, err := zoo.Build(*out, cfg)
	bar.Finish()
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(c.stdout, "zoo written to %s (manifest.json)\n", *out)
	fmt.Fprintln(w, "model\tclean accuracy\ttraining\tattack success")
	for _, b := range man.BadNets {
		var asr []string
		for _, tt := range b.Triggers {
			if r, ok := b.AttackSuccess[tt.Trigger.Name]; ok {
				s := fmt.Sprintf("%s -> %d: %v", tt.Trigger.Name, tt.Target, r)
				if n, ok := b.NaturalSuccess[tt.Trigger.Name]; ok {
					s += fmt.Sprintf(" (clean model %.4f)", n.Value())
				}
				asr = append(asr, s)
			}
		}
		if b.Clean() {
			asr = []string{"none (no trigger: the clean reference model)"}
		}
		fmt.Fprintf(w, "%s\t%v\t%.0f s\t%s\n", b.Name, b.CleanAccuracy, b.TrainSeconds, strings.Join(asr, ", "))
	}
	return w.Flush()
}

// aboveBar writes log lines to a terminal that may show a progress bar on
// its last line: each write first returns to the start of the line and
// clears it. On anything else it writes as is.
type aboveBar struct {
	w   io.Writer
	tty bool
}

func (a *aboveBar) Write(p []byte) (int, error) {
	if a.tty {
		if _, err := io.WriteString(a.w, "\r\033[K"); err != nil {
			return 0, err
		}
	}
	return a.w.Write(p)
}
