package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPredictWarnsLabelsBeyondClasses: a true label the model cannot output
// (5000 for the 1283-class BadNet) is counted as wrong, with a warning.
func TestPredictWarnsLabelsBeyondClasses(t *testing.T) {
	weights := sharedPath(t, "badnets", "sunglasses_bd_weights.h5")
	face := sharedPath(t, "ytf-samples", "cl_0_label=43.png")
	dir := t.TempDir()
	raw, err := os.ReadFile(face)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a_label=5000.png", "b_label=43.png"} {
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, stderr, code := bbd(t, "predict", "--quiet", "--model", weights, dir)
	if code != 0 {
		t.Fatalf("status %d: %s", code, stderr)
	}
	if !strings.Contains(out, "accuracy: 0.5000 (1/2)") {
		t.Errorf("accuracy line: %q", out)
	}
	if !strings.Contains(stderr, "warning") || !strings.Contains(stderr, "1283 classes (largest 5000)") {
		t.Errorf("no warning about label 5000: %q", stderr)
	}
}
