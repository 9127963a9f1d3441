package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bbd-workbench/bbd/internal/testzoo"
)

// TestPruneRefitJSON: with --refit the top-level figures are the refit
// model's (its "refit" entry), the sweep keeps its own, and --distill is
// recorded in the fine-tuning settings, as is --occlude; an --occlude that
// is no probability is a usage error.
func TestPruneRefitJSON(t *testing.T) {
	z, _ := testzoo.Reduced(t)
	test := filepath.Join(z, "data", "clean_test_data.h5")
	pois := filepath.Join(z, "data", "anonymous_1_lipstick_poisoned_data.h5")
	out := mustBBD(t, "prune", "--model", filepath.Join(z, "anonymous_1"), "--clean", filepath.Join(z, "data", "clean_validation_data.h5"),
		"--test", test, "--poisoned", pois, "--fraction", "0.8", "--epochs", "1", "--refit", "--distill", "0.5", "--occlude", "0.25",
		"--out", filepath.Join(t.TempDir(), "repaired"), "--json")
	var pr struct {
		CleanAccuracy float64            `json:"clean_accuracy"`
		AttackSuccess map[string]float64 `json:"attack_success"`
		Refit         *pruneEntry        `json:"refit"`
		Sweep         []struct {
			FineTuned pruneEntry `json:"fine_tuned"`
		} `json:"sweep"`
		FineTune struct {
			Distill float64 `json:"distill"`
			Occlude float64 `json:"occlude"`
		} `json:"fine_tune"`
	}
	if err := json.Unmarshal([]byte(out), &pr); err != nil {
		t.Fatalf("prune --json: %v\n%s", err, out)
	}
	if pr.Refit == nil || len(pr.Sweep) != 1 {
		t.Fatalf("report without a refit entry or with %d sweep points:\n%s", len(pr.Sweep), out)
	}
	name := filepath.Base(pois)
	if pr.CleanAccuracy != pr.Refit.CleanAccuracy || pr.AttackSuccess[name] != pr.Refit.AttackSuccess[name] {
		t.Errorf("top-level figures %.4f / %.4f are not the refit model's %.4f / %.4f",
			pr.CleanAccuracy, pr.AttackSuccess[name], pr.Refit.CleanAccuracy, pr.Refit.AttackSuccess[name])
	}
	if pr.FineTune.Distill != 0.5 || pr.FineTune.Occlude != 0.25 {
		t.Errorf("fine_tune.distill %v and occlude %v, want 0.5 and 0.25", pr.FineTune.Distill, pr.FineTune.Occlude)
	}
	if _, stderr, code := bbd(t, "prune", "--model", filepath.Join(z, "anonymous_1"), "--clean", test, "--occlude", "2",
		"--out", filepath.Join(t.TempDir(), "never")); code != 2 || !strings.Contains(stderr, "--occlude 2") {
		t.Errorf("--occlude 2: exit %d, stderr %q; want 2 and a message naming --occlude 2", code, stderr)
	}
}
