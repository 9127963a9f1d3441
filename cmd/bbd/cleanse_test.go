package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
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
