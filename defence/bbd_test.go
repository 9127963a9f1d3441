package defence_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unsafe"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/exporter"
	"github.com/bbd-workbench/bbd/internal/pyoracle"
	"github.com/bbd-workbench/bbd/internal/tfgotest"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// TestBBDCombinedModel builds the untargeted and targeted BBD of a reduced-zoo
// BadNet and a fine-pruned copy, and checks on the mixed test set (clean
// test + poisoned): the graph's decision equals the Go pipeline (each model
// alone, then Decide), and the exported SavedModel gives the same labels
// loaded in bbd, in Python TensorFlow and with tfgo.
func TestBBDCombinedModel(t *testing.T) {
	badnet, val, evals := zooBadNet(t, "sunglasses")
	repaired, _, err := defence.FinePrune(context.Background(), badnet, val, nil,
		defence.FinePruneConfig{Fraction: 0.9, FineTune: tfmodels.TrainSettings{Epochs: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer repaired.Close()
	var parts []*data.Images
	for _, e := range evals {
		parts = append(parts, e.Data.(*data.Images))
	}
	mixed, err := data.Concat(parts...)
	if err != nil {
		t.Fatal(err)
	}
	n := mixed.Len()
	x, _ := mixed.Float32(0, n)
	bl := predictLabels(t, badnet, x, n)
	rl := predictLabels(t, repaired, x, n)
	flaggedByLabels := map[string]int{}
	for _, cfg := range []defence.BBDConfig{{}, {Targets: []int{0}}, {MaxGap: -1}, {Targets: []int{0}, MaxGap: -1}} {
		name := cfg.Mode()
		if cfg.MaxGap != 0 {
			// The gap from clean data, as bbd defend --clean does.
			name += "-gap"
			b, err := defence.NewBBD(badnet, repaired, defence.BBDConfig{Targets: cfg.Targets})
			if err != nil {
				t.Fatal(err)
			}
			cfg.MaxGap, err = b.GapForFRR(context.Background(), val, 0.02)
			b.Close()
			if err != nil || !(cfg.MaxGap > 0 && cfg.MaxGap < 1) {
				t.Fatalf("GapForFRR: %v, %v", cfg.MaxGap, err)
			}
		}
		t.Run(name, func(t *testing.T) {
			b, err := defence.NewBBD(badnet, repaired, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			got, err := b.Predict(x, n)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]int, n)
			flagged := 0
			for i := range want {
				want[i] = defence.Decide(bl[i], rl[i], cfg, 10)
				if want[i] == 10 {
					flagged++
				}
			}
			if cfg.MaxGap != 0 {
				// With the gap, the Go decision reads the combined model's
				// own probabilities, so that rounding cannot move a gap
				// across the threshold; it flags more than the labels do.
				want, flagged = decideProbs(t, b, x, n, cfg)
				if flagged <= flaggedByLabels[cfg.Mode()] {
					t.Errorf("the gap flags %d inputs, the labels alone %d", flagged, flaggedByLabels[cfg.Mode()])
				}
			} else {
				if w, _ := decideProbs(t, b, x, n, cfg); !slices.Equal(w, want) {
					t.Errorf("DecideProbs differs from Decide on %d inputs", countDiff(w, want))
				}
				flaggedByLabels[cfg.Mode()] = flagged
			}
			if !slices.Equal(got, want) {
				t.Fatalf("the graph's decision differs from the Go pipeline on %d of %d inputs", countDiff(got, want), n)
			}
			if flagged == 0 || flagged == n {
				t.Fatalf("%d of %d inputs flagged: the test would prove little", flagged, n)
			}
			// Detect's scores order the inputs by the decision: above the
			// threshold exactly where the graph says poisoned.
			det, err := b.Detect(context.Background(), x, n)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if det.Labels[i] != got[i] || det.Flags[i] != (got[i] == 10) || (det.Scores[i] > det.Threshold) != det.Flags[i] {
					t.Fatalf("input %d: Detect label %d flag %v score %v (threshold %v), graph label %d", i, det.Labels[i], det.Flags[i], det.Scores[i], det.Threshold, got[i])
				}
			}
			dir := filepath.Join(t.TempDir(), "bbd")
			if err := b.Export(dir, exporter.Options{}); err != nil {
				t.Fatal(err)
			}
			back, err := defence.LoadBBD(dir, tfmodels.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer back.Close()
			if back.Config.Mode() != cfg.Mode() || back.Config.MaxGap != cfg.MaxGap || back.N != 10 {
				t.Errorf("reloaded BBD: mode %s, gap %v, N %d", back.Config.Mode(), back.Config.MaxGap, back.N)
			}
			if got, err := back.Predict(x, n); err != nil || !slices.Equal(got, want) {
				t.Errorf("reloaded in bbd: %d of %d labels differ (%v)", countDiff(got, want), n, err)
			}
			py := pythonLabels(t, dir, x, n)
			if !slices.Equal(py, want) {
				t.Errorf("Python TensorFlow: %d of %d labels differ", countDiff(py, want), n)
			}
			tg, err := tfgoLabels(dir, x, n)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tg, want) {
				t.Errorf("tfgo: %d of %d labels differ", countDiff(tg, want), n)
			}
		})
	}
}

// TestEvaluateBBD checks the Table 4 figures against counts made here.
func TestEvaluateBBD(t *testing.T) {
	badnet, val, evals := zooBadNet(t, "anonymous_1")
	repaired, _, err := defence.FinePrune(context.Background(), badnet, val, nil,
		defence.FinePruneConfig{Fraction: 0.9, FineTune: tfmodels.TrainSettings{Epochs: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer repaired.Close()
	b, err := defence.NewBBD(badnet, repaired, defence.BBDConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	e, err := defence.EvaluateBBD(context.Background(), b, evals[0].Data, evals[1:])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", e)
	clean, pois := evals[0].Data.(*data.Images), evals[1].Data.(*data.Images)
	cx, _ := clean.Float32(0, clean.Len())
	px, _ := pois.Float32(0, pois.Len())
	cl, _ := b.Predict(cx, clean.Len())
	pl, _ := b.Predict(px, pois.Len())
	frr, far, right := 0, 0, 0
	for i, l := range cl {
		if l == 10 {
			frr++
		} else if l == clean.Labels[i] {
			right++
		}
	}
	for _, l := range pl {
		if l != 10 {
			far++
		} else {
			right++
		}
	}
	total := len(cl) + len(pl)
	checks := []struct {
		name      string
		got, want float64
	}{
		{"frr", e.FRR, float64(frr) / float64(len(cl))},
		{"far", e.FAR, float64(far) / float64(len(pl))},
		{"frr over total", e.FRRTotal, float64(frr) / float64(total)},
		{"far over total", e.FARTotal, float64(far) / float64(total)},
		{"accuracy", e.Accuracy.Value(), float64(right) / float64(total)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %g, counted %g", c.name, c.got, c.want)
		}
	}
	p := defence.PredictBBD(e.BadNet.CleanAccuracy, e.BadNet.AttackSuccess, e.Repaired.CleanAccuracy, e.Repaired.AttackSuccess, 10, 1)
	if p != e.Predicted {
		t.Errorf("predicted %+v, want %+v", e.Predicted, p)
	}
	lo, hi := p.UntargetedClean[0], p.UntargetedClean[1]
	if inside := e.CleanAccuracy.Value() >= lo && e.CleanAccuracy.Value() <= hi; inside != e.InsideEq5 {
		t.Errorf("clean accuracy %v in [%g, %g]: report says %v", e.CleanAccuracy, lo, hi, e.InsideEq5)
	}
	if e.MaxGap != 0 || e.GapFlaggedClean != 0 || e.GapFlaggedPoisoned != 0 {
		t.Errorf("labels only: max gap %v, flagged by it %d clean, %d poisoned", e.MaxGap, e.GapFlaggedClean, e.GapFlaggedPoisoned)
	}

	// The gap chosen for an extra FRR of 0.03 on the clean data it is
	// calibrated on flags at most 3 % more of it, and some.
	const extra = 0.03
	gap, err := b.GapForFRR(context.Background(), val, extra)
	if err != nil {
		t.Fatal(err)
	}
	bg, err := defence.NewBBD(badnet, repaired, defence.BBDConfig{MaxGap: gap})
	if err != nil {
		t.Fatal(err)
	}
	defer bg.Close()
	eg, err := defence.EvaluateBBD(context.Background(), bg, val, evals[1:])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gap %.4f: flagged by it %d of %d clean, %d of %d poisoned", gap, eg.GapFlaggedClean, eg.CleanImages, eg.GapFlaggedPoisoned, eg.PoisonedImages)
	if limit := int(extra * float64(val.Len())); eg.GapFlaggedClean > limit || eg.GapFlaggedClean < limit*9/10 {
		t.Errorf("the gap %v flags %d of %d clean calibration inputs, want at most (and near) %d", gap, eg.GapFlaggedClean, val.Len(), limit)
	}
	if eg.MaxGap != gap {
		t.Errorf("evaluation reports max gap %v, want %v", eg.MaxGap, gap)
	}
	for _, bad := range []float64{-0.1, 1, math.NaN()} {
		if _, err := defence.NewBBD(badnet, repaired, defence.BBDConfig{MaxGap: bad}); !errors.Is(err, defence.ErrConfig) {
			t.Errorf("MaxGap %v: %v, want a config error", bad, err)
		}
		if _, err := b.GapForFRR(context.Background(), val, bad); !errors.Is(err, defence.ErrConfig) {
			t.Errorf("GapForFRR(%v): %v, want a config error", bad, err)
		}
	}
}

func TestPredictBBD(t *testing.T) {
	p := defence.PredictBBD(0.9, 1.0, 0.8, 0.1, 10, 1)
	want := defence.BBDPrediction{TargetedClean: 0.9*0.9 + 0.9*0.1*0.8, TargetedPoisoned: 0.9,
		UntargetedClean: [2]float64{0.9 + 0.8 - 1, 0.9}, UntargetedPoisoned: [2]float64{0.9, 1.0}}
	if fmt.Sprintf("%.6f", []float64{p.TargetedClean, p.TargetedPoisoned, p.UntargetedClean[0], p.UntargetedClean[1], p.UntargetedPoisoned[0], p.UntargetedPoisoned[1]}) !=
		fmt.Sprintf("%.6f", []float64{want.TargetedClean, want.TargetedPoisoned, want.UntargetedClean[0], want.UntargetedClean[1], want.UntargetedPoisoned[0], want.UntargetedPoisoned[1]}) {
		t.Errorf("PredictBBD = %+v, want %+v", p, want)
	}
}

// decideProbs is DecideProbs on the probabilities of b's two nets, and the
// number of inputs it flags.
func decideProbs(t *testing.T, b *defence.BBD, x []float32, n int, cfg defence.BBDConfig) ([]int, int) {
	t.Helper()
	g := b.Model.Graph
	res, err := b.Model.Run(x, n, g.Operation("badnet/probabilities").Output(0), g.Operation("repaired/probabilities").Output(0))
	if err != nil {
		t.Fatal(err)
	}
	out, flagged := make([]int, n), 0
	for i := range out {
		out[i] = defence.DecideProbs(res[0][i*10:(i+1)*10], res[1][i*10:(i+1)*10], cfg)
		if out[i] == 10 {
			flagged++
		}
	}
	return out, flagged
}

func predictLabels(t *testing.T, m *tfmodels.Model, x []float32, n int) []int {
	t.Helper()
	p, err := m.Predict(x, n)
	if err != nil {
		t.Fatal(err)
	}
	return tfmodels.Labels(p, m.NumClasses)
}

func countDiff(a, b []int) int {
	if len(a) != len(b) {
		return max(len(a), len(b))
	}
	d := 0
	for i := range a {
		if a[i] != b[i] {
			d++
		}
	}
	return d
}

// pythonLabels runs the SavedModel's serving_default in Python TensorFlow and
// returns its "label" output.
func pythonLabels(t *testing.T, dir string, x []float32, n int) []int {
	t.Helper()
	raw := filepath.Join(t.TempDir(), "x.f32")
	if err := os.WriteFile(raw, unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x)), 0o644); err != nil {
		t.Fatal(err)
	}
	var out struct{ Outputs map[string]json.RawMessage }
	if err := pyoracleRun(&out, dir, raw, n); err != nil {
		t.Fatal(err)
	}
	var labels []int
	if err := json.Unmarshal(out.Outputs["label"], &labels); err != nil {
		t.Fatalf("Python label output: %v", err)
	}
	return labels
}

func pyoracleRun(out interface{}, dir, raw string, n int) error {
	return pyoracle.Run(out, "savedmodel_raw_outputs.py", dir, raw, fmt.Sprint(n), "55", "47", "3")
}

// tfgoLabels loads dir with tfgo.LoadModel and fetches "bbd/label".
func tfgoLabels(dir string, x []float32, n int) ([]int, error) {
	res, err := tfgotest.Run(dir, x, [4]int64{int64(n), 55, 47, 3}, "bbd/label")
	if err != nil {
		return nil, err
	}
	var labels []int
	for _, v := range res[0].Value().([]int32) {
		labels = append(labels, int(v))
	}
	return labels, nil
}
