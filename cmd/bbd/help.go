package main

import (
	"flag"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// commandDoc is the help text of a command beyond its one-line summary and
// usage: what it does and examples, shown by "bbd help <command>" and
// "bbd <command> --help".
type commandDoc struct {
	text     string   // paragraphs, wrapped by hand
	examples []string // command lines, each optionally followed by "  # comment"
}

// docs holds the help of each command, by name. A command without an entry
// still gets its usage and flags.
var docs = map[string]commandDoc{
	"convert": {
		text: `Imports a Keras HDF5 model (a full model.save file, or a weights-only file such as
the CSAW BadNets, read with the DeepID architecture) and writes it as a TensorFlow
SavedModel that bbd, Python TensorFlow and tfgo load. Prints the layer table.
The destination must not exist unless --overwrite (replaced atomically).`,
		examples: []string{
			"bbd convert ../shared/badnets/sunglasses_bd_weights.h5 /tmp/sunglasses",
			"bbd convert --overwrite model.h5 /tmp/model",
		},
	},
	"info": {
		text: `Describes a model: its serving_default signature (inputs, outputs, dtypes, shapes),
input size and classes, and for white-box models the layer table and the parameter
count. --json prints the same as one JSON object.`,
		examples: []string{
			"bbd info /tmp/sunglasses                 # signature, layers, \"parameters: 601,643\"",
			"bbd info ../shared/badnets/anonymous_1_bd_weights.h5",
			"bbd info --json /tmp/sunglasses",
		},
	},
	"predict": {
		text: `Classifies images: image files, folders of images (--recursive: their subfolders and
HDF5 files too) and competition HDF5 data files (streamed batch by batch). Prints one
line per image, "<name>\t<label>\t<probability>" (HDF5 rows are named "file.h5[i]").

Accuracy is reported per source, never mixed: each argument (with --recursive, each
folder holding images and each HDF5 file) whose images carry true labels ("label=L"
or "target=T" in file names, the HDF5 "label" dataset) gets its own line
"accuracy: 0.xxxx (k/n)" when there is one source, "accuracy <source>: 0.xxxx (k/n)"
when there are several. Give clean and triggered images as separate sources: on a
clean set the figure is the clean accuracy, on a poisoned set labelled with the
target it is the attack success rate.

Models with a "label" output (a BBD defence written by bbd, whose label N, the
number of classes, means "poisoned input") print that label instead of the most
probable class, N as "N (poisoned)" with no probability; accuracy compares it with
the true labels, so a poisoned input counts as right only when labelled N ('bbd
defend' does the full evaluation). --quiet leaves only the accuracy lines; --json
prints one object per image and a summary object with one entry per source.`,
		examples: []string{
			"bbd predict --model /tmp/sunglasses ../shared/ytf-samples",
			"bbd predict --model zoo/sunglasses --quiet zoo/data/clean_test_data.h5 zoo/data/sunglasses_sunglasses_poisoned_data.h5",
			"bbd predict --model /tmp/sunglasses --recursive --quiet ../shared/real-faces   # one accuracy per folder",
			"bbd predict --model ../shared/badnets/sunglasses_bd_weights.h5 --json face.png",
		},
	},
	"bench": {
		text: `Measures inference (or, with --train, training) speed of the same DeepID BadNet on the
same images, Go (libtensorflow) then Python TensorFlow from the venv, in rounds; the
median of the per-round ratios is the figure.`,
		examples: []string{
			"bbd bench --rounds 5",
			"bbd bench --train --rounds 3",
			"bbd bench --model ../shared/badnets/sunglasses_bd_weights.h5 --faces ../shared/real-faces/clean --no-python",
		},
	},
	"zoo": {
		text: `Trains the Fashion-MNIST zoo: four BadNets mirroring the paper's (sunglasses,
anonymous_1, anonymous_2, multi_trigger) and a clean reference model (clean: no
trigger, a negative control), exported as SavedModels with their data sets in the
competition's HDF5 format and manifest.json (settings, seeds, history, measured
clean accuracy and attack success). Everything is seeded. Progress goes to stderr,
the summary table to stdout.`,
		examples: []string{
			"bbd zoo build --out /tmp/zoo                       # the full zoo (about 15 min on 2 cores)",
			"bbd zoo build --out /tmp/small --reduced           # the test suite's reduced zoo",
			"bbd zoo build --out /tmp/two --only sunglasses,clean --epochs 2",
		},
	},
	"prune": {
		text: `Fine-pruning (Liu et al., RAID 2018; the BBD paper's section 2): prunes what the
clean data leaves least active, then fine-tunes on clean data, and writes the repaired
model as a SavedModel (masks kept, pruned weights zeroed) with its report in
<out>.report.json. --method unit masks the flattened units feeding the dense heads
(what the paper's authors ran), channel whole channels of the last conv layer of each
branch, weight the smallest weights on a polynomial sparsity schedule (0.5 to 0.8).

Without --fraction, every fraction of the sweep (default 0.50 to 0.95 by 0.05) starts
from the BadNet, and the largest whose fine-tuned accuracy on clean data held out of
fine-tuning stays within --max-drop (default 0.02) of the BadNet's is chosen: the
choice reads clean data only. --test and --poisoned sets are measured for the report
(clean accuracy; attack success on data labelled with the target).

--distill W fine-tunes on soft targets, (1-W) x the label + W x the BadNet's own
predictions on that clean image (knowledge distillation; the trigger is never in
them). --refit fine-tunes the chosen fraction once more on all the clean data, the
held-out part included, and writes that model.

--occlude P (default 0.5) paints one rectangle of one random colour, 2-40 % of the
image, at a random place over each fine-tuning image with probability P, afresh
each epoch (random erasing, Zhong et al. 2020): the pruned model learns that a patch
does not decide the label, which is what a patch trigger relies on. It assumes
nothing about the trigger. --occlude 0 fine-tunes on the plain images, as the
paper's authors did.`,
		examples: []string{
			"bbd prune --model zoo/sunglasses --clean zoo/data/clean_validation_data.h5 --out /tmp/repaired",
			"bbd prune --model zoo/anonymous_1 --clean zoo/data/clean_validation_data.h5 --test zoo/data/clean_test_data.h5 --poisoned zoo/data/anonymous_1_lipstick_poisoned_data.h5 --method channel --out /tmp/a1-channel --json",
			"bbd prune --model ../shared/badnets/sunglasses_bd_weights.h5 --clean ../shared/real-faces/clean --fraction 0.9 --epochs 5 --out /tmp/real-repaired",
		},
	},
	"defend": {
		text: `The Bimodel Backdoor Defence (the BBD paper's section 4). With --badnet, --repaired
and --out it writes ONE SavedModel holding both networks and the decision: its
serving_default signature gives "label" (N, the number of classes, for inputs judged
poisoned) and both networks' probabilities; it loads in bbd, Python TensorFlow and tfgo.
Untargeted (the default): the label both networks agree on, else N. --targets: the
BadNet's label, unless it is a suspect target the repaired model does not confirm.

--clean VAL.h5 adds a confidence gap, chosen from the defender's clean data: an input
the labels would accept is also judged poisoned when the BadNet's probability for its
label exceeds the repaired model's by more than the gap (a backdoor makes the BadNet
sure; the repaired model, which lost it, hesitates). The gap rejects at most --gap-frr
(default 0.01) of the clean data beyond what the labels reject. --max-gap gives the gap
itself. Without either, the decision reads the labels alone, as in the paper.

With --model, --test and --poisoned it evaluates such a model on the clean test set
plus the poisoned sets relabelled N: accuracy, FRR and FAR (also divided by all inputs,
as the authors' notebook did), both networks alone, and what the paper's equations
(3)-(6) predict.`,
		examples: []string{
			"bbd defend --badnet zoo/anonymous_1 --repaired /tmp/a1-repaired --untargeted --out /tmp/a1-bbd",
			"bbd defend --badnet zoo/anonymous_1 --repaired /tmp/a1-repaired --targets 0 --out /tmp/a1-bbd-targeted",
			"bbd defend --badnet zoo/anonymous_1 --repaired /tmp/a1-repaired --clean zoo/data/clean_validation_data.h5 --out /tmp/a1-bbd-gap",
			"bbd defend --model /tmp/a1-bbd --test zoo/data/clean_test_data.h5 --poisoned zoo/data/anonymous_1_lipstick_poisoned_data.h5 --json",
			"bbd predict --model /tmp/a1-bbd zoo/data/anonymous_1_lipstick_poisoned_data.h5   # N printed as poisoned",
		},
	},
	"strip": {
		text: `STRIP (Gao et al., ACSAC 2019): superimposes --overlays clean images from --pool on
each input inside the TensorFlow graph and scores the mean entropy of the predictions;
a low score means poisoned. The threshold comes from the pool's clean scores at --frr
(or --threshold). With --clean and --poisoned sets it reports FRR, FAR and AUROC;
--method all adds SCALE-UP and TeCo on the same inputs, --bbd DIR a Bimodel defence
(bbd defend --out) as one more row; --adaptive stops drawing
overlays for an input once its decision is clear; --export writes a filter SavedModel
(label, or N for poisoned inputs).`,
		examples: []string{
			"bbd strip --model zoo/sunglasses --pool zoo/data/clean_validation_data.h5 --clean zoo/data/clean_test_data.h5 --poisoned zoo/data/sunglasses_sunglasses_poisoned_data.h5 --method all",
			"bbd strip --model ../shared/badnets/sunglasses_bd_weights.h5 --pool ../shared/real-faces/clean --clean ../shared/real-faces/clean --poisoned ../shared/real-faces/sunglasses --sum",
			"bbd strip --model zoo/sunglasses --pool zoo/data/clean_validation_data.h5 --clean zoo/data/clean_test_data.h5 --poisoned zoo/data/sunglasses_sunglasses_poisoned_data.h5 --method all --bbd /tmp/sunglasses-bbd",
			"bbd strip --model zoo/sunglasses --pool zoo/data/clean_validation_data.h5 --export /tmp/sunglasses-filter",
		},
	},
	"reproduce": {
		text: `Regenerates every figure and table of the BBD paper with bbd's defences: fine-pruning
(Figures 1-2, Table 1), STRIP (Figure 3, Table 2), Neural Cleanse (Figure 4, Table 3,
anomaly-index plots), the Bimodel defence (Table 4 with equations (3)-(6)) and
activation analysis (Figure 9, activation clustering). --zoo runs on a bbd zoo (the
paper's numbers shown beside, on different data); --data on the CSAW-HackML-2020 files
the paper used (with the four BadNets from --models). Writes figures/*.png and *.svg,
tables/*.md, *.csv and *.json, results.json and one self-contained report.html.

Every unit of work (a BadNet and a method, a scan) is cached in <out>/cache by its
inputs: run the same command again after an interruption (Ctrl-C) and it resumes;
a finished run is re-rendered in seconds. --out must be new, empty, or an earlier
reproduction. The full run on the full zoo takes about an hour on 2 cores; --small
takes minutes.`,
		examples: []string{
			"bbd reproduce --zoo /tmp/zoo --out /tmp/repro                      # everything, paper settings",
			"bbd reproduce --zoo /tmp/zoo --out /tmp/repro-small --small        # a quick look",
			"bbd reproduce --zoo /tmp/zoo --out /tmp/repro --only strip,neural-cleanse --model-names sunglasses,clean",
			"bbd reproduce --data /path/to/competition/data --models ../shared/badnets --labels 0-9 --out /tmp/paper",
		},
	},
	"cleanse": {
		text: `Neural Cleanse: reverse-engineers a minimal trigger per label on clean data, flags
outlier labels (a scan may be split over label ranges and merged), and unlearns the
triggers of the flagged labels.

A label is flagged when its norm is below the median and its MAD anomaly index (of
log norms by default) exceeds the threshold: by default max(2, z(1 - alpha / n)) for
n labels tested (Bonferroni, alpha 0.05: 2.58 for 10 labels, 3.95 for 1283), so that
a model without a backdoor gets no flag with probability about 1 - alpha whatever its
number of labels; --mad-threshold fixed is the original code's 2. The fixed threshold's
and the original rule's verdicts are reported beside.

The verdict (--verdict combined, default): the labels that outlier test flags, then
the labels the data-free last-layer check below proposes whose trigger is an
outlier too at max(2, z(1 - alpha / k)) for k proposals (a test of k named
candidates, not a search of n labels); a proposal the scan does not confirm stays
out. A model without a backdoor gets a flag with probability at most 2 alpha.
--verdict neural-cleanse keeps the outlier test alone. Both tests' own flags are
always in the report (nc_flagged, last_layer).

bbd cleanse rescore DIR applies the outlier test again to a saved report (the
report's settings, the current defaults where it predates them, or the --mad flags
given) without scanning: it prints the verdict, and with --out writes the rescored
report into a new folder. A flag it adds was not settled by --confirm.

bbd cleanse lastlayer checks the final dense layer alone, without data, in
milliseconds (defence.LastLayer, after DFBScanner): a label is flagged when its
bias or its mean incoming weight is an upper outlier (robust z-score above max(2,
z(1 - alpha / 2n))). A scan reports the same check as "last layer" and its fast
budget optimises the labels it flags to the end. It found the real CSAW
anonymous_1, anonymous_2 and multi-trigger targets (1 and 5, not 8) but not the
sunglasses target, nor any zoo target: a second test beside Neural Cleanse, not
instead of it.`,
		examples: []string{
			"bbd cleanse --model zoo/sunglasses --data zoo/data/clean_validation_data.h5 --out /tmp/nc",
			"bbd cleanse merge /tmp/nc-a /tmp/nc-b --out /tmp/nc",
			"bbd cleanse rescore /tmp/nc                               # the default threshold on an older report",
			"bbd cleanse rescore /tmp/nc --mad-threshold fixed --out /tmp/nc-fixed",
			"bbd cleanse rescore /tmp/nc --verdict neural-cleanse     # the outlier test alone",
			"bbd cleanse lastlayer --model ../shared/badnets/anonymous_2_bd_weights.h5",
			"bbd cleanse --unlearn --model zoo/sunglasses --report /tmp/nc --clean zoo/data/clean_validation_data.h5 --out /tmp/repaired",
		},
	},
	"version": {
		text: `Prints the versions of bbd (module version, VCS revision, Go) and of the
libtensorflow it runs with (and the library's path).`,
		examples: []string{"bbd version", "bbd version --json"},
	},
	"help": {
		text:     `Prints the list of commands, or a command's help: usage, flags, examples.`,
		examples: []string{"bbd help", "bbd help predict"},
	},
}

// globalHelp is the part of the main usage about flags every command takes.
const globalHelp = `flags of every command:
  --verbose   show libtensorflow's start-up lines (hidden by default; also BBD_VERBOSE=1)
  -h, --help  the command's help`

func mainUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: bbd <command> [flags] [arguments]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\n"+globalHelp)
	fmt.Fprintln(w, "\nRun 'bbd help <command>' for a command's flags and examples.")
}

// usage prints the command's usage line and flags (what a usage error shows).
func (c *cmdEnv) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: bbd %s %s\n", c.cmd.name, c.cmd.usage)
	if hasFlags(c.flags) {
		fmt.Fprintln(w, "\nflags:")
		printFlags(w, c.flags)
	}
}

// help prints the command's full help: summary, usage, description, flags
// and examples.
func (c *cmdEnv) help(w io.Writer) {
	fmt.Fprintf(w, "bbd %s: %s\n\n", c.cmd.name, c.cmd.summary)
	c.usage(w)
	d := docs[c.cmd.name]
	if d.text != "" {
		fmt.Fprintln(w)
		fmt.Fprintln(w, d.text)
	}
	if len(d.examples) > 0 {
		fmt.Fprintln(w, "\nexamples:")
		for _, e := range d.examples {
			fmt.Fprintln(w, "  "+e)
		}
	}
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// printFlags lists the flags in the style of the usage lines: "--name value"
// (Go's flag package accepts one or two dashes; bbd writes two everywhere).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		if !isZeroDefault(f) {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, strings.ReplaceAll(usage, "\n", "\n      "))
	})
}

// isZeroDefault reports whether a flag's default is its type's zero value
// (not worth printing), as flag.PrintDefaults decides.
func isZeroDefault(f *flag.Flag) bool {
	switch f.DefValue {
	case "", "0", "false", "[]":
		return true
	}
	t := reflect.TypeOf(f.Value)
	var z reflect.Value
	if t.Kind() == reflect.Pointer {
		z = reflect.New(t.Elem())
	} else {
		z = reflect.Zero(t)
	}
	if v, ok := z.Interface().(flag.Value); ok {
		defer func() { recover() }()
		return f.DefValue == v.String()
	}
	return false
}

// runHelp is set here, not in the commands table: it reads the table.
func init() { findCommand("help").run = runHelp }

// runHelp: bbd help [command]
func runHelp(c *cmdEnv, args []string) error {
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	switch len(pos) {
	case 0:
		mainUsage(c.stdout)
		return nil
	case 1:
		cmd := findCommand(pos[0])
		if cmd == nil {
			return usagef("unknown command %q (run 'bbd help' for the list)", pos[0])
		}
		env := newEnv(cmd, c.stdout, c.stderr)
		// The command defines its flags and returns flag.ErrHelp on --help:
		// nothing else runs.
		if err := cmd.run(env, []string{"--help"}); err != nil && err != flag.ErrHelp {
			return err
		}
		env.help(c.stdout)
		return nil
	}
	return usagef("expected at most one command, got %q", pos)
}
