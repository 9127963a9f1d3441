package defence_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	tf "github.com/galeone/tensorflow/tensorflow/go"
	tfgo "github.com/galeone/tfgo"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/exporter"
	"github.com/bbd-workbench/bbd/internal/pyoracle"
	"github.com/bbd-workbench/bbd/metrics"
	"github.com/bbd-workbench/bbd/tfmodels"
	"github.com/bbd-workbench/bbd/zoo"
)

// stripZoo builds the reduced zoo's sunglasses BadNet in a temporary folder
// of t ($BBD_ZOO names an existing zoo instead).
func stripZoo(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("BBD_ZOO"); d != "" {
		return d
	}
	dir := filepath.Join(t.TempDir(), "zoo")
	cfg := zoo.ReducedConfig()
	cfg.Only = []string{"sunglasses"}
	if _, err := zoo.Build(dir, cfg); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDetectorsReducedZoo builds the reduced zoo's sunglasses BadNet once and
// runs the detector tests on it.
func TestDetectorsReducedZoo(t *testing.T) {
	dir := stripZoo(t)
	t.Run("detectors", func(t *testing.T) { testDetectors(t, dir) })
	t.Run("export", func(t *testing.T) { testSTRIPExport(t, dir) })
}

// stripZooSets loads the sunglasses BadNet and n images of the clean validation,
// clean test and poisoned test sets.
func stripZooSets(t *testing.T, dir string, n int) (m *tfmodels.Model, val, clean, poisoned *data.Images) {
	t.Helper()
	m, err := tfmodels.LoadSavedModel(filepath.Join(dir, "sunglasses"), tfmodels.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	read := func(name string) *data.Images {
		r, err := data.OpenH5(filepath.Join(dir, "data", name))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		imgs, err := r.ReadBatch(0, min(n, r.Len()))
		if err != nil {
			t.Fatal(err)
		}
		return imgs
	}
	return m, read("clean_validation_data.h5"), read("clean_test_data.h5"), read("sunglasses_sunglasses_poisoned_data.h5")
}

type stripScorer interface {
	ScoreExamples(ctx context.Context, ex defence.Examples) ([]float64, []int, error)
	Direction() metrics.Direction
}

func stripAUROC(t *testing.T, d stripScorer, clean, poisoned *data.Images) float64 {
	t.Helper()
	cs, _, err := d.ScoreExamples(context.Background(), clean)
	if err != nil {
		t.Fatal(err)
	}
	ps, _, err := d.ScoreExamples(context.Background(), poisoned)
	if err != nil {
		t.Fatal(err)
	}
	truth := make([]bool, len(cs)+len(ps))
	for i := len(cs); i < len(truth); i++ {
		truth[i] = true
	}
	a, err := metrics.AUROC(append(cs, ps...), truth, d.Direction())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// testDetectors: on the reduced zoo's sunglasses BadNet, STRIP
// separates clean and triggered inputs (triggered = lower entropy), a
// threshold at FRR 0.05 from clean validation data keeps the test FRR near
// 0.05; SCALE-UP and TeCo give scores in their ranges. Adaptive STRIP
// decides as fixed-M STRIP within 0.02 with fewer overlays.
func testDetectors(t *testing.T, dir string) {
	m, val, clean, poisoned := stripZooSets(t, dir, 200)
	ctx := context.Background()
	s, err := defence.NewSTRIP(m, val, defence.STRIPConfig{Seed: 1, Overlays: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.WhiteBox() {
		t.Error("STRIP on a bbd SavedModel is not white-box")
	}
	if _, err := s.Calibrate(ctx, val); err != nil {
		t.Fatal(err)
	}
	x, err := data.Concat(clean, poisoned)
	if err != nil {
		t.Fatal(err)
	}
	xs := stripFloats(t, x)
	truth := make([]bool, x.Len())
	for i := clean.Len(); i < len(truth); i++ {
		truth[i] = true
	}
	fixed, err := s.Detect(ctx, xs, x.Len())
	if err != nil {
		t.Fatal(err)
	}
	fd, _ := metrics.Detect(fixed.Flags, truth)
	auroc, _ := metrics.AUROC(fixed.Scores, truth, metrics.LowerPoisoned)
	t.Logf("STRIP M=50: threshold %.4f, FRR %v, FAR %v, AUROC %.3f", fixed.Threshold, fd.FRR(), fd.FAR(), auroc)
	// The reduced zoo's BadNet (3 epochs on 8,000 images) is a weaker STRIP
	// case than the full zoo's (AUROC >= 0.99 there, README; 0.91 measured
	// here with the default light blend, 0.67 with pixel sums): the test
	// asserts separation the right way round, not the full zoo's figures.
	if auroc < 0.8 || fd.FRR().Value() > 0.15 {
		t.Errorf("STRIP on the reduced zoo: AUROC %.3f, FRR %v, FAR %v", auroc, fd.FRR(), fd.FAR())
	}
	ad, err := s.DetectAdaptive(ctx, xs, x.Len())
	if err != nil {
		t.Fatal(err)
	}
	dd, _ := metrics.Detect(ad.Flags, truth)
	total := 0
	for _, q := range ad.Queries {
		total += q
		if q < 10 || q > 50 || q%10 != 0 {
			t.Fatalf("adaptive: %d overlays for an input", q)
		}
	}
	avg := float64(total) / float64(len(ad.Queries))
	t.Logf("adaptive STRIP: FRR %v, FAR %v, %.1f overlays per input on average (fixed: 50)", dd.FRR(), dd.FAR(), avg)
	if math.Abs(dd.FRR().Value()-fd.FRR().Value()) > 0.02 || math.Abs(dd.FAR().Value()-fd.FAR().Value()) > 0.02 || avg > 45 {
		t.Errorf("adaptive STRIP: FRR %v FAR %v with %.1f overlays; fixed M: FRR %v FAR %v", dd.FRR(), dd.FAR(), avg, fd.FRR(), fd.FAR())
	}

	su, err := defence.NewScaleUp(m, defence.ScaleUpConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close()
	tc, err := defence.NewTeCo(m, defence.TeCoConfig{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	for _, d := range []interface {
		stripScorer
		Name() string
	}{su, tc} {
		a := stripAUROC(t, d, clean, poisoned)
		t.Logf("%s: AUROC %.3f", d.Name(), a)
		if math.IsNaN(a) || a < 0 || a > 1 {
			t.Errorf("%s: AUROC %v", d.Name(), a)
		}
	}
	sc, _, err := su.ScoreExamples(ctx, clean)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range sc {
		if v < 0 || v > 1 || math.Abs(v*5-math.Round(v*5)) > 1e-9 {
			t.Fatalf("SCALE-UP score %v is not a share of 5 scaled copies", v)
		}
	}
}

// testSTRIPExport: the exported STRIP filter decides exactly as
// Detect on a mixed clean and poisoned set of the reduced zoo, loaded in Go
// (tfmodels.LoadSavedModel), in tfgo and in Python TensorFlow.
func testSTRIPExport(t *testing.T, dir string) {
	m, val, clean, poisoned := stripZooSets(t, dir, 100)
	ctx := context.Background()
	s, err := defence.NewSTRIP(m, val, defence.STRIPConfig{Seed: 2, Overlays: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Calibrate(ctx, val); err != nil {
		t.Fatal(err)
	}
	x, _ := data.Concat(clean, poisoned)
	xs := stripFloats(t, x)
	det, err := s.Detect(ctx, xs, x.Len())
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int, x.Len())
	flagged := 0
	for i := range want {
		want[i] = det.Labels[i]
		if det.Flags[i] {
			want[i] = m.NumClasses
			flagged++
		}
	}
	if flagged == 0 || flagged == len(want) {
		t.Fatalf("%d of %d inputs flagged: the test would not tell decisions apart", flagged, len(want))
	}
	dir = filepath.Join(t.TempDir(), "filter")
	if err := s.Export(dir, exporter.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Export(dir, exporter.Options{}); err == nil {
		t.Error("export over an existing folder: no error")
	}
	check := func(who string, got []int) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d decisions for %d inputs", who, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: input %d: label %d, Detect says %d (score %v, threshold %v)", who, i, got[i], want[i], det.Scores[i], det.Threshold)
			}
		}
	}
	// Go, through tfmodels (black-box: the filter has no bbd nets).
	fm, err := tfmodels.LoadSavedModel(dir, tfmodels.LoadOptions{BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	res, err := fm.Run(xs, x.Len(), fm.Outputs["label"])
	fm.Close()
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int, len(res[0]))
	for i, v := range res[0] {
		got[i] = int(v)
	}
	check("Go", got)
	// tfgo.
	check("tfgo", stripTFGoLabels(t, dir, xs, x.Len(), m.InputShape))
	// Python TensorFlow, on the same images written as a competition file.
	if testing.Short() {
		return
	}
	if _, err := pyoracle.Python(); err != nil {
		t.Skip(err)
	}
	h5 := filepath.Join(t.TempDir(), "mixed.h5")
	if err := data.WriteH5(h5, x, data.H5WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	var py struct {
		Labels []int `json:"labels"`
	}
	if err := pyoracle.Run(&py, "strip_reference.py", "filter", "--savedmodel", dir, "--batch", "1", h5); err != nil {
		t.Fatal(err)
	}
	check("Python", py.Labels)
}

// tfgoLabels runs the filter's label output with tfgo, one input at a time.
func stripTFGoLabels(t *testing.T, dir string, x []float32, n int, sh [3]int) []int {
	t.Helper()
	mg, err := tfmodels.ReadMetaGraph(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	sig := mg.SignatureDef[exporter.DefaultSignature]
	opOf := func(name string) (string, int) {
		var op string
		var idx int
		for i := len(name) - 1; i >= 0; i-- {
			if name[i] == ':' {
				op = name[:i]
				json.Unmarshal([]byte(name[i+1:]), &idx)
				return op, idx
			}
		}
		return name, 0
	}
	model := tfgo.LoadModel(dir, []string{"serve"}, nil)
	inOp, inIdx := opOf(sig.Inputs["input"].GetName())
	outOp, outIdx := opOf(sig.Outputs["label"].GetName())
	per := sh[0] * sh[1] * sh[2]
	out := make([]int, n)
	for i := 0; i < n; i++ {
		in, err := tf.NewTensor(x[i*per : (i+1)*per])
		if err != nil {
			t.Fatal(err)
		}
		in.Reshape([]int64{1, int64(sh[0]), int64(sh[1]), int64(sh[2])})
		res := model.Exec([]tf.Output{model.Op(outOp, outIdx)}, map[tf.Output]*tf.Tensor{model.Op(inOp, inIdx): in})
		out[i] = int(res[0].Value().([]int32)[0])
	}
	return out
}
