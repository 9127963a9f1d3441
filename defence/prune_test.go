package defence_test

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/internal/testzoo"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// zooBadNet loads a BadNet of the shared reduced zoo with its clean
// validation and test data and its poisoned test sets.
func zooBadNet(t *testing.T, name string) (*tfmodels.Model, *data.Images, []defence.EvalSet) {
	t.Helper()
	dir, man := testzoo.Reduced(t)
	m, err := tfmodels.LoadSavedModel(filepath.Join(dir, name), tfmodels.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	val := readH5(t, filepath.Join(dir, "data", "clean_validation_data.h5"))
	evals := []defence.EvalSet{{Name: "clean_test_data.h5", Data: readH5(t, filepath.Join(dir, "data", "clean_test_data.h5"))}}
	attacks, err := man.Attacks(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range attacks {
		evals = append(evals, defence.EvalSet{Name: filepath.Base(a.Dataset.Path), Data: readH5(t, filepath.Join(dir, a.Dataset.Path)), Poisoned: true})
	}
	return m, val, evals
}

func readH5(t *testing.T, path string) *data.Images {
	t.Helper()
	imgs, err := data.ReadH5(path)
	if err != nil {
		t.Fatal(err)
	}
	return imgs
}

// TestFinePruneUnits sweeps two fractions of unit pruning on a reduced-zoo
// BadNet: the report has both, the choice follows the documented rule, the
// repaired model carries its masks with the pruned weights zeroed, fine-tuning
// lowers the attack success, and the BadNet itself is left unchanged.
func TestFinePruneUnits(t *testing.T) {
	m, val, evals := zooBadNet(t, "anonymous_1")
	w0, _ := m.GetWeights()
	cfg := defence.FinePruneConfig{Method: defence.PruneUnit, Fractions: []float64{0.6, 0.9}, FineTune: tfmodels.TrainSettings{Epochs: 3}, Seed: 1}
	var stages []string
	cfg.Progress = func(p defence.PruneProgress) {
		if p.Stage != "fine-tuning" {
			stages = append(stages, p.Stage)
		}
	}
	rep, err := prune(t, m, val, evals, cfg)
	if err != nil {
		t.Fatal(err)
	}
	repaired := rep.model
	defer repaired.Close()
	r := rep.report
	t.Logf("rule: %s; chosen %.2f; original %+v; chosen %+v", r.Rule, r.Fraction, r.Original, r.Chosen)
	if !slices.Equal(r.Layers, []string{"flatten_1", "flatten_2"}) {
		t.Errorf("default unit layers %v, want flatten_1 and flatten_2 (the inputs of the dense heads)", r.Layers)
	}
	if len(r.Sweep) != 2 || r.FineTune.Examples != 800 || r.FineTune.HoldOut != 200 {
		t.Fatalf("sweep of %d points, %d fine-tuning and %d held-out images; want 2, 800, 200", len(r.Sweep), r.FineTune.Examples, r.FineTune.HoldOut)
	}
	if want := []string{"scoring", "pruned", "fine-tuned", "pruned", "fine-tuned"}; !slices.Equal(stages, want) {
		t.Errorf("progress stages %v, want %v", stages, want)
	}
	// The rule: the largest fraction within the budget.
	floor := r.Original.HoldOutAccuracy - defence.DefaultFinePruneConfig(defence.PruneUnit).MaxAccuracyDrop
	want := -1.0
	for _, p := range r.Sweep {
		if p.FineTuned.HoldOutAccuracy >= floor {
			want = max(want, p.Fraction)
		}
	}
	if want > 0 && r.Fraction != want || r.WithinBudget != (want > 0) {
		t.Errorf("chose %.2f (within budget %v), the rule gives %.2f", r.Fraction, r.WithinBudget, want)
	}
	poisoned := evals[1].Name
	at9 := r.Sweep[1]
	if !(at9.FineTuned.AttackSuccess[poisoned] < r.Original.AttackSuccess[poisoned]) {
		t.Errorf("fine-pruning 0.9 did not lower the attack success: %.3f -> %.3f", r.Original.AttackSuccess[poisoned], at9.FineTuned.AttackSuccess[poisoned])
	}
	if at9.FineTuned.CleanAccuracy["clean_test_data.h5"] < 0.5 {
		t.Errorf("fine-pruned clean accuracy collapsed: %+v", at9.FineTuned)
	}
	// The repaired model: masks kept, pruned units zero in the weights too.
	rw, err := repaired.GetWeights()
	if err != nil {
		t.Fatal(err)
	}
	mask := rw["flatten_2/mask"].Values
	zeros := 0
	for i, v := range mask {
		if v == 0 {
			zeros++
			for j := 0; j < 160; j++ {
				if rw["fc_2/kernel"].Values[i*160+j] != 0 {
					t.Fatalf("flatten_2 unit %d is masked but fc_2 still reads it", i)
				}
			}
		}
	}
	if got := float64(zeros) / float64(len(mask)); got != r.Fraction && !(got > r.Fraction-0.01 && got < r.Fraction+0.01) {
		t.Errorf("%d of %d flatten_2 units pruned, want a fraction %.2f", zeros, len(mask), r.Fraction)
	}
	w1, _ := m.GetWeights()
	for name, v := range w0 {
		if !slices.Equal(v.Values, w1[name].Values) {
			t.Errorf("the BadNet's %s changed", name)
		}
	}
}

// TestFinePruneRefitDistilled: with Refit the returned model is the chosen
// fraction fine-tuned again on all the clean data (its figures are the
// report's Refit, not the sweep's), and with Distill the report says so and
// the fine-tuning differs from training on the labels alone.
func TestFinePruneRefitDistilled(t *testing.T) {
	m, val, evals := zooBadNet(t, "anonymous_1")
	base := defence.FinePruneConfig{Method: defence.PruneUnit, Fraction: 0.8, FineTune: tfmodels.TrainSettings{Epochs: 2}, Seed: 1}
	plain, err := prune(t, m, val, evals, base)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.model.Close()
	cfg := base
	cfg.Distill, cfg.Refit = 0.9, true
	var stages []string
	cfg.Progress = func(p defence.PruneProgress) {
		if p.Stage != "fine-tuning" && p.Stage != "refitting" {
			stages = append(stages, p.Stage)
		}
	}
	r, err := prune(t, m, val, evals, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.model.Close()
	rep := r.report
	if want := []string{"scoring", "pruned", "fine-tuned", "refitted"}; !slices.Equal(stages, want) {
		t.Errorf("progress stages %v, want %v", stages, want)
	}
	if rep.Refit == nil || rep.FineTune.Distill != 0.9 {
		t.Fatalf("report without the refit or the distillation weight: refit %v, distill %v", rep.Refit, rep.FineTune.Distill)
	}
	test := evals[0]
	_, acc, err := r.model.Evaluate(test.Data)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("test accuracy: labels %.4f, distilled sweep %.4f, distilled refit %.4f (returned model %.4f)",
		plain.report.Chosen.CleanAccuracy[test.Name], rep.Chosen.CleanAccuracy[test.Name], rep.Refit.CleanAccuracy[test.Name], acc)
	if acc != rep.Refit.CleanAccuracy[test.Name] {
		t.Errorf("the returned model scores %.4f on %s, the report's refit %.4f", acc, test.Name, rep.Refit.CleanAccuracy[test.Name])
	}
	if rep.Chosen.CleanAccuracy[test.Name] == plain.report.Chosen.CleanAccuracy[test.Name] && rep.Chosen.HoldOutAccuracy == plain.report.Chosen.HoldOutAccuracy {
		t.Error("distilled fine-tuning scored exactly like fine-tuning on the labels: were the soft targets used?")
	}
	if acc < 0.5 {
		t.Errorf("refit model's clean accuracy collapsed: %.4f", acc)
	}
}

// TestFinePruneChannelsDefaultLayers: channel pruning defaults to the last
// conv layer of each branch into the dense heads.
func TestFinePruneChannelsDefaultLayers(t *testing.T) {
	m, val, evals := zooBadNet(t, "sunglasses")
	rep, err := prune(t, m, val, evals[:1], defence.FinePruneConfig{Method: defence.PruneChannel, Fraction: 0.5, FineTune: tfmodels.TrainSettings{Epochs: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.model.Close()
	if !slices.Equal(rep.report.Layers, []string{"conv_3", "conv_4"}) {
		t.Errorf("default channel layers %v, want conv_3 and conv_4", rep.report.Layers)
	}
	w, _ := rep.model.GetWeights()
	if z := slices.Index(w["conv_4/channel_mask"].Values, 0); z < 0 {
		t.Error("no conv_4 channel pruned")
	} else if w["conv_4/bias"].Values[z] != 0 {
		t.Errorf("conv_4 channel %d is masked but its bias is %g", z, w["conv_4/bias"].Values[z])
	}
}

// TestFinePruneWeights: magnitude pruning reaches the final sparsity in
// every kernel.
func TestFinePruneWeights(t *testing.T) {
	m, val, evals := zooBadNet(t, "sunglasses")
	rep, err := prune(t, m, val, evals[:1], defence.FinePruneConfig{Method: defence.PruneWeight, FineTune: tfmodels.TrainSettings{Epochs: 2}, PruneEvery: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.model.Close()
	w, _ := rep.model.GetWeights()
	for _, l := range rep.report.Layers {
		k := w[l+"/kernel"].Values
		zeros := 0
		for _, v := range k {
			if v == 0 {
				zeros++
			}
		}
		if s := float64(zeros) / float64(len(k)); s < 0.79 || s > 0.81 {
			t.Errorf("%s: sparsity %.3f, want 0.8", l, s)
		}
	}
	if len(rep.report.Layers) != 7 {
		t.Errorf("weight pruning layers %v, want the 7 conv and dense layers", rep.report.Layers)
	}
}

func TestFinePruneConfig(t *testing.T) {
	for _, c := range []defence.FinePruneConfig{{Method: "neurons"}, {Fractions: []float64{1.2}}, {HoldOut: 1}, {Layers: []string{"nope"}}, {Distill: 1.5}, {Distill: -0.1}, {Occlude: 1.5}, {Occlude: math.NaN()}} {
		m, val, _ := zooBadNet(t, "sunglasses")
		if _, err := prune(t, m, val, nil, c); !errors.Is(err, defence.ErrConfig) {
			t.Errorf("config %+v: error %v, want ErrConfig", c, err)
		}
	}
}

type pruned struct {
	model  *tfmodels.Model
	report *defence.FinePruneReport
}

func prune(t *testing.T, m *tfmodels.Model, val *data.Images, evals []defence.EvalSet, cfg defence.FinePruneConfig) (pruned, error) {
	t.Helper()
	r, rep, err := defence.FinePrune(context.Background(), m, val, evals, cfg)
	return pruned{r, rep}, err
}

// TestReconstruct: the reconstructed model has N+1 classes and, trained on
// clean plus poisoned data labelled N, labels most poisoned test images N.
func TestReconstruct(t *testing.T) {
	m, val, evals := zooBadNet(t, "anonymous_1")
	pois := evals[1].Data.(*data.Images)
	half, err := pois.Slice(0, pois.Len()/2)
	if err != nil {
		t.Fatal(err)
	}
	rest, _ := pois.Slice(pois.Len()/2, pois.Len())
	r, h, err := defence.Reconstruct(context.Background(), m, val, []defence.Examples{half}, defence.ReconstructConfig{Train: tfmodels.TrainSettings{Epochs: 3}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.NumClasses != 11 || len(h.Epochs) != 3 {
		t.Fatalf("reconstructed: %d classes, %d epochs; want 11, 3", r.NumClasses, len(h.Epochs))
	}
	x, _ := rest.Float32(0, rest.Len())
	p, err := r.Predict(x, rest.Len())
	if err != nil {
		t.Fatal(err)
	}
	asN := 0
	for _, l := range tfmodels.Labels(p, 11) {
		if l == 10 {
			asN++
		}
	}
	t.Logf("held-out poisoned images labelled N: %d of %d", asN, rest.Len())
	if asN < rest.Len()/2 {
		t.Errorf("only %d of %d held-out poisoned images labelled N", asN, rest.Len())
	}
}

// TestFinePruneOcclusion: fine-pruning occludes its fine-tuning images by
// default (the report says 0.5) and not with NoOcclusion (0). On the
// reduced zoo's multi-trigger BadNet, whose sunglasses band covers a
// quarter of the image, the occluded repair leaves less of every trigger
// at the same fraction and seed.
func TestFinePruneOcclusion(t *testing.T) {
	m, val, evals := zooBadNet(t, "multi_trigger")
	base := defence.FinePruneConfig{Method: defence.PruneUnit, Fraction: 0.6, FineTune: tfmodels.TrainSettings{Epochs: 3}, Seed: 1}
	run := func(occlude float64) *defence.FinePruneReport {
		cfg := base
		cfg.Occlude = occlude
		r, err := prune(t, m, val, evals, cfg)
		if err != nil {
			t.Fatal(err)
		}
		r.model.Close()
		return r.report
	}
	occluded, plain := run(0), run(defence.NoOcclusion)
	if occluded.FineTune.Occlude != 0.5 || plain.FineTune.Occlude != 0 {
		t.Errorf("reported occlusion %v by default and %v with NoOcclusion, want 0.5 and 0", occluded.FineTune.Occlude, plain.FineTune.Occlude)
	}
	test := evals[0].Name
	t.Logf("clean test accuracy: BadNet %.4f, plain %.4f, occluded %.4f", occluded.Original.CleanAccuracy[test], plain.Chosen.CleanAccuracy[test], occluded.Chosen.CleanAccuracy[test])
	for _, e := range evals[1:] {
		o, p := occluded.Chosen.AttackSuccess[e.Name], plain.Chosen.AttackSuccess[e.Name]
		t.Logf("%s: attack success plain %.4f, occluded %.4f", e.Name, p, o)
		if o > p {
			t.Errorf("%s: occluded fine-tuning left more of the attack (%.4f) than plain fine-tuning (%.4f)", e.Name, o, p)
		}
	}
}
