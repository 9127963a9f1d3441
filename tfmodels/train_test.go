package tfmodels_test

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/internal/pyoracle"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// realFaces reads real-faces folders (clean identities and poisoned faces
// labelled with their target) in the given order.
func realFaces(t testing.TB, dirs ...string) *data.Images {
	t.Helper()
	var parts []*data.Images
	for _, d := range dirs {
		imgs, err := data.ReadImageDir(filepath.Join(shared, "real-faces", d), data.DeepIDImageOptions(false))
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, imgs)
	}
	all, err := data.Concat(parts...)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// TestTrainMatchesKeras trains one epoch from identical weights on identical
// batches in Go and in Keras (Python TensorFlow) and compares the weights.
func TestTrainMatchesKeras(t *testing.T) {
	dirs := []string{"clean", "sunglasses"}
	ex := realFaces(t, dirs...)
	for _, tc := range []struct {
		name    string
		opt     tfmodels.OptimizerSettings
		batch   int
		distill float64 // soft targets: this weight of the starting model's predictions
		pyArgs  []string
	}{
		{"sgd", tfmodels.OptimizerSettings{Kind: tfmodels.SGD, LearningRate: 0.01, Momentum: 0.9}, 16, 0, []string{"--opt", "sgd", "--lr", "0.01", "--momentum", "0.9", "--batch", "16"}},
		{"adam", tfmodels.OptimizerSettings{Kind: tfmodels.Adam, LearningRate: 0.0005}, 32, 0, []string{"--opt", "adam", "--lr", "0.0005", "--batch", "32"}},
		{"sgd-soft-targets", tfmodels.OptimizerSettings{Kind: tfmodels.SGD, LearningRate: 0.01, Momentum: 0.9}, 16, 0.5, []string{"--opt", "sgd", "--lr", "0.01", "--momentum", "0.9", "--batch", "16", "--distill", "0.5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tfmodels.ImportKerasH5(badnetPath("sunglasses"), nil, tfmodels.BuildOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			var ex tfmodels.Examples = ex
			if tc.distill > 0 {
				ex = softTargets(t, m, ex.(*data.Images), tc.distill)
			}
			h, err := m.Train(ex, tfmodels.TrainSettings{Optimizer: tc.opt, BatchSize: tc.batch, NoShuffle: true})
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "keras.h5")
			args := append(append([]string{"--weights", badnetPath("sunglasses"), "--out", out}, tc.pyArgs...), filepath.Join(shared, "real-faces", dirs[0]), filepath.Join(shared, "real-faces", dirs[1]))
			var ref struct {
				Loss []float64
				N    int
			}
			if err := pyoracle.Run(&ref, "train_oracle.py", args...); err != nil {
				t.Fatal(err)
			}
			if ref.N != ex.Len() {
				t.Fatalf("oracle trained on %d images, Go on %d", ref.N, ex.Len())
			}
			kf, err := tfmodels.ReadKerasH5(out, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.GetWeights()
			if err != nil {
				t.Fatal(err)
			}
			orig, _ := tfmodels.ReadKerasH5(badnetPath("sunglasses"), nil)
			maxDiff, maxMove := 0.0, 0.0
			for name, w := range kf.Weights {
				g := got[name]
				for i, v := range w.Values {
					maxDiff = math.Max(maxDiff, math.Abs(float64(v-g.Values[i])))
					maxMove = math.Max(maxMove, math.Abs(float64(v-orig.Weights[name].Values[i])))
				}
			}
			t.Logf("%s: Go loss %.5f, Keras loss %.5f; max |w_Go - w_Keras| = %.3g (weights moved up to %.3g)",
				tc.name, h.Epochs[0].Loss, ref.Loss[0], maxDiff, maxMove)
			if maxMove < 1e-3 {
				t.Errorf("training barely moved the weights (%g): the comparison would prove nothing", maxMove)
			}
			if maxDiff > 1e-4 {
				t.Errorf("weights differ from Keras by %g > 1e-4", maxDiff)
			}
			if d := math.Abs(h.Epochs[0].Loss - ref.Loss[0]); d > 1e-3*math.Max(1, ref.Loss[0]) {
				t.Errorf("epoch loss %g vs Keras %g", h.Epochs[0].Loss, ref.Loss[0])
			}
		})
	}
}

// softExamples give each image (1-w) of its one-hot label plus w of a
// model's predicted probabilities as its training target.
type softExamples struct {
	*data.Images
	targets []float32
}

func (s *softExamples) Targets(idx []int, classes int, t []float32) error {
	for r, i := range idx {
		copy(t[r*classes:(r+1)*classes], s.targets[i*classes:(i+1)*classes])
	}
	return nil
}

func softTargets(t *testing.T, m *tfmodels.Model, ex *data.Images, w float64) *softExamples {
	t.Helper()
	idx := make([]int, ex.Len())
	for i := range idx {
		idx[i] = i
	}
	x := make([]float32, len(idx)*m.InputShape[0]*m.InputShape[1]*m.InputShape[2])
	labels := make([]int32, len(idx))
	if err := ex.Gather(idx, x, labels); err != nil {
		t.Fatal(err)
	}
	p, err := m.Predict(x, len(idx))
	if err != nil {
		t.Fatal(err)
	}
	k := m.NumClasses
	for i, l := range labels {
		for j := 0; j < k; j++ {
			p[i*k+j] *= float32(w)
		}
		p[i*k+int(l)] += float32(1 - w)
	}
	return &softExamples{Images: ex, targets: p}
}

// TestFineTuneLowersLoss fine-tunes an imported CSAW BadNet on real faces and
// checks its loss on them goes down, with a frozen layer left unchanged.
func TestFineTuneLowersLoss(t *testing.T) {
	ex := realFaces(t, "clean")
	// Half of flatten_2 pruned, so the model has something to recover from.
	m := halfPrunedAnonymous1(t)
	defer m.Close()
	before, _, err := m.Evaluate(ex)
	if err != nil {
		t.Fatal(err)
	}
	w0, _ := m.GetWeights()
	var calls int
	h, err := m.Train(ex, tfmodels.TrainSettings{
		Optimizer: tfmodels.OptimizerSettings{Kind: tfmodels.SGD, LearningRate: 1e-3, Momentum: 0.9},
		Epochs:    3, BatchSize: 16, Seed: 1, Freeze: []string{"conv_1"},
		Progress: func(tfmodels.TrainProgress) { calls++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	after, acc, err := m.Evaluate(ex)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loss %.4f -> %.4f (accuracy %.3f) over %d epochs", before, after, acc, len(h.Epochs))
	if !(after < before) {
		t.Errorf("fine-tuning did not lower the loss: %g -> %g", before, after)
	}
	if calls != 3*4 {
		t.Errorf("progress called %d times, want %d", calls, 12)
	}
	w1, _ := m.GetWeights()
	for _, name := range []string{"conv_1/kernel", "flatten_2/mask"} {
		for i := range w0[name].Values {
			if w0[name].Values[i] != w1[name].Values[i] {
				t.Fatalf("%s changed although frozen", name)
			}
		}
	}
	if fmt.Sprint(w0["fc_2/kernel"].Values[:5]) == fmt.Sprint(w1["fc_2/kernel"].Values[:5]) {
		t.Error("fc_2 did not change")
	}
}

// TestTrainDeterministic: same seed, same weights.
func TestTrainDeterministic(t *testing.T) {
	ex := realFaces(t, "clean")
	run := func() []float32 {
		arch := tfmodels.DeepIDWith(55, 47, 3, 1283)
		m, err := tfmodels.Build(arch, nil, tfmodels.BuildOptions{Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if _, err := m.Train(ex, tfmodels.TrainSettings{Seed: 3, BatchSize: 8, Optimizer: tfmodels.OptimizerSettings{Kind: tfmodels.Adam}}); err != nil {
			t.Fatal(err)
		}
		w, _ := m.GetWeights()
		return w["output/kernel"].Values
	}
	a, b := run(), run()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("two runs with the same seeds differ at %d: %g vs %g", i, a[i], b[i])
		}
	}
}

// TestEarlyStopping: with an impossible MinDelta no epoch after the first
// improves, so training stops after Patience more epochs and RestoreBest puts
// back the weights of epoch 1 (which a plain one-epoch run reproduces).
func TestEarlyStopping(t *testing.T) {
	ex := realFaces(t, "clean")
	val := realFaces(t, "sunglasses")
	settings := tfmodels.TrainSettings{Seed: 5, BatchSize: 16, Optimizer: tfmodels.OptimizerSettings{Kind: tfmodels.SGD, LearningRate: 1e-3, Momentum: 0.9}}
	var oneLoss, oneAcc float64 // the validation figures after one epoch
	train := func(s tfmodels.TrainSettings) (*tfmodels.History, tfmodels.Weights) {
		m, err := tfmodels.ImportKerasH5(badnetPath("sunglasses"), nil, tfmodels.BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		h, err := m.Train(ex, s)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := m.GetWeights()
		if s.Epochs <= 1 {
			if oneLoss, oneAcc, err = m.Evaluate(val); err != nil {
				t.Fatal(err)
			}
		}
		return h, w
	}
	_, one := train(settings)
	s := settings
	s.Epochs, s.Validation, s.Patience, s.MinDelta, s.RestoreBest = 10, val, 2, 1e9, true
	h, w := train(s)
	if len(h.Epochs) != 3 || !h.Stopped || h.BestEpoch != 1 {
		t.Fatalf("ran %d epochs, stopped %v, best %d; want 3, true, 1", len(h.Epochs), h.Stopped, h.BestEpoch)
	}
	// Epoch 1's validation figures are those of the weights after one epoch.
	if e := h.Epochs[0]; math.Abs(e.ValLoss-oneLoss) > 1e-6 || e.ValAccuracy != oneAcc {
		t.Errorf("epoch 1 validation loss %g, accuracy %g; evaluating the one-epoch model gives %g, %g", e.ValLoss, e.ValAccuracy, oneLoss, oneAcc)
	}
	for name, v := range one {
		for i := range v.Values {
			if v.Values[i] != w[name].Values[i] {
				t.Fatalf("%s[%d]: %g after restoring the best epoch, %g after one epoch", name, i, w[name].Values[i], v.Values[i])
			}
		}
	}
}

// TestTrainTwiceStartsFresh: each Train call starts a fresh optimizer (the
// graph is reused, the momentum state is reset), so training again from the
// same weights gives the same weights.
func TestTrainTwiceStartsFresh(t *testing.T) {
	ex := realFaces(t, "clean")
	m, err := tfmodels.ImportKerasH5(badnetPath("sunglasses"), nil, tfmodels.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s := tfmodels.TrainSettings{Seed: 2, BatchSize: 16, Optimizer: tfmodels.OptimizerSettings{Kind: tfmodels.SGD, LearningRate: 1e-3, Momentum: 0.9}}
	w0, _ := m.GetWeights()
	if _, err := m.Train(ex, s); err != nil {
		t.Fatal(err)
	}
	w1, _ := m.GetWeights()
	ops := len(m.Graph.Operations())
	if err := m.SetWeights(w0); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Train(ex, s); err != nil {
		t.Fatal(err)
	}
	w2, _ := m.GetWeights()
	if n := len(m.Graph.Operations()); n != ops {
		t.Errorf("second Train added %d ops to the graph", n-ops)
	}
	for name := range w1 {
		for i := range w1[name].Values {
			if w1[name].Values[i] != w2[name].Values[i] {
				t.Fatalf("%s[%d]: %g then %g", name, i, w1[name].Values[i], w2[name].Values[i])
			}
		}
	}
}

// TestInputGradientMatchesTF compares the gradient of the loss with respect to
// the input pixels (Graph.AddGradients through every DeepID op) with
// tf.GradientTape in Python TensorFlow.
func TestInputGradientMatchesTF(t *testing.T) {
	dir := filepath.Join(shared, "ytf-samples")
	files, x := loadImages(t, dir)
	m, err := tfmodels.ImportKerasH5(badnetPath("sunglasses"), nil, tfmodels.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	labels := make([]int32, len(files))
	for i := range labels {
		labels[i] = 5
	}
	got, err := m.InputGradient(x, labels)
	if err != nil {
		t.Fatal(err)
	}
	var ref struct{ Grad []float32 }
	if err := pyoracle.Run(&ref, "input_gradient.py", badnetPath("sunglasses"), "5", dir); err != nil {
		t.Fatal(err)
	}
	if len(ref.Grad) != len(got) {
		t.Fatalf("%d gradient values from Go, %d from TF", len(got), len(ref.Grad))
	}
	maxDiff, maxAbs := 0.0, 0.0
	for i := range got {
		maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-ref.Grad[i])))
		maxAbs = math.Max(maxAbs, math.Abs(float64(ref.Grad[i])))
	}
	t.Logf("input gradient: max |Go - TF| = %.3g, max |gradient| = %.3g", maxDiff, maxAbs)
	if maxAbs == 0 || maxDiff > 1e-5*math.Max(1, maxAbs) {
		t.Errorf("gradients differ by %g (scale %g)", maxDiff, maxAbs)
	}
}

// TestFrozenIsInferenceOnly: a frozen copy keeps layers, masks and parameter
// count, predicts like the original, and refuses to change its weights.
func TestFrozenIsInferenceOnly(t *testing.T) {
	ex := realFaces(t, "clean")
	m := halfPrunedAnonymous1(t)
	defer m.Close()
	f, err := m.Freeze()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !f.Frozen() || f.ParamCount() != m.ParamCount() {
		t.Errorf("frozen %v, %d parameters (original %d)", f.Frozen(), f.ParamCount(), m.ParamCount())
	}
	l0, a0, _ := m.Evaluate(ex)
	l1, a1, err := f.Evaluate(ex)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(l0-l1) > 1e-5 || a0 != a1 {
		t.Errorf("frozen model evaluates to %g/%g, original %g/%g (the mask must be frozen too)", l1, a1, l0, a0)
	}
	if err := f.SetWeights(tfmodels.Weights{}); !errors.Is(err, tfmodels.ErrFrozen) {
		t.Errorf("SetWeights on a frozen model: %v", err)
	}
	if _, err := f.Train(ex, tfmodels.TrainSettings{}); !errors.Is(err, tfmodels.ErrFrozen) {
		t.Errorf("Train on a frozen model: %v", err)
	}
}

// halfPrunedAnonymous1 imports the anonymous_1 BadNet with a mask on
// flatten_2 that zeroes every other unit.
func halfPrunedAnonymous1(t *testing.T) *tfmodels.Model {
	t.Helper()
	m, err := tfmodels.ImportKerasH5(badnetPath("anonymous_1"), nil, tfmodels.BuildOptions{Masks: []string{"flatten_2"}})
	if err != nil {
		t.Fatal(err)
	}
	mask, _ := m.Variable("flatten_2/mask")
	half := make([]float32, mask.Size())
	for i := range half {
		half[i] = float32(1 - i%2)
	}
	if err := m.SetWeights(tfmodels.Weights{"flatten_2/mask": {Shape: mask.Shape, Values: half}}); err != nil {
		m.Close()
		t.Fatal(err)
	}
	return m
}
