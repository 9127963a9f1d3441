package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStripCLI: bbd strip on the real sunglasses BadNet with the real faces
// (clean faces as pool and clean inputs, the sunglasses faces poisoned):
// one JSON document with threshold, frr, far, auroc and one score per input,
// the scores separating the two sets; --method all gives a table of the
// three detectors; --export writes the filter.
func TestStripCLI(t *testing.T) {
	weights := sharedPath(t, "badnets", "sunglasses_bd_weights.h5")
	clean, poisoned := sharedPath(t, "real-faces", "clean"), sharedPath(t, "real-faces", "sunglasses")
	filter := filepath.Join(t.TempDir(), "filter")
	// Pixel sums (--sum): with 30 overlays the default light blend separates
	// the real sunglasses faces less well (AUROC 0.95, FAR 0.22; 0.97 and
	// 0.10 with 100 overlays, README).
	out := mustBBD(t, "strip", "--model", weights, "--pool", clean, "--overlays", "30", "--sum", "--clean", clean, "--poisoned", poisoned, "--json", "--export", filter)
	var doc struct {
		Threshold *float64                 `json:"threshold"`
		FRR       *struct{ Value float64 } `json:"frr"`
		FAR       *struct{ Value float64 } `json:"far"`
		AUROC     *float64                 `json:"auroc"`
		Scores    []float64                `json:"scores"`
		Interval  *struct {
			Low, High float64
			FRR       [2]float64 `json:"frr_at_ends"`
		} `json:"threshold_interval"`
		Inputs []struct {
			Name, Set string
			Poisoned  bool
		} `json:"inputs"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--json output is not one JSON document: %v\n%s", err, out)
	}
	if doc.Threshold == nil || doc.FRR == nil || doc.FAR == nil || doc.AUROC == nil || len(doc.Scores) != 100 || len(doc.Inputs) != 100 {
		t.Fatalf("--json document lacks fields: %s", out)
	}
	t.Logf("threshold %.4f, FRR %.3f, FAR %.3f, AUROC %.3f", *doc.Threshold, doc.FRR.Value, doc.FAR.Value, *doc.AUROC)
	if *doc.AUROC < 0.9 || doc.FAR.Value > 0.2 || doc.FRR.Value > 0.2 {
		t.Errorf("STRIP on the real sunglasses faces: AUROC %.3f, FRR %.3f, FAR %.3f", *doc.AUROC, doc.FRR.Value, doc.FAR.Value)
	}
	if iv := doc.Interval; iv == nil || !(iv.Low <= *doc.Threshold && *doc.Threshold <= iv.High) || iv.FRR[0] > doc.FRR.Value || iv.FRR[1] < doc.FRR.Value {
		t.Errorf("threshold %v, FRR %v: bootstrap interval %+v, want one around them", *doc.Threshold, doc.FRR.Value, doc.Interval)
	}
	if doc.Inputs[0].Set != "clean" || doc.Inputs[99].Set != "poisoned" || !strings.Contains(doc.Inputs[99].Name, "target=0") {
		t.Errorf("inputs %+v ... %+v", doc.Inputs[0], doc.Inputs[99])
	}
	if _, err := os.Stat(filepath.Join(filter, "saved_model.pb")); err != nil {
		t.Errorf("--export: %v", err)
	}
	out = mustBBD(t, "strip", "--model", weights, "--pool", clean, "--overlays", "10", "--method", "all", "--limit", "10", "--clean", clean, "--poisoned", poisoned)
	for _, want := range []string{"method", "AUROC", "strip ", "scaleup ", "teco ", "teco: the threshold moves within ["} {
		if !strings.Contains(out, want) {
			t.Errorf("--method all output lacks %q:\n%s", want, out)
		}
	}
	// --adaptive prints adaptive and fixed-M STRIP on the same inputs; several
	// --poisoned sets get a FAR and AUROC each.
	out = mustBBD(t, "strip", "--model", weights, "--pool", clean, "--overlays", "20", "--adaptive", "--limit", "10", "--quiet",
		"--clean", clean, "--poisoned", poisoned, "--poisoned", sharedPath(t, "real-faces", "multi-sunglasses"))
	for _, want := range []string{"strip-adaptive (", "strip (20.0 overlays/input)", "poisoned set", "multi-sunglasses  strip-adaptive", "empirical"} {
		if !strings.Contains(out, want) {
			t.Errorf("--adaptive with two --poisoned sets: output lacks %q:\n%s", want, out)
		}
	}
	// --score profile: its own method name; 50 clean faces allow M <= 8.
	out = mustBBD(t, "strip", "--model", weights, "--pool", clean, "--overlays", "8", "--score", "profile", "--quiet", "--clean", clean, "--poisoned", poisoned)
	if !strings.Contains(out, "strip-profile ") || !strings.Contains(out, "strip-profile: the threshold moves within [") {
		t.Errorf("--score profile:\n%s", out)
	}
	out = mustBBD(t, "strip", "--model", weights, "--pool", clean, "--overlays", "10", "--threshold", "0.18", "--limit", "3", poisoned)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 5 || !strings.Contains(lines[0], "\tinput\t") || !strings.Contains(out, "0.180000") {
		t.Errorf("unlabelled inputs with a fixed threshold:\n%s", out)
	}
}

func TestStripBadInputs(t *testing.T) {
	weights := sharedPath(t, "badnets", "sunglasses_bd_weights.h5")
	clean := sharedPath(t, "real-faces", "clean")
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"strip", "--model", weights, clean}, 2, "--pool is required"},
		{[]string{"strip", "--model", weights, "--pool", clean}, 2, "expected inputs"},
		{[]string{"strip", "--model", weights, "--pool", clean, "--method", "ART", clean}, 2, "--method"},
		{[]string{"strip", "--model", weights, "--pool", clean, "--method", "teco", "--export", dir + "/f", clean}, 2, "--export"},
		{[]string{"strip", "--model", weights, "--pool", clean, "--overlays", "-2", clean}, 2, "Overlays"},
		{[]string{"strip", "--model", weights, "--pool", clean, "--sum", "--blend", "0.5", clean}, 2, "--sum and --blend"},
		{[]string{"strip", "--model", weights, "--pool", clean, "--auto-blend", "--blend", "0.5", clean}, 2, "--auto-blend excludes --blend and --sum"},
		{[]string{"strip", "--model", weights, "--pool", clean, "--auto-blend", "--blend", "0.15", clean}, 2, "--auto-blend excludes --blend and --sum"}, // even the default, given
		{[]string{"strip", "--model", weights, "--pool", clean, "--auto-blend", "--sum", clean}, 2, "--auto-blend excludes --blend and --sum"},
		{[]string{"strip", "--model", weights, "--pool", clean, "--confidence", "0.99", clean}, 2, "--confidence needs --adaptive"},
		{[]string{"strip", "--model", weights, "--pool", clean, "--adaptive", "--confidence", "1.5", clean}, 2, "Confidence"},
		{[]string{"strip", "--model", weights, "--pool", clean, "--score", "median", clean}, 2, "Score"},
		{[]string{"strip", "--model", weights, "--pool", clean, "--score", "profile", "--adaptive", clean}, 2, "Adaptive"},
		{[]string{"strip", "--model", weights, "--pool", clean, "--score", "profile", "--threshold", "0.18", clean}, 2, "Threshold.Rule"},
		{[]string{"strip", "--model", weights, "--pool", clean, "--score", "profile", "--method", "teco", clean}, 2, "--score is STRIP's"},
		{[]string{"strip", "--model", weights, "--pool", clean, "--score", "profile", "--overlays", "9", clean}, 1, "needs at least 6 M = 54 images"},
		{[]string{"strip", "--model", weights, "--pool", filepath.Join(dir, "nonesuch"), clean}, 1, "nonesuch"},
		{[]string{"strip", "--model", weights, "--pool", clean, "--clean", filepath.Join(dir, "nope.h5")}, 1, "nope.h5"},
	} {
		_, errs, code := bbd(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.msg) {
			t.Errorf("bbd %s: exit %d, stderr %q; want exit %d naming %q", strings.Join(c.args, " "), code, errs, c.code, c.msg)
		}
		if c.code == 1 && strings.Count(strings.TrimSpace(errs), "\nbbd") > 0 {
			t.Errorf("more than one error line: %q", errs)
		}
	}
}
