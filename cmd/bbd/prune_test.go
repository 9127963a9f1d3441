package main

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/bbd-workbench/bbd/internal/testzoo"
)

// TestPruneRefitJSON: with --refit the top-level figures are the refit
// model's (its "refit" entry), the sweep keeps its own, and --distill is
// recorded in the fine-tuning settings.
func TestPruneRefitJSON(t *testing.T) {
	z, _ := testzoo.Reduced(t)
	test := filepath.Join(z, "data", "clean_test_data.h5")
	pois := filepath.Join(z, "data", "anonymous_1_lipstick_poisoned_data.h5")
	out := mustBBD(t, "prune", "--model", filepath.Join(z, "anonymous_1"), "--clean", filepath.Join(z, "data", "clean_validation_data.h5"),
		"--test", test, "--poisoned", pois, "--fraction", "0.8", "--epochs", "1", "--refit", "--distill", "0.5",
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
	if pr.FineTune.Distill != 0.5 {
		t.Errorf("fine_tune.distill %v, want 0.5", pr.FineTune.Distill)
	}
}
