package tfquiet_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	tf "github.com/galeone/tensorflow/tensorflow/go"

	"github.com/bbd-workbench/bbd/internal/tfquiet"
)

// startupLines are fragments of the two lines libtensorflow prints when it
// is loaded.
var startupLines = []string{"absl::InitializeLog", "oneDNN custom operations"}

// TestMain: as a child (TFQUIET_CHILD set), report the state, use TensorFlow
// and write one line to stderr, then exit.
func TestMain(m *testing.M) {
	if os.Getenv("TFQUIET_CHILD") != "" {
		os.Stderr.WriteString("child stderr: silenced=" + boolStr(tfquiet.Silenced()) + " verbose=" + boolStr(tfquiet.Verbose()) + " tf " + tf.Version() + "\n")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// TestStartupLines runs this test binary (linked against libtensorflow) as
// a child: by default libtensorflow's start-up lines are gone and stderr
// works afterwards; with BBD_VERBOSE=1 or a --verbose argument they are there.
func TestStartupLines(t *testing.T) {
	run := func(env string, args ...string) string {
		cmd := exec.Command(os.Args[0], args...)
		// libtensorflow prints the lines when oneDNN is on: by default only
		// on CPUs with AVX-512 or AMX features; the switch makes it print
		// them on any x86 CPU.
		cmd.Env = append(os.Environ(), "TFQUIET_CHILD=1", "BBD_VERBOSE="+env, "TF_ENABLE_ONEDNN_OPTS=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("child: %v: %s", err, stderr.String())
		}
		return stderr.String()
	}
	quiet := run("")
	for _, l := range startupLines {
		if strings.Contains(quiet, l) {
			t.Errorf("default run: stderr has TensorFlow's start-up line %q:\n%s", l, quiet)
		}
	}
	if !strings.Contains(quiet, "child stderr: silenced=true verbose=false tf 2.") {
		t.Errorf("default run: stderr %q, want the child's own line after silencing", quiet)
	}
	for _, c := range []struct {
		env  string
		args []string
	}{{"1", nil}, {"", []string{"--verbose"}}, {"", []string{"-test.run=none", "-verbose"}}} {
		loud := run(c.env, c.args...)
		for _, l := range startupLines {
			if !strings.Contains(loud, l) {
				t.Errorf("BBD_VERBOSE=%q %v: stderr lacks TensorFlow's start-up line %q:\n%s", c.env, c.args, l, loud)
			}
		}
		if !strings.Contains(loud, "silenced=false verbose=true") {
			t.Errorf("BBD_VERBOSE=%q %v: stderr %q", c.env, c.args, loud)
		}
	}
	// "--verbose" after "--" is an argument, not the switch.
	if s := run("", "--", "--verbose"); strings.Contains(s, startupLines[1]) {
		t.Errorf("--verbose after --: start-up lines shown:\n%s", s)
	}
}
