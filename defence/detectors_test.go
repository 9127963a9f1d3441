package defence_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
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
	t.Run("export", func(t *testing.T) { testSTRIPExport(t, dir, defence.ScoreMean) })
	t.Run("export-profile", func(t *testing.T) { testSTRIPExport(t, dir, defence.ScoreProfile) })
	t.Run("profile", func(t *testing.T) { testSTRIPProfile(t, dir) })
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

// stripMixed concatenates clean and poisoned inputs: the images, their
// values, and which are poisoned.
func stripMixed(t *testing.T, clean, poisoned *data.Images) (x *data.Images, xs []float32, truth []bool) {
	t.Helper()
	x, err := data.Concat(clean, poisoned)
	if err != nil {
		t.Fatal(err)
	}
	truth = make([]bool, x.Len())
	for i := clean.Len(); i < len(truth); i++ {
		truth[i] = true
	}
	return x, stripFloats(t, x), truth
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
	x, xs, truth := stripMixed(t, clean, poisoned)
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

	su, tc := newScaleUpTeCo(t, m)
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
	// Why SCALE-UP and TeCo rank this zoo's inputs the wrong way round (the
	// controlled case the right way round is TestDetectorsDirection).
	logBreakdown(t, su, tc, "clean test", stripFloats(t, clean), clean.Len())
	logBreakdown(t, su, tc, "poisoned test", stripFloats(t, poisoned), poisoned.Len())
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
// (tfmodels.LoadSavedModel), in tfgo and in Python TensorFlow, with STRIP's
// mean score or bbd's profile score.
func testSTRIPExport(t *testing.T, dir string, score defence.STRIPScore) {
	m, val, clean, poisoned := stripZooSets(t, dir, 100)
	ctx := context.Background()
	overlays := 20
	if score == defence.ScoreProfile {
		overlays = 16 // at most a sixth of the 100 clean images
	}
	s, err := defence.NewSTRIP(m, val, defence.STRIPConfig{Seed: 2, Overlays: overlays, Score: score})
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
	res, err := fm.Run(xs, x.Len(), fm.Outputs["label"], fm.Outputs["score"])
	fm.Close()
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int, len(res[0]))
	for i, v := range res[0] {
		got[i] = int(v)
		// Detect's session and the loader's run the same optimised graph
		// (both with Grappler's remapper on). With oneDNN on (CPUs with
		// AVX-512) the scores agree bit for bit; without it, Eigen's kernels
		// for a batch of 1 and for Detect's batches round differently in
		// the last bits (differences of 1e-7 measured), so the scores must
		// agree within 1e-5 and the decisions exactly (checked above). The
		// profile score takes logs of entropies as small as 1e-10, whose
		// last bits it so amplifies: differences of 1e-4 relative measured,
		// so within 1e-3.
		tol := 1e-5
		if score == defence.ScoreProfile {
			tol = 1e-3
		}
		if d := math.Abs(float64(res[1][i]) - det.Scores[i]); d > tol*max(1, math.Abs(det.Scores[i])) {
			t.Errorf("Go: input %d: the filter scores %v, Detect %v", i, res[1][i], float32(det.Scores[i]))
		}
	}
	check("Go", got)
	testFilterNetInput(t, dir)
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

// testFilterNetInput: in the exported filter's graph, the net reads the
// overlaid copies through no Reshape or EnsureShape, which trip Grappler's
// oneDNN remapper in every loader (errors logged on load: "Node
// net/activation_1/Relu has an empty op name", "remapper failed").
func testFilterNetInput(t *testing.T, dir string) {
	t.Helper()
	mg, err := tfmodels.ReadMetaGraph(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]string{}
	for _, n := range mg.GetGraphDef().GetNode() {
		ops[n.GetName()] = n.GetOp()
	}
	entries := 0
	for _, n := range mg.GetGraphDef().GetNode() {
		if !strings.HasPrefix(n.GetName(), "net/") {
			continue
		}
		for _, in := range n.GetInput() {
			src := strings.TrimPrefix(strings.SplitN(in, ":", 2)[0], "^")
			if strings.HasPrefix(src, "net/") {
				continue
			}
			entries++
			if op := ops[src]; op == "Reshape" || op == "EnsureShape" {
				t.Errorf("the filter's net reads %s (%s) in %s", src, op, n.GetName())
			}
		}
	}
	if entries == 0 {
		t.Error("no input of the filter's net found")
	}
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

// newScaleUpTeCo builds SCALE-UP and TeCo with their defaults (TeCo seed 1)
// for m, closed when the test ends.
func newScaleUpTeCo(t *testing.T, m *tfmodels.Model) (*defence.ScaleUp, *defence.TeCo) {
	t.Helper()
	su, err := defence.NewScaleUp(m, defence.ScaleUpConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { su.Close() })
	tc, err := defence.NewTeCo(m, defence.TeCoConfig{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	return su, tc
}

// logBreakdown logs what SCALE-UP's and TeCo's scores of n inputs x are made
// of: the share of inputs whose copy at each scale keeps its label, and per
// corruption how many inputs first change label at severity 1..5 or never (6).
func logBreakdown(t *testing.T, su *defence.ScaleUp, tc *defence.TeCo, what string, x []float32, n int) {
	t.Helper()
	ctx := context.Background()
	kept, err := su.Kept(ctx, x, n)
	if err != nil {
		t.Fatal(err)
	}
	shares := make([]float64, len(su.Config().Scales))
	for _, k := range kept {
		for s, v := range k {
			if v {
				shares[s] += 1 / float64(n)
			}
		}
	}
	t.Logf("%s (%d): SCALE-UP share keeping the label at scales %v: %.3f", what, n, su.Config().Scales, shares)
	flips, err := tc.FlipSeverities(ctx, x, n)
	if err != nil {
		t.Fatal(err)
	}
	for k, kind := range tc.Config().Corruptions {
		var h [6]int
		for _, f := range flips {
			h[f[k]-1]++
		}
		t.Logf("%s: TeCo %-14s first flip at severity 1..5, never: %v", what, kind, h)
	}
}

// checkerTrigger is a 6x6 checkerboard of gray levels lo and hi pasted at
// (x, y): small and high-frequency, as the BadNets triggers SCALE-UP and TeCo
// were shown on.
func checkerTrigger(name string, x, y int, lo, hi uint8) data.Trigger {
	const n = 6
	p := &data.Pattern{H: n, W: n, C: 3, Pix: make([]uint8, n*n*3)}
	for i := 0; i < n*n; i++ {
		v := lo
		if (i/n+i%n)%2 == 0 {
			v = hi
		}
		p.Pix[3*i], p.Pix[3*i+1], p.Pix[3*i+2] = v, v, v
	}
	tr := data.PatternPatchTrigger(x, y, p)
	tr.Name = name
	return tr
}

// TestDetectorsDirection: SCALE-UP and TeCo flag the right end of their
// scores (higher is poisoned) on triggers that meet their papers'
// assumptions, so that their AUROC below 0.5 on the zoo (README "Input
// filtering") is the zoo triggers' doing, not a sign or scoring error. One
// DeepID is trained (as the reduced zoo's BadNets: 8,000 Fashion-MNIST
// images, 10 % poisoned per trigger, 3 epochs) with two 6x6 checkerboard
// triggers of the same shape: "saturated" of values 0 and 255, which scaling
// with clipping leaves as they are (SCALE-UP's premise: the trigger survives
// amplification), -> 0, and "mid-gray" of 60 and 180, which scaling turns
// into a 180/255 and then a white/white patch, -> 1. Both are small and
// high-frequency: blur and pixelation wipe them out at severity 1 or 2 while
// noise and brightness leave them (TeCo's premise).
//
// Measured (300 clean test images, 268 and 275 poisoned): SCALE-UP AUROC
// 0.591 saturated (its copies keep the label at 0.94-0.97 against the clean
// images' 0.78-0.85), 0.283 mid-gray (0.61 at x3, 0.35-0.40 from x5);
// TeCo AUROC 0.892 and 0.786 (pixelation flips 250 and 212 of the poisoned
// inputs at severity 1, Gaussian blur most at 2, noise and brightness none).
func TestDetectorsDirection(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a DeepID")
	}
	rawTrain, rawTest, err := data.LoadFashionMNIST("")
	if err != nil {
		t.Fatal(err)
	}
	trainParts, err := data.Split(rawTrain, []int{8000}, 1)
	if err != nil {
		t.Fatal(err)
	}
	testParts, err := data.Split(rawTest, []int{300}, 2)
	if err != nil {
		t.Fatal(err)
	}
	train, err := data.ToDeepID(trainParts[0])
	if err != nil {
		t.Fatal(err)
	}
	clean, err := data.ToDeepID(testParts[0])
	if err != nil {
		t.Fatal(err)
	}
	triggers := []data.TriggerTarget{
		{Trigger: checkerTrigger("saturated", 38, 46, 0, 255), Target: 0},
		{Trigger: checkerTrigger("mid-gray", 3, 46, 60, 180), Target: 1},
	}
	view, _, err := data.NewPoisonedView(train, triggers, 0.1, 8)
	if err != nil {
		t.Fatal(err)
	}
	m, err := tfmodels.Build(tfmodels.DeepIDWith(data.DeepIDHeight, data.DeepIDWidth, data.DeepIDChannels, 10), nil, tfmodels.BuildOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Train(view, tfmodels.TrainSettings{Optimizer: tfmodels.OptimizerSettings{Kind: tfmodels.Adam, LearningRate: 1e-3},
		Epochs: 3, BatchSize: 64, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	su, tc := newScaleUpTeCo(t, m)
	logBreakdown(t, su, tc, "clean", stripFloats(t, clean), clean.Len())
	auroc := map[string][2]float64{}
	for _, tt := range triggers {
		poisoned, err := data.PoisonAll(clean, tt.Trigger, tt.Target, true)
		if err != nil {
			t.Fatal(err)
		}
		labels, err := zoo.PredictLabels(m, poisoned)
		if err != nil {
			t.Fatal(err)
		}
		asr, _ := metrics.Accuracy(labels, poisoned.Labels)
		logBreakdown(t, su, tc, tt.Trigger.Name, stripFloats(t, poisoned), poisoned.Len())
		a := [2]float64{stripAUROC(t, su, clean, poisoned), stripAUROC(t, tc, clean, poisoned)}
		t.Logf("%s -> %d: attack success %v; AUROC SCALE-UP %.3f, TeCo %.3f", tt.Trigger.Name, tt.Target, asr, a[0], a[1])
		if asr.Value() < 0.9 {
			t.Fatalf("%s: attack success %v: the backdoor was not learnt", tt.Trigger.Name, asr)
		}
		auroc[tt.Trigger.Name] = a
	}
	sat, mid := auroc["saturated"], auroc["mid-gray"]
	if sat[0] <= 0.52 || sat[0] < mid[0]+0.1 {
		t.Errorf("SCALE-UP AUROC %.3f on the saturated trigger, %.3f on the mid-gray one: want above 0.5 and above the mid-gray one by 0.1", sat[0], mid[0])
	}
	for name, a := range auroc {
		if a[1] < 0.7 {
			t.Errorf("TeCo AUROC %.3f on the %s checkerboard: want at least 0.7", a[1], name)
		}
	}
}
