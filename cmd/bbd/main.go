// Command bbd is the command-line front of the BBD workbench: it converts the
// Keras BadNets into SavedModels, describes models, runs them on images and
// competition HDF5 files, and measures inference speed against Python
// TensorFlow.
//
// Usage:
//
//	bbd convert [--arch deepid] [--overwrite] <keras.h5> <savedmodel-dir>
//	bbd info [--arch deepid] <savedmodel-dir | keras.h5>
//	bbd predict --model <savedmodel-dir | keras.h5> [--batch 128] [--resize] [--quiet] [--json] <image | folder | data.h5>...
//	bbd bench [--train] [--n 2048] [--batch 128] [--rounds 3] [--model <keras weights .h5>] [--no-python]
//	bbd zoo build --out <dir> [--reduced] [--train N] [--epochs E] [--seed S] [--only a,b] [--overwrite]
//	bbd cleanse --model <M> --data <clean> [--labels all|RANGES] [--preset original|paper] [--budget full|fast] --out <dir> [--json]
//	bbd cleanse merge <dir>... --out <dir> [--json]
//	bbd cleanse lastlayer --model <M> [--top 10] [--json]
//	bbd prune --model <M> --clean <val> --out <dir> [--method unit|channel|weight] [--fractions 0.5:0.95:0.05 | --fraction F | --auto] [--test <test>] [--poisoned <p>]... [--json]
//	bbd defend --badnet <M> --repaired <R> [--targets 0,4 | --untargeted] --out <dir> [--json]
//	bbd defend --model <dir> --test <test> --poisoned <p>... [--json]
//	bbd cleanse --unlearn --model <M> --report <dir> --clean <val.h5> --out <savedmodel-dir>
//
// Examples (from the module root):
//
//	bbd convert ../shared/badnets/sunglasses_bd_weights.h5 /tmp/sunglasses
//	bbd info /tmp/sunglasses                  # signature, layer table, "parameters: 601,643"
//	bbd predict --model /tmp/sunglasses ../shared/ytf-samples
//	bbd predict --model ../shared/badnets/sunglasses_bd_weights.h5 --quiet clean_test_data.h5
//	bbd bench --n 2048 --batch 128
//
// Models: a path that is a directory is loaded as a SavedModel (white-box when
// bbd wrote it, otherwise black-box through its serving_default signature); a
// file must be a Keras HDF5 file: full-model files (model.save) carry their own
// architecture, weights-only files (save_weights, as the CSAW BadNets) are read
// with the DeepID architecture. --arch deepid forces DeepID for either.
//
// predict output (stdout): one line per input image, "<name>\t<label>\t<probability>"
// (the predicted label and its probability; for HDF5 inputs the name is
// "file.h5[i]"), then, when some inputs carry a true label (file names with
// "label=L" or "target=T", or the HDF5 "label" dataset, -1 meaning unknown),
// the line "accuracy: 0.xxxx (k/n)" over those inputs. The accuracy is on
// stdout so that --quiet (no per-input lines) leaves exactly that line.
// --json prints one JSON object per input and a final summary object instead.
// HDF5 files are streamed batch by batch: memory does not grow with the file.
// A progress bar appears on stderr for long runs when stderr is a terminal.
//
// Errors: a bad input gives one line "bbd: <message>" on stderr naming the
// input, and exit status 1; a usage error prints the command's usage on stderr
// and exits with status 2. Nothing on disk is changed by a failed command.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/bbd-workbench/bbd/internal/textfmt"
	// Keeps libtensorflow's two start-up lines off stderr (--verbose or
	// BBD_VERBOSE=1 shows them): see the package.
	_ "github.com/bbd-workbench/bbd/internal/tfquiet"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// command is one subcommand of bbd.
type command struct {
	name    string
	summary string
	usage   string // the arguments, after "bbd <name>"
	run     func(c *cmdEnv, args []string) error
}

// cmdEnv is what a command runs with: its flag set and output streams.
type cmdEnv struct {
	cmd            *command
	flags          *flag.FlagSet
	stdout, stderr io.Writer
}

var commands = []*command{
	{name: "convert", summary: "import a Keras HDF5 model and write it as a SavedModel",
		usage: "[--arch deepid] [--overwrite] <keras.h5> <savedmodel-dir>", run: runConvert},
	{name: "info", summary: "describe a model: signature, layers, parameters",
		usage: "[--arch deepid] [--json] <savedmodel-dir | keras.h5>", run: runInfo},
	{name: "predict", summary: "classify images, image folders and HDF5 data files",
		usage: "--model <savedmodel-dir | keras.h5> [--batch 128] [--resize] [--recursive] [--quiet] [--json] <image | folder | data.h5>...", run: runPredict},
	{name: "bench", summary: "measure images/s of Go inference against Python TensorFlow",
		usage: "[--train] [--n 2048] [--batch 128] [--rounds 3] [--model <keras weights .h5>] [--no-python]", run: runBench},
	{name: "zoo", summary: "train the Fashion-MNIST zoo (four BadNets mirroring the paper's, one clean model)",
		usage: "build --out <dir> [--reduced] [--train N] [--epochs E] [--seed S] [--only a,b] [--overwrite]", run: runZoo},
	stripCommand, // cmd/bbd/strip.go
	{name: "version", summary: "print the versions of bbd and libtensorflow", usage: "[--json]", run: runVersion},
	{name: "help", summary: "print the commands, or a command's flags and examples", usage: "[command]"}, // run: runHelp, set in help.go
	{name: "prune", summary: "fine-prune a BadNet (unit, channel or weight pruning, then fine-tuning) and write the repaired model",
		usage: "--model M --clean VAL --out DIR [--method unit|channel|weight] [--fractions 0.5:0.95:0.05 | --fraction F | --auto] [--epochs E] [--test TEST] [--poisoned P]... [--json]", run: runPrune},
	{name: "defend", summary: "the Bimodel defence: combine a BadNet and its repaired model into one SavedModel, or evaluate one",
		usage: "--badnet M --repaired R [--targets 0,4 | --untargeted] [--clean VAL [--gap-frr 0.01] | --max-gap D] --out DIR [--json]\n" +
			"       bbd defend --model DIR --test TEST --poisoned P... [--json]", run: runDefend},
	{name: "cleanse", summary: "Neural Cleanse: reverse-engineer a trigger per label, flag outliers, merge shards, unlearn",
		usage: "--model M --data CLEAN [--labels all|RANGES] [--preset original|paper] [--budget full|fast] --out DIR [--json]\n" +
			"       bbd cleanse merge DIR... --out DIR [--json]\n" +
			"       bbd cleanse lastlayer --model M [--top 10] [--json]\n" +
			"       bbd cleanse --unlearn --model M --report DIR --clean VAL.h5 --out R", run: runCleanse},
}

// usageError is a wrong command line: it is reported with the usage text and
// exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// printJSON prints v as one indented JSON document (the --json output).
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// run runs bbd with args (without the program name) and returns the exit
// status: 0 success, 1 failure (one line on stderr), 2 usage error.
func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "bbd: internal error: %s\n", oneLine(fmt.Sprint(r)))
			if os.Getenv("BBD_DEBUG") != "" {
				stderr.Write(debug.Stack())
			}
			code = 1
		}
	}()
	// --verbose, anywhere before "--", only shows libtensorflow's start-up
	// lines (package tfquiet reads it before bbd runs).
	args = withoutVerbose(args)
	if len(args) == 0 {
		mainUsage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		mainUsage(stdout)
		return 0
	}
	cmd := findCommand(args[0])
	if cmd == nil {
		fmt.Fprintf(stderr, "bbd: unknown command %q\n", args[0])
		mainUsage(stderr)
		return 2
	}
	env := newEnv(cmd, stdout, stderr)
	err := cmd.run(env, args[1:])
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		env.help(stdout)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "bbd %s: %s\n", cmd.name, oneLine(ue.msg))
		env.usage(stderr)
		return 2
	default:
		fmt.Fprintf(stderr, "bbd: %s\n", oneLine(err.Error()))
		return 1
	}
}

// findCommand returns the command called name, or nil.
func findCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// newEnv returns a fresh environment (flag set) for running cmd.
func newEnv(cmd *command, stdout, stderr io.Writer) *cmdEnv {
	fs := flag.NewFlagSet("bbd "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &cmdEnv{cmd: cmd, flags: fs, stdout: stdout, stderr: stderr}
}

// withoutVerbose returns args without the global flag --verbose (or
// -verbose) before "--".
func withoutVerbose(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if a != "--verbose" && a != "-verbose" {
			out = append(out, a)
		}
	}
	return out
}

// parse parses the command's flags, which may come before, between or after
// the positional arguments ("--" ends the flags), and returns the positional
// arguments.
func (c *cmdEnv) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := c.flags.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		rest := c.flags.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// oneLine folds a multi-line message (e.g. a TensorFlow status) into one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "\n") {
		return s
	}
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// thousands formats n with comma thousands separators: 601643 -> "601,643".
func thousands(n int) string { return textfmt.Thousands(n) }
