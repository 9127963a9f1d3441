package defence_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/tfmodels"
)

const sharedDir = "../../shared"

func realBadNet(t testing.TB, name string) *tfmodels.Model {
	t.Helper()
	m, err := tfmodels.ImportKerasH5(filepath.Join(sharedDir, "badnets", name+"_bd_weights.h5"), nil, tfmodels.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func cleanFaces(t testing.TB) *data.Images {
	t.Helper()
	imgs, err := data.ReadImageDir(filepath.Join(sharedDir, "real-faces", "clean"), data.DeepIDImageOptions(false))
	if err != nil {
		t.Fatal(err)
	}
	return imgs
}

func TestCleanseSpeed(t *testing.T) {
	if os.Getenv("BBD_CLEANSE_SPEED") == "" {
		t.Skip("set BBD_CLEANSE_SPEED=1")
	}
	m := realBadNet(t, "sunglasses")
	imgs := cleanFaces(t)
	cfg := defence.CleanseConfig{Labels: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, MaxSteps: 20, Slots: 16, NoEarlyStop: true}
	cfg.Progress = func(p defence.CleanseProgress) {
		if p.StepsDone%80 == 0 {
			t.Logf("%+v", p)
		}
	}
	c, err := defence.NewCleanse(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Run(context.Background(), m, imgs)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range r.Labels {
		t.Logf("label %d l1 %.1f succ %.2f steps %d %.2fs reached %v idx %.2f", l.Label, l.L1, l.AttackSuccess, l.Steps, l.Seconds, l.Reached, l.AnomalyIndex)
	}
	t.Logf("flagged %v seconds %.1f images %d", r.Flagged, r.Seconds, r.Images)
}
