package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	tf "github.com/galeone/tensorflow/tensorflow/go"

	"github.com/bbd-workbench/bbd/exporter"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// documented are the commands whose help must have a description and
// examples (others' commands get theirs in docs as they come).
var documented = []string{"convert", "info", "predict", "bench", "zoo", "version", "help"}

// TestHelp: bbd help lists every command; bbd help CMD and bbd CMD --help
// print the same full help (usage, flags with two dashes, description,
// examples) on stdout; an unknown command is a usage error.
func TestHelp(t *testing.T) {
	out := mustBBD(t, "help")
	for _, c := range commands {
		if !strings.Contains(out, "\n  "+c.name+" ") {
			t.Errorf("bbd help does not list %s:\n%s", c.name, out)
		}
	}
	if !strings.Contains(out, "--verbose") || !strings.Contains(out, "bbd help <command>") {
		t.Errorf("bbd help lacks --verbose or the pointer to 'bbd help <command>':\n%s", out)
	}
	singleDash := regexp.MustCompile(`(?m)^\s+-[a-z]`)
	for _, name := range documented {
		h := mustBBD(t, "help", name)
		for _, want := range []string{"usage: bbd " + name, "\nexamples:\n  bbd " + name} {
			if !strings.Contains(h, want) {
				t.Errorf("bbd help %s lacks %q:\n%s", name, want, h)
			}
		}
		if singleDash.MatchString(h) {
			t.Errorf("bbd help %s lists a flag with one dash:\n%s", name, h)
		}
		if h2 := mustBBD(t, name, "--help"); h2 != h {
			t.Errorf("bbd %s --help differs from bbd help %s:\n%s\n---\n%s", name, name, h2, h)
		}
	}
	// One flag style: every usage line writes flags with two dashes.
	for _, c := range commands {
		if m := regexp.MustCompile(`(^|[\s\[|])-[a-z]`).FindString(c.usage); m != "" {
			t.Errorf("usage of %s writes a flag with one dash: %q", c.name, c.usage)
		}
	}
	if _, errs, code := bbd(t, "help", "nonesuch"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Errorf("bbd help nonesuch: exit %d, stderr %q", code, errs)
	}
	if h := mustBBD(t, "help", "predict"); !strings.Contains(h, "--recursive") || !strings.Contains(h, "(poisoned)") || !strings.Contains(h, "--json") {
		t.Errorf("bbd help predict lacks --recursive, the BBD label or --json:\n%s", h)
	}
	if h := mustBBD(t, "help", "info"); !strings.Contains(h, "--json") {
		t.Errorf("bbd help info lacks --json:\n%s", h)
	}
}

func TestVersion(t *testing.T) {
	out := mustBBD(t, "version")
	if !regexp.MustCompile(`(?m)^bbd .*, built with go1\.`).MatchString(out) || !strings.Contains(out, "libtensorflow "+tf.Version()) {
		t.Errorf("bbd version:\n%s", out)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(mustBBD(t, "version", "--json")), &v); err != nil || v.TensorFlow != tf.Version() || v.Go != runtime.Version() {
		t.Errorf("bbd version --json: %+v, %v", v, err)
	}
	// --verbose is global: accepted anywhere before "--" and removed.
	if out2 := mustBBD(t, "--verbose", "version"); out2 != out {
		t.Errorf("bbd --verbose version: %q, want %q", out2, out)
	}
}

// TestNoStartupLines builds the bbd binary and runs it as a user would: a
// plain bbd version, bbd help and bbd convert (a usage error) print none of
// libtensorflow's start-up lines; --verbose or BBD_VERBOSE=1 brings them
// back (which shows that the library does print them).
func TestNoStartupLines(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the bbd binary")
	}
	bin := filepath.Join(t.TempDir(), "bbd")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	startup := []string{"absl::InitializeLog", "oneDNN custom operations"}
	run := func(env []string, args ...string) (string, string) {
		cmd := exec.Command(bin, args...)
		// libtensorflow prints the lines when oneDNN is on: by default only
		// on CPUs with AVX-512 or AMX features; the switch makes it print
		// them on any x86 CPU.
		cmd.Env = append(append(os.Environ(), "TF_ENABLE_ONEDNN_OPTS=1"), env...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.Run() // convert without arguments exits with 2
		return out.String(), errb.String()
	}
	for _, args := range [][]string{{"version"}, {"help"}, {"convert"}} {
		out, errs := run([]string{"BBD_VERBOSE="}, args...)
		for _, l := range startup {
			if strings.Contains(out+errs, l) {
				t.Errorf("bbd %s prints TensorFlow's start-up line %q:\nstdout %s\nstderr %s", args[0], l, out, errs)
			}
		}
		if args[0] == "convert" && !strings.HasPrefix(errs, "bbd convert: expected") {
			t.Errorf("bbd convert: stderr %q, want the usage error first", errs)
		}
	}
	for _, c := range []struct {
		env  []string
		args []string
	}{{nil, []string{"--verbose", "version"}}, {nil, []string{"version", "--verbose"}}, {[]string{"BBD_VERBOSE=1"}, []string{"version"}}} {
		out, errs := run(c.env, c.args...)
		for _, l := range startup {
			if !strings.Contains(errs, l) {
				t.Errorf("%v bbd %v: stderr lacks %q:\n%s", c.env, c.args, l, errs)
			}
		}
		if !strings.Contains(out, "libtensorflow ") {
			t.Errorf("%v bbd %v: stdout %q", c.env, c.args, out)
		}
	}
}

func TestInfoJSON(t *testing.T) {
	weights := sharedPath(t, "badnets", "sunglasses_bd_weights.h5")
	sm := convertSunglasses(t, t.TempDir())
	for _, model := range []string{sm, weights} {
		var info modelInfo
		if err := json.Unmarshal([]byte(mustBBD(t, "info", "--json", model)), &info); err != nil {
			t.Fatal(err)
		}
		sig := info.Signatures["serving_default"]
		if info.Parameters == nil || *info.Parameters != 601643 || info.Classes != 1283 || info.Input != [3]int{55, 47, 3} ||
			len(info.Layers) != 15 || !info.WhiteBox || len(sig.Inputs) != 1 || sig.Inputs[0].DType != "float32" || len(sig.Outputs) != 2 {
			t.Errorf("info --json %s: %+v", model, info)
		}
	}
}

// TestPredictSources: with --recursive every folder holding images is a
// source with its own accuracy (clean accuracy and attack success apart);
// without it a folder of folders is an error pointing at --recursive.
func TestPredictSources(t *testing.T) {
	weights := sharedPath(t, "badnets", "sunglasses_bd_weights.h5")
	faces := sharedPath(t, "real-faces")
	out := mustBBD(t, "predict", "--quiet", "--recursive", "--model", weights, faces)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	subs, _ := filepath.Glob(filepath.Join(faces, "*", "*.png"))
	folders := map[string]bool{}
	for _, p := range subs {
		folders[filepath.Dir(p)] = true
	}
	if len(lines) != len(folders) || len(folders) < 2 {
		t.Fatalf("%d accuracy lines for %d folders:\n%s", len(lines), len(folders), out)
	}
	for _, l := range lines {
		if !regexp.MustCompile(`^accuracy ` + regexp.QuoteMeta(faces) + `/[^/:]+: [01]\.\d{4} \(\d+/\d+\)$`).MatchString(l) {
			t.Errorf("line %q", l)
		}
	}
	clean := mustBBD(t, "predict", "--quiet", "--model", weights, filepath.Join(faces, "clean"))
	if want := strings.TrimPrefix(clean, "accuracy: "); !strings.Contains(out, "accuracy "+filepath.Join(faces, "clean")+": "+want) {
		t.Errorf("clean folder alone %q; in the recursive run:\n%s", clean, out)
	}
	_, errs, code := bbd(t, "predict", "--quiet", "--model", weights, faces)
	if code != 1 || !strings.Contains(errs, "--recursive") {
		t.Errorf("a folder of folders without --recursive: exit %d, stderr %q", code, errs)
	}
}

// TestPredictLabelModel: a SavedModel with a "label" output (as a BBD
// defence exports) prints that label, N as "N (poisoned)".
func TestPredictLabelModel(t *testing.T) {
	ytf := sharedPath(t, "ytf-samples")
	const classes = 10
	m, err := tfmodels.Build(tfmodels.DeepIDWith(55, 47, 3, classes), nil, tfmodels.BuildOptions{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// label: the most probable class when below 5, else N ("poisoned").
	o := tfmodels.NewOps(m.Graph, "decision")
	am := o.Op("ArgMax", map[string]interface{}{"output_type": tf.Int32}, m.Probabilities, o.Const(int32(1)))
	label := o.Named("label", "SelectV2", nil, o.Op("Less", nil, am, o.Const(int32(5))), am, o.Const(int32(classes)))
	if err := o.Err(); err != nil {
		t.Fatal(err)
	}
	spec, err := exporter.ModelSpec(m)
	if err != nil {
		t.Fatal(err)
	}
	spec.Signatures[exporter.DefaultSignature].Outputs["label"] = label
	dir := filepath.Join(t.TempDir(), "bbd")
	if err := exporter.Write(dir, spec, exporter.Options{}); err != nil {
		t.Fatal(err)
	}
	out := mustBBD(t, "predict", "--model", dir, ytf)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	poisoned := 0
	for _, l := range lines[:len(lines)-1] {
		f := strings.Split(l, "\t")
		switch {
		case len(f) == 2 && f[1] == "10 (poisoned)":
			poisoned++
		case len(f) == 3 && len(f[1]) == 1 && f[1] < "5":
		default:
			t.Errorf("line %q: want <name>\\t<label below 5>\\t<probability> or <name>\\t10 (poisoned)", l)
		}
	}
	if !strings.HasPrefix(lines[len(lines)-1], "accuracy: ") {
		t.Errorf("last line %q", lines[len(lines)-1])
	}
	t.Logf("%d of %d faces labelled poisoned", poisoned, len(lines)-1)
	js := mustBBD(t, "predict", "--json", "--model", dir, ytf)
	if poisoned > 0 && !strings.Contains(js, `"label":10,"poisoned":true,"true_label"`) {
		t.Errorf("--json: no poisoned entry:\n%s", js)
	}
}
