package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bbd-workbench/bbd/internal/testzoo"
)

// TestReproduceCommand runs one cheap experiment through the command: the
// JSON summary names the report, the files exist, a second run resumes from
// the cache, and bad command lines and foreign output folders are refused
// with messages naming them.
func TestReproduceCommand(t *testing.T) {
	z, _ := testzoo.Reduced(t)
	out := filepath.Join(t.TempDir(), "repro")
	args := []string{"reproduce", "--zoo", z, "--out", out, "--small", "--only", "strip", "--model-names", "sunglasses", "--max-images", "100", "--json"}
	stdout := mustBBD(t, args...)
	var sum struct {
		Report  string `json:"report"`
		Results struct {
			STRIP []struct {
				Model string `json:"model"`
			} `json:"strip"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout)
	}
	if len(sum.Results.STRIP) != 1 || sum.Results.STRIP[0].Model != "sunglasses" {
		t.Errorf("strip results %+v, want sunglasses alone", sum.Results.STRIP)
	}
	for _, f := range []string{sum.Report, filepath.Join(out, "tables", "table2.md"), filepath.Join(out, "figures", "fig3-strip-sunglasses.svg")} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	if again := mustBBD(t, args...); again != stdout && !strings.Contains(again, `"strip"`) {
		t.Errorf("second run printed something else")
	}

	// --fresh recomputes: the cached unit is written anew.
	unit := filepath.Join(out, "cache", "strip", "sunglasses.json")
	before, err := os.Stat(unit)
	if err != nil {
		t.Fatal(err)
	}
	mustBBD(t, append(args, "--fresh")...)
	if after, err := os.Stat(unit); err != nil || !after.ModTime().After(before.ModTime()) {
		t.Errorf("--fresh did not compute the unit again (%v)", err)
	}

	foreign := t.TempDir()
	os.WriteFile(filepath.Join(foreign, "notes.txt"), []byte("mine"), 0o644)
	if _, stderr, code := bbd(t, "reproduce", "--zoo", z, "--out", foreign, "--only", "strip"); code != 1 || !strings.Contains(stderr, foreign) {
		t.Errorf("reproduce into a foreign folder: status %d, %q; want 1 naming it", code, stderr)
	}
	if _, stderr, code := bbd(t, "reproduce", "--zoo", z, "--out", out, "--only", "figures"); code != 1 || !strings.Contains(stderr, `"figures"`) {
		t.Errorf("unknown experiment: status %d, %q", code, stderr)
	}
	if _, _, code := bbd(t, "reproduce", "--out", out); code != 2 {
		t.Errorf("no source: status %d, want 2 (usage)", code)
	}
}
