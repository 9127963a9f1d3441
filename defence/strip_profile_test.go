package defence_test

import (
	"context"
	"errors"
	"testing"

	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/metrics"
)

// testSTRIPProfile: on the reduced zoo's sunglasses BadNet, where STRIP's
// mean entropy separates clean and triggered inputs poorly (AUROC about
// 0.9), the profile score separates them better and lets fewer triggered
// inputs through at the same FRR target. Its calibration scores are
// cross-fitted, so the threshold holds its FRR on other clean images; it is
// seeded; and it refuses what it cannot do.
func testSTRIPProfile(t *testing.T, dir string) {
	m, val, clean, poisoned := stripZooSets(t, dir, 300)
	ctx := context.Background()
	const M = 50
	x, xs, truth := stripMixed(t, clean, poisoned)
	type result struct {
		frr, far, auroc float64
		threshold       float64
		cal             []float64
	}
	run := func(score defence.STRIPScore) (*defence.STRIP, result) {
		t.Helper()
		s, err := defence.NewSTRIP(m, val, defence.STRIPConfig{Seed: 1, Overlays: M, Score: score})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		cal, err := s.Calibrate(ctx, val)
		if err != nil {
			t.Fatal(err)
		}
		det, err := s.Detect(ctx, xs, x.Len())
		if err != nil {
			t.Fatal(err)
		}
		d, err := metrics.Detect(det.Flags, truth)
		if err != nil {
			t.Fatal(err)
		}
		a, err := metrics.AUROC(det.Scores, truth, metrics.LowerPoisoned)
		if err != nil {
			t.Fatal(err)
		}
		r := result{frr: d.FRR().Value(), far: d.FAR().Value(), auroc: a, threshold: det.Threshold, cal: cal}
		t.Logf("%s: threshold %.4g, FRR %v, FAR %v, AUROC %.3f", s.Name(), det.Threshold, d.FRR(), d.FAR(), a)
		return s, r
	}
	_, mean := run(defence.ScoreMean)
	s, prof := run(defence.ScoreProfile)
	if prof.auroc < mean.auroc+0.02 || prof.far > mean.far-0.05 || prof.frr > 0.15 {
		t.Errorf("profile score: AUROC %.3f FAR %.3f FRR %.3f; mean: AUROC %.3f FAR %.3f FRR %.3f",
			prof.auroc, prof.far, prof.frr, mean.auroc, mean.far, mean.frr)
	}
	if name := s.Name(); name != "strip-profile" {
		t.Errorf("name %q", name)
	}
	if lam, ok := s.ProfileShrinkage(); !ok || lam < 0 || lam > 1 {
		t.Errorf("shrinkage %v, %v", lam, ok)
	}
	// The calibration scores are cross-fitted: at the threshold chosen from
	// them, about 5 % of them are flagged, as for held-out images. (A fit
	// scores its own images as typical: in-sample, far fewer would be.)
	flagged := 0
	for _, v := range prof.cal {
		if v < prof.threshold {
			flagged++
		}
	}
	if r := float64(flagged) / float64(len(prof.cal)); r < 0.03 || r > 0.07 {
		t.Errorf("%d of %d calibration scores below the threshold", flagged, len(prof.cal))
	}
	inSample, _, err := s.ScoreExamples(ctx, val)
	if err != nil {
		t.Fatal(err)
	}
	below := 0
	for _, v := range inSample {
		if v < prof.threshold {
			below++
		}
	}
	t.Logf("calibration images below the threshold: %d cross-fitted, %d scored by the final fit", flagged, below)
	// Seeded: calibrating again gives the same scores and threshold.
	again, err := s.Calibrate(ctx, val)
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if again[i] != prof.cal[i] {
			t.Fatalf("calibration score %d: %v, then %v", i, prof.cal[i], again[i])
		}
	}
	if th, _ := s.Threshold(); th != prof.threshold {
		t.Errorf("threshold %v, then %v", prof.threshold, th)
	}

	// What it refuses.
	fresh, err := defence.NewSTRIP(m, val, defence.STRIPConfig{Seed: 1, Overlays: M, Score: defence.ScoreProfile})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if _, _, err := fresh.Scores(ctx, xs[:len(xs)/x.Len()], 1); err == nil {
		t.Error("scores before the clean profiles are fitted: no error")
	}
	few, err := val.Slice(0, 6*M-1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Calibrate(ctx, few); !errors.Is(err, defence.ErrTooFewClean) {
		t.Errorf("calibrating on %d < 6 M images: %v", few.Len(), err)
	}
	if _, err := s.DetectAdaptive(ctx, xs, x.Len()); err == nil {
		t.Error("adaptive STRIP with the profile score: no error")
	}
	for name, cfg := range map[string]defence.STRIPConfig{
		"adaptive": {Score: defence.ScoreProfile, Adaptive: true},
		"fixed":    {Score: defence.ScoreProfile, Threshold: defence.ThresholdConfig{Rule: defence.ThresholdFixed, Value: 0.1}},
		"unknown":  {Score: "median"},
	} {
		if err := cfg.Validate(); !errors.Is(err, defence.ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
