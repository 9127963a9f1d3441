package main

import (
	"encoding/json"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bbd-workbench/bbd/defence"
)

// TestCleanseCLI scans two shards of the real sunglasses BadNet (labels 0-1
// and 2-3, a few steps), merges them, and checks the JSON report's fields and
// the bad inputs; the original rule's verdict is reported beside the
// default (log) one.
func TestCleanseCLI(t *testing.T) {
	model := sharedPath(t, "badnets", "sunglasses_bd_weights.h5")
	clean := sharedPath(t, "real-faces", "clean")
	tmp := t.TempDir()
	var shards []string
	for i, labels := range []string{"0-1", "2,3"} {
		out := filepath.Join(tmp, "shard"+string(rune('a'+i)))
		mustBBD(t, "cleanse", "--model", model, "--data", clean, "--labels", labels, "--steps", "3", "--images", "8", "--out", out)
		shards = append(shards, out)
	}
	merged := filepath.Join(tmp, "merged")
	stdout := mustBBD(t, append(append([]string{"cleanse", "merge"}, shards...), "--out", merged, "--json")...)
	var rep struct {
		Flagged      []int    `json:"flagged"`
		AnomalyIndex *float64 `json:"anomaly_index"`
		OriginalMAD  *struct {
			Rule    string `json:"rule"`
			Flagged []int  `json:"flagged"`
		} `json:"original_mad"`
		Labels []struct {
			Label         int      `json:"label"`
			L1            *float64 `json:"l1"`
			AttackSuccess *float64 `json:"attack_success"`
			Exact         *bool    `json:"exact"`
		} `json:"labels"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("merge --json: %v\n%s", err, stdout)
	}
	if rep.Flagged == nil || rep.AnomalyIndex == nil || len(rep.Labels) != 4 || rep.OriginalMAD == nil || rep.OriginalMAD.Rule != "linear, single pass" || rep.OriginalMAD.Flagged == nil {
		t.Fatalf("merged report: %s", stdout)
	}
	for i, l := range rep.Labels {
		if l.Label != i || l.L1 == nil || *l.L1 <= 0 || l.AttackSuccess == nil || l.Exact == nil || !*l.Exact {
			t.Errorf("label entry %d: %+v", i, l)
		}
	}
	// Bad inputs: one line, exit 1; usage errors exit 2.
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"cleanse", "--model", model, "--data", clean, "--labels", "3-1", "--out", filepath.Join(tmp, "x")}, 2, "--labels"},
		{[]string{"cleanse", "--model", model, "--data", clean, "--preset", "nope", "--out", filepath.Join(tmp, "x")}, 2, "Preset"},
		{[]string{"cleanse", "--model", model, "--out", filepath.Join(tmp, "x")}, 2, "--data"},
		{[]string{"cleanse", "--model", model, "--data", clean, "--out", merged}, 1, "exists"},
		{[]string{"cleanse", "merge", clean, "--out", filepath.Join(tmp, "y")}, 1, "report"},
		{[]string{"cleanse", "merge", shards[0], shards[0], "--out", filepath.Join(tmp, "y")}, 1, "two reports"},
	} {
		_, stderr, code := bbd(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.msg) {
			t.Errorf("bbd %v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, stderr, c.code, c.msg)
		}
	}
}

// TestCleanseRescore applies the outlier test again to a saved report of
// 200 labels (log norms spread evenly, one small): the default Bonferroni
// threshold (3.48 for 200 labels) flags the small label only, the fixed
// threshold 2 the lower tail too; the last-layer check's flag 12 (index 3,
// above the candidates' threshold 2) joins the verdict unless --verdict
// neural-cleanse, its flag 13 (an ordinary norm) does not; --out writes the
// rescored report; bad inputs are refused.
func TestCleanseRescore(t *testing.T) {
	tmp := t.TempDir()
	r := &defence.CleanseReport{Method: "neural-cleanse", Classes: 200, InputShape: [3]int{2, 2, 3}, MaskChannels: 1,
		Config: defence.CleanseConfig{MADThresholdRule: defence.MADFixed}}
	for l := 0; l < 200; l++ {
		z := -math.Sqrt2 * math.Erfcinv(2*(float64((l*37)%200)+0.5)/200)
		l1 := 100 * math.Exp(0.25*z)
		if l == 7 {
			l1 = 100 * math.Exp(-6*0.25)
		}
		if l == 12 {
			l1 = 100 * math.Exp(-3*0.25)
		}
		r.Labels = append(r.Labels, defence.CleanseLabel{Label: l, L1: l1, Exact: true, Mask: make([]float32, 4), Pattern: make([]float32, 12)})
	}
	r.LastLayer = &defence.LastLayerReport{Method: "last-layer", Layer: "output", Threshold: 4.11, Flagged: []int{12, 13}}
	r.Detect()
	dir := filepath.Join(tmp, "report")
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Flagged   []int   `json:"flagged"`
		Threshold float64 `json:"threshold"`
		Fixed     *struct {
			Flagged   []int   `json:"flagged"`
			Threshold float64 `json:"threshold"`
		} `json:"fixed_mad"`
	}
	// The report's own rule (fixed), as scanned.
	if err := json.Unmarshal([]byte(mustBBD(t, "cleanse", "rescore", dir, "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Threshold != 2 || len(rep.Flagged) < 4 || rep.Flagged[0] != 7 || rep.Fixed != nil {
		t.Errorf("fixed threshold: %+v", rep)
	}
	out := filepath.Join(tmp, "rescored")
	text := mustBBD(t, "cleanse", "rescore", dir, "--mad-threshold", "bonferroni", "--out", out)
	for _, want := range []string{"threshold: anomaly index > 3.48 (Bonferroni: max(2, z(1 - 0.05 / 200)))", "flagged (Neural Cleanse, and the last layer's candidates it confirms): 7, 12\n",
		"flagged by Neural Cleanse\n", "flagged by the last layer, confirmed by its trigger (index > 2.00)\n", "Neural Cleanse alone: flagged 7\n", "fixed threshold 2 (log, single pass): flagged 7, ", "report: " + out} {
		if !strings.Contains(text, want) {
			t.Errorf("rescore output lacks %q:\n%s", want, text)
		}
	}
	back, err := defence.ReadCleanseReport(out)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Flagged, []int{7, 12}) || !slices.Equal(back.NCFlagged, []int{7}) || back.Config.MADThresholdRule != defence.MADBonferroni || len(back.Labels) != 200 {
		t.Errorf("rescored report read back: flagged %v (Neural Cleanse %v), rule %q, %d labels", back.Flagged, back.NCFlagged, back.Config.MADThresholdRule, len(back.Labels))
	}
	text = mustBBD(t, "cleanse", "rescore", out, "--verdict", "neural-cleanse")
	if !strings.Contains(text, "flagged (Neural Cleanse alone): 7\n") {
		t.Errorf("--verdict neural-cleanse:\n%s", text)
	}
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"cleanse", "rescore"}, 2, "one report folder"},
		{[]string{"cleanse", "rescore", dir, "--mad-threshold", "max"}, 2, "MADThresholdRule"},
		{[]string{"cleanse", "rescore", dir, "--mad-alpha", "2"}, 2, "MADAlpha"},
		{[]string{"cleanse", "rescore", dir, "--verdict", "either"}, 2, "Verdict"},
		{[]string{"cleanse", "rescore", tmp}, 1, "report " + tmp},
		{[]string{"cleanse", "rescore", dir, "--out", out}, 1, "exists"},
	} {
		_, stderr, code := bbd(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.msg) {
			t.Errorf("bbd %v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, stderr, c.code, c.msg)
		}
	}
}

// TestCleanseLastLayerCLI runs the data-free last-layer check on the real
// anonymous_2 BadNet: label 4 (its target, never published) is the only
// flag, in the text and the JSON output; bad command lines exit 2.
func TestCleanseLastLayerCLI(t *testing.T) {
	model := sharedPath(t, "badnets", "anonymous_2_bd_weights.h5")
	text := mustBBD(t, "cleanse", "lastlayer", "--model", model, "--top", "3")
	for _, want := range []string{"layer output: 160 features, 1283 labels\n", "threshold: index > 4.11 ", "flagged: 4\n", "\n4\t10.70\t"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	var rep defence.LastLayerReport
	if err := json.Unmarshal([]byte(mustBBD(t, "cleanse", "lastlayer", "--model", model, "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Flagged) != 1 || rep.Flagged[0] != 4 || len(rep.Labels) != 1283 || !rep.Labels[4].Flagged {
		t.Errorf("JSON: flagged %v, %d labels", rep.Flagged, len(rep.Labels))
	}
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"cleanse", "lastlayer"}, "--model is required"},
		{[]string{"cleanse", "lastlayer", "--model", model, "--alpha", "2"}, "Alpha"},
		{[]string{"cleanse", "lastlayer", "--model", model, "extra"}, "unexpected arguments"},
	} {
		_, errs, code := bbd(t, c.args...)
		if code != 2 || !strings.Contains(errs, c.msg) {
			t.Errorf("bbd %s: exit %d, stderr %q; want 2 and %q", strings.Join(c.args, " "), code, errs, c.msg)
		}
	}
}
