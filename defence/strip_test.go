package defence_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/internal/pyoracle"
	"github.com/bbd-workbench/bbd/metrics"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// shared is the project's read-only shared material, seen from defence/.
var stripSharedDir = filepath.Join("..", "..", "shared")

func stripShared(t testing.TB, elem ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{stripSharedDir}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared material not available: %v", err)
	}
	return p
}

// faces reads a folder of ../shared/real-faces.
func stripFaces(t testing.TB, folder string) *data.Images {
	t.Helper()
	imgs, err := data.ReadImageDir(stripShared(t, "real-faces", folder), data.DeepIDImageOptions(false))
	if err != nil {
		t.Fatal(err)
	}
	return imgs
}

func stripFloats(t testing.TB, imgs *data.Images) []float32 {
	t.Helper()
	x, err := imgs.Float32(0, imgs.Len())
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// csaw imports a real CSAW BadNet (white-box).
func stripCSAW(t testing.TB, file string) *tfmodels.Model {
	t.Helper()
	m, err := tfmodels.ImportKerasH5(stripShared(t, "badnets", file), nil, tfmodels.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// separation scores clean and poisoned inputs and returns the scores and the
// AUROC (poisoned = lower entropy).
func stripSeparation(t testing.TB, s *defence.STRIP, clean, poisoned *data.Images) (cs, ps []float64, auroc float64) {
	t.Helper()
	ctx := context.Background()
	cs, _, err := s.Scores(ctx, stripFloats(t, clean), clean.Len())
	if err != nil {
		t.Fatal(err)
	}
	ps, _, err = s.Scores(ctx, stripFloats(t, poisoned), poisoned.Len())
	if err != nil {
		t.Fatal(err)
	}
	scores := append(append([]float64(nil), cs...), ps...)
	truth := make([]bool, len(scores))
	for i := len(cs); i < len(truth); i++ {
		truth[i] = true
	}
	auroc, err = metrics.AUROC(scores, truth, metrics.LowerPoisoned)
	if err != nil {
		t.Fatal(err)
	}
	return cs, ps, auroc
}

// TestSTRIPRealFaces: on the real CSAW BadNets with the real faces (clean
// faces as the pool and the clean inputs), STRIP's scores separate clean from
// triggered faces the right way round (triggered = lower entropy), for the
// sunglasses BadNet and for every trigger of the multi-trigger one, with the
// default light blend (0.15), and with pixel sums and a 0.5 blend.
// (Measured, M = 100: AUROC 0.966, 0.945, 0.940, 1.000 with the default;
// sums 0.994 and 0.862 for sunglasses and eyebrows; README.)
func TestSTRIPRealFaces(t *testing.T) {
	clean := stripFaces(t, "clean")
	cases := []struct {
		badnet, folder string
		cfg            defence.STRIPConfig
		min            float64
	}{
		{"sunglasses_bd_weights.h5", "sunglasses", defence.STRIPConfig{}, 0.9},
		{"sunglasses_bd_weights.h5", "sunglasses", defence.STRIPConfig{Overlay: defence.OverlaySum}, 0.95},
		{"multi_trigger_multi_target_bd_weights.h5", "multi-eyebrows", defence.STRIPConfig{}, 0.9},
		{"multi_trigger_multi_target_bd_weights.h5", "multi-eyebrows", defence.STRIPConfig{Overlay: defence.OverlaySum}, 0.75},
		{"multi_trigger_multi_target_bd_weights.h5", "multi-eyebrows", defence.STRIPConfig{Overlay: defence.OverlayBlend, Alpha: 0.5}, 0.9},
		{"multi_trigger_multi_target_bd_weights.h5", "multi-lipstick", defence.STRIPConfig{}, 0.85},
		{"multi_trigger_multi_target_bd_weights.h5", "multi-sunglasses", defence.STRIPConfig{}, 0.95},
	}
	models := map[string]*tfmodels.Model{}
	for _, c := range cases {
		m := models[c.badnet]
		if m == nil {
			m = stripCSAW(t, c.badnet)
			models[c.badnet] = m
		}
		c.cfg.Seed = 1
		s, err := defence.NewSTRIP(m, clean, c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		cs, ps, auroc := stripSeparation(t, s, clean, stripFaces(t, c.folder))
		s.Close()
		t.Logf("%s %s %s: AUROC %.3f, mean entropy clean %.3f poisoned %.3f", c.badnet, c.folder, s.Config().Overlay, auroc, stripMean(cs), stripMean(ps))
		if auroc < c.min {
			t.Errorf("%s on %s (%s): AUROC %.3f, want >= %.2f", c.badnet, c.folder, s.Config().Overlay, auroc, c.min)
		}
		if !(stripMean(ps) < stripMean(cs)) {
			t.Errorf("%s on %s: poisoned inputs' mean entropy %.3f not below the clean ones' %.3f", c.badnet, c.folder, stripMean(ps), stripMean(cs))
		}
		for _, v := range append(cs, ps...) {
			if math.IsNaN(v) || v < 0 {
				t.Fatalf("score %v", v)
			}
		}
	}
}

func stripMean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// TestSTRIPMatchesPython: bbd's in-graph STRIP gives the scores of a plain
// Python TensorFlow STRIP (numpy overlays, Keras predict, entropy across
// classes) with the same overlays, on the real sunglasses BadNet, for pixel
// sums and blends, in nats and bits; and a black-box Keras SavedModel of the
// same BadNet (three Session.Runs per batch) scores as the white-box path.
func TestSTRIPMatchesPython(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Python TensorFlow")
	}
	if _, err := pyoracle.Python(); err != nil {
		t.Skip(err)
	}
	weights := stripShared(t, "badnets", "sunglasses_bd_weights.h5")
	cleanDir, poisonDir := stripShared(t, "real-faces", "clean"), stripShared(t, "real-faces", "sunglasses")
	clean := stripFaces(t, "clean")
	inputs, err := data.Concat(clean, stripFaces(t, "sunglasses"))
	if err != nil {
		t.Fatal(err)
	}
	x := stripFloats(t, inputs)
	m := stripCSAW(t, "sunglasses_bd_weights.h5")
	keras := filepath.Join(t.TempDir(), "keras")
	if err := pyoracle.Run(nil, "keras_export.py", weights, keras); err != nil {
		t.Fatal(err)
	}
	bb, err := tfmodels.LoadSavedModel(keras, tfmodels.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer bb.Close()
	if bb.WhiteBox() {
		t.Fatal("a Keras SavedModel loaded white-box")
	}
	for _, cfg := range []defence.STRIPConfig{
		{Overlays: 20, Seed: 7, Overlay: defence.OverlaySum},
		{Overlays: 20, Seed: 8, Overlay: defence.OverlayBlend, Alpha: 0.3, Entropy: defence.Bits},
		{Overlays: 20, Seed: 9},
	} {
		s, err := defence.NewSTRIP(m, clean, cfg)
		if err != nil {
			t.Fatal(err)
		}
		got, labels, err := s.Scores(context.Background(), x, inputs.Len())
		if err != nil {
			t.Fatal(err)
		}
		var ref struct {
			Scores []float64 `json:"scores"`
			Labels []int     `json:"labels"`
		}
		args := []string{"scores", "--weights", weights, "--pool", cleanDir, "--indices", stripInts(s.OverlayIndices()),
			"--mode", string(s.Config().Overlay), "--alpha", stripFtoa(s.Config().Alpha), "--unit", string(s.Config().Entropy), cleanDir, poisonDir}
		if err := pyoracle.Run(&ref, "strip_reference.py", args...); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if len(ref.Scores) != len(got) {
			t.Fatalf("python scored %d inputs, Go %d", len(ref.Scores), len(got))
		}
		worst := 0.0
		for i := range got {
			worst = math.Max(worst, math.Abs(got[i]-ref.Scores[i]))
			if labels[i] != ref.Labels[i] {
				t.Errorf("input %d: label %d, python %d", i, labels[i], ref.Labels[i])
			}
		}
		t.Logf("%+v: max |Go - Python| score difference %.2g", cfg, worst)
		if worst > 1e-4 {
			t.Errorf("%+v: scores differ from Python's by up to %g", cfg, worst)
		}
		// Black-box: the Keras SavedModel through its serving_default.
		sb, err := defence.NewSTRIP(bb, clean, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if sb.WhiteBox() {
			t.Error("STRIP on a black-box model claims to be white-box")
		}
		gotBB, labelsBB, err := sb.Scores(context.Background(), x, inputs.Len())
		sb.Close()
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if math.Abs(got[i]-gotBB[i]) > 1e-4 || labels[i] != labelsBB[i] {
				t.Fatalf("input %d: black-box score %v label %d, white-box %v %d", i, gotBB[i], labelsBB[i], got[i], labels[i])
			}
		}
	}
}

func TestSTRIPConfig(t *testing.T) {
	def := defence.DefaultSTRIPConfig()
	if def.Overlays != 100 || def.Overlay != defence.OverlayBlend || def.Alpha != 0.15 || def.Entropy != defence.Nats || def.Threshold.Rule != defence.ThresholdEmpirical || def.Threshold.FRR != 0.05 || def.Round != 10 || def.FirstLook != 20 || def.Confidence != 0.95 {
		t.Errorf("defaults %+v", def)
	}
	if err := def.Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	for _, bad := range []defence.STRIPConfig{
		{Overlays: -1},
		{Overlay: "multiply"},
		{Overlay: defence.OverlayBlend, Alpha: 1.5},
		{Overlay: defence.OverlaySum, Alpha: 0.5},
		{Entropy: "decibels"},
		{Threshold: defence.ThresholdConfig{FRR: 1}},
		{Threshold: defence.ThresholdConfig{Rule: "median"}},
		{Threshold: defence.ThresholdConfig{Rule: defence.ThresholdFixed, Value: math.NaN()}},
		{Overlays: 10, Round: 11},
		{Overlays: 10, FirstLook: 11},
		{Confidence: 1},
		{BatchSize: -5},
	} {
		err := bad.Validate()
		if !errors.Is(err, defence.ErrConfig) {
			t.Errorf("%+v: error %v, want one wrapping ErrConfig", bad, err)
		}
	}
	m := stripCSAW(t, "sunglasses_bd_weights.h5")
	if _, err := defence.NewSTRIP(m, stripFaces(t, "clean"), defence.STRIPConfig{Overlays: -3}); !errors.Is(err, defence.ErrConfig) {
		t.Errorf("NewSTRIP with a bad config: %v", err)
	}
	empty, _ := data.NewImages(0, 55, 47, 3)
	if _, err := defence.NewSTRIP(m, empty, defence.STRIPConfig{}); err == nil {
		t.Error("NewSTRIP with an empty pool: no error")
	}
	small, _ := data.NewImages(3, 28, 28, 1)
	if _, err := defence.NewSTRIP(m, small, defence.STRIPConfig{}); err == nil {
		t.Error("NewSTRIP with a pool of another image size: no error")
	}
	s, err := defence.NewSTRIP(m, stripFaces(t, "clean"), defence.STRIPConfig{Overlays: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	x := stripFloats(t, stripFaces(t, "sunglasses"))[:2*55*47*3]
	if _, err := s.Detect(context.Background(), x, 2); err == nil {
		t.Error("Detect without a threshold: no error")
	}
	x[5] = float32(math.NaN())
	if _, _, err := s.Scores(context.Background(), x, 2); err == nil {
		t.Error("a NaN pixel: no error")
	}
	if _, _, err := s.Scores(context.Background(), x[:100], 2); err == nil {
		t.Error("short input: no error")
	}
}

func stripInts(v []int) string {
	s := ""
	for i, x := range v {
		if i > 0 {
			s += ","
		}
		s += strconv.Itoa(x)
	}
	return s
}

func stripFtoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// TestSTRIPAlphaAuto: AlphaAuto chooses the largest grid weight, scanned
// upwards, at which at most Threshold.FRR of the pool images lose their label
// in most of their copies, and STRIP then scores as with that weight fixed.
func TestSTRIPAlphaAuto(t *testing.T) {
	m := stripCSAW(t, "sunglasses_bd_weights.h5")
	clean := stripFaces(t, "clean")
	if err := (defence.STRIPConfig{Overlay: defence.OverlaySum, Alpha: defence.AlphaAuto}).Validate(); !errors.Is(err, defence.ErrConfig) {
		t.Errorf("AlphaAuto with the pixel sum: %v, want ErrConfig", err)
	}
	cfg := defence.STRIPConfig{Overlays: 20, Seed: 3, Alpha: defence.AlphaAuto}
	s, err := defence.NewSTRIP(m, clean, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch := s.AlphaChoice()
	if ch == nil {
		t.Fatal("no AlphaChoice with AlphaAuto")
	}
	t.Logf("chose %g of %d inputs: %+v", ch.Alpha, ch.Inputs, ch.Steps)
	if ch.Inputs != clean.Len() || ch.MaxLost != defence.DefaultFRR || s.Config().Alpha != ch.Alpha {
		t.Errorf("choice %+v, config alpha %g", ch, s.Config().Alpha)
	}
	grid := defence.AutoAlphaGrid
	if len(ch.Steps) == 0 || len(ch.Steps) > len(grid) {
		t.Fatalf("%d steps", len(ch.Steps))
	}
	for i, st := range ch.Steps {
		last := i == len(ch.Steps)-1
		if st.Alpha != grid[i] || st.Lost < 0 || st.Lost > 1 {
			t.Errorf("step %d: %+v", i, st)
		}
		if !last && st.Lost > ch.MaxLost {
			t.Errorf("the scan went on past a failing step %+v", st)
		}
		if last && st.Lost <= ch.MaxLost && len(ch.Steps) < len(grid) {
			t.Errorf("the scan stopped at a passing step %+v", st)
		}
	}
	want := grid[0]
	for _, st := range ch.Steps {
		if st.Lost > ch.MaxLost {
			break
		}
		want = st.Alpha
	}
	if ch.Alpha != want {
		t.Errorf("chose %g, want %g", ch.Alpha, want)
	}
	// Heavier blends scatter clean inputs more: the last step loses at least
	// as many as the first.
	if ch.Steps[len(ch.Steps)-1].Lost < ch.Steps[0].Lost {
		t.Errorf("steps %+v", ch.Steps)
	}
	x := stripFloats(t, clean)
	got, _, err := s.Scores(context.Background(), x, clean.Len())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Alpha = ch.Alpha
	f, err := defence.NewSTRIP(m, clean, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.AlphaChoice() != nil {
		t.Error("an AlphaChoice with a fixed Alpha")
	}
	ref, _, err := f.Scores(context.Background(), x, clean.Len())
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != ref[i] {
			t.Fatalf("input %d: auto %g, fixed %g", i, got[i], ref[i])
		}
	}
}
