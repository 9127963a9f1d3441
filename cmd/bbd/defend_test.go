package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bbd-workbench/bbd/internal/testzoo"
)

// TestPruneDefend runs the paper's pipeline from the command line on the
// reduced zoo: bbd prune writes a repaired SavedModel and its report, bbd
// defend combines it with the BadNet into one SavedModel and evaluates it;
// the JSON documents carry the documented fields, and existing outputs are
// refused.
func TestPruneDefend(t *testing.T) {
	z, _ := testzoo.Reduced(t)
	tmp := t.TempDir()
	val := filepath.Join(z, "data", "clean_validation_data.h5")
	test := filepath.Join(z, "data", "clean_test_data.h5")
	pois := filepath.Join(z, "data", "anonymous_1_lipstick_poisoned_data.h5")
	repaired := filepath.Join(tmp, "repaired")
	out := mustBBD(t, "prune", "--model", filepath.Join(z, "anonymous_1"), "--clean", val, "--test", test, "--poisoned", pois,
		"--method", "channel", "--fractions", "0.6:0.9:0.3", "--epochs", "2", "--out", repaired, "--json")
	var pr map[string]any
	if err := json.Unmarshal([]byte(out), &pr); err != nil {
		t.Fatalf("prune --json: %v\n%s", err, out)
	}
	for _, k := range []string{"fraction", "clean_accuracy", "attack_success", "sweep"} {
		if _, ok := pr[k]; !ok {
			t.Errorf("prune --json lacks %q", k)
		}
	}
	if sw, _ := pr["sweep"].([]any); len(sw) != 2 {
		t.Errorf("sweep has %d entries, want 2 (0.6 and 0.9)", len(sw))
	} else if p, _ := sw[0].(map[string]any); p["pruned"] == nil || p["fine_tuned"] == nil {
		t.Errorf("sweep entry lacks pruned/fine_tuned: %v", p)
	}
	if as, _ := pr["attack_success"].(map[string]any); as[filepath.Base(pois)] == nil {
		t.Errorf("attack_success not keyed by the poisoned file: %v", pr["attack_success"])
	}
	if _, err := os.Stat(repaired + ".report.json"); err != nil {
		t.Error(err)
	}
	if _, stderr, code := bbd(t, "prune", "--model", filepath.Join(z, "anonymous_1"), "--clean", val, "--out", repaired); code != 1 || !strings.Contains(stderr, repaired) {
		t.Errorf("prune onto an existing model: status %d, %q; want 1 naming it", code, stderr)
	}

	combined := filepath.Join(tmp, "bbd")
	mustBBD(t, "defend", "--badnet", filepath.Join(z, "anonymous_1"), "--repaired", repaired, "--untargeted", "--out", combined)
	out = mustBBD(t, "defend", "--model", combined, "--test", test, "--poisoned", pois, "--json")
	var ev map[string]any
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatalf("defend --json: %v\n%s", err, out)
	}
	for _, k := range []string{"accuracy", "frr", "far", "clean_accuracy", "attack_success", "predicted", "frr_over_total", "far_over_total"} {
		if _, ok := ev[k]; !ok {
			t.Errorf("defend --json lacks %q", k)
		}
	}
	text := mustBBD(t, "defend", "--model", combined, "--test", test, "--poisoned", pois)
	for _, want := range []string{"frr:", "far:", "paper's equations", "untargeted"} {
		if !strings.Contains(text, want) {
			t.Errorf("defend output lacks %q:\n%s", want, text)
		}
	}
	if _, stderr, code := bbd(t, "defend", "--model", filepath.Join(z, "anonymous_1"), "--test", test, "--poisoned", pois); code != 1 || !strings.Contains(stderr, "BBD") {
		t.Errorf("defend --model on a plain BadNet: status %d, %q; want 1 saying it is not a BBD model", code, stderr)
	}
	// The confidence gap chosen from clean data, recorded in the model and
	// reported by the evaluation.
	gapped := filepath.Join(tmp, "bbd-gap")
	out = mustBBD(t, "defend", "--badnet", filepath.Join(z, "anonymous_1"), "--repaired", repaired, "--clean", val, "--gap-frr", "0.02", "--out", gapped, "--json")
	var built map[string]any
	if err := json.Unmarshal([]byte(out), &built); err != nil {
		t.Fatalf("defend --clean --json: %v\n%s", err, out)
	}
	g, _ := built["max_gap"].(float64)
	if !(g > 0 && g < 1) || built["gap_frr"] != 0.02 {
		t.Errorf("defend --clean: max_gap %v, gap_frr %v", built["max_gap"], built["gap_frr"])
	}
	out = mustBBD(t, "defend", "--model", gapped, "--test", test, "--poisoned", pois, "--json")
	var evg map[string]any
	if err := json.Unmarshal([]byte(out), &evg); err != nil {
		t.Fatal(err)
	}
	if evg["max_gap"] != g || evg["far"].(float64) > ev["far"].(float64) || evg["frr"].(float64) < ev["frr"].(float64) {
		t.Errorf("with the gap: max_gap %v (built %v), far %v (labels only %v), frr %v (labels only %v)", evg["max_gap"], g, evg["far"], ev["far"], evg["frr"], ev["frr"])
	}
	// The same BBD as a row of bbd strip's table, on the same inputs: its
	// FRR and FAR are the evaluation's.
	out = mustBBD(t, "strip", "--model", filepath.Join(z, "anonymous_1"), "--pool", val, "--overlays", "5",
		"--clean", test, "--poisoned", pois, "--bbd", gapped, "--json")
	var st struct {
		Methods []struct {
			Method   string
			FRR, FAR struct{ Hits, Total int }
			AUROC    *float64
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("strip --bbd --json: %v", err)
	}
	if len(st.Methods) != 2 || st.Methods[1].Method != "bbd-untargeted" || st.Methods[1].AUROC == nil {
		t.Fatalf("strip --bbd: methods %+v, want strip then bbd-untargeted with an AUROC", st.Methods)
	}
	if b := st.Methods[1]; float64(b.FRR.Hits)/float64(b.FRR.Total) != evg["frr"] || float64(b.FAR.Hits)/float64(b.FAR.Total) != evg["far"] || *b.AUROC <= 0.5 {
		t.Errorf("strip --bbd row: FRR %v FAR %v AUROC %v; bbd defend said FRR %v FAR %v", b.FRR, b.FAR, *b.AUROC, evg["frr"], evg["far"])
	}
	for _, args := range [][]string{
		{"--gap-frr", "0.02"},
		{"--clean", val, "--gap-frr", "1"},
		{"--max-gap", "1"},
		{"--max-gap", "NaN"},
		{"--clean", val, "--max-gap", "0.5"},
	} {
		full := append([]string{"defend", "--badnet", filepath.Join(z, "anonymous_1"), "--repaired", repaired, "--out", filepath.Join(tmp, "never")}, args...)
		if _, stderr, code := bbd(t, full...); code != 2 || !strings.Contains(stderr, args[len(args)-2]) {
			t.Errorf("defend %v: status %d, %q; want a usage error", args, code, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "never")); !os.IsNotExist(err) {
		t.Errorf("a refused defend wrote its --out: %v", err)
	}
	if _, _, code := bbd(t, "defend", "--badnet", "x", "--model", "y"); code != 2 {
		t.Errorf("mixing build and evaluate flags: status %d, want 2", code)
	}
}
