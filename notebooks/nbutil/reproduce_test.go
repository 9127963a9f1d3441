package nbutil_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/metrics"
	"github.com/bbd-workbench/bbd/notebooks/nbutil"
	"github.com/bbd-workbench/bbd/reproduce"
)

// competitionFiles writes empty stand-ins of the competition's files (a
// source only checks that they exist) and returns the data and models folders.
func competitionFiles(t *testing.T) (data, models string) {
	t.Helper()
	data, models = t.TempDir(), t.TempDir()
	for _, f := range []string{"clean_validation_data.h5", "clean_test_data.h5", "sunglasses_poisoned_data.h5"} {
		if err := os.WriteFile(filepath.Join(data, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []string{"sunglasses", "anonymous_1", "anonymous_2", "multi_trigger_multi_target"} {
		if err := os.WriteFile(filepath.Join(models, m+"_bd_weights.h5"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return data, models
}

// clearEnv unsets every variable Reproduction reads and points the temporary
// folder at a test folder.
func clearEnv(t *testing.T) string {
	t.Helper()
	for _, v := range []string{nbutil.EnvData, nbutil.EnvModels, nbutil.EnvZoo, nbutil.EnvReproOut, nbutil.EnvSettings} {
		t.Setenv(v, "")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	return tmp
}

func TestReproductionCompetition(t *testing.T) {
	tmp := clearEnv(t)
	data, models := competitionFiles(t)
	t.Setenv(nbutil.EnvData, data)
	t.Setenv(nbutil.EnvModels, models)
	t.Setenv(nbutil.EnvSettings, "tiny")
	r, err := nbutil.Reproduction()
	if err != nil {
		t.Fatal(err)
	}
	if src := r.Source(); src.Kind != reproduce.KindCompetition || src.Dir != data {
		t.Errorf("source %s %s, want the competition files in %s", src.Kind, src.Dir, data)
	}
	// Tiny settings keep those of their three models that the source has (no clean one).
	if got := r.Settings().Models; !reflect.DeepEqual(got, []string{"sunglasses", "multi_trigger"}) {
		t.Errorf("tiny settings on the competition files run %v, want [sunglasses multi_trigger]", got)
	}
	if got, want := r.Settings().CleanseSteps, reproduce.TinySettings().CleanseSteps; got != want {
		t.Errorf("tiny settings: %d Neural Cleanse steps, want %d", got, want)
	}
	// The default output folder is stable, under $TMPDIR, and names the settings.
	out := r.Out()
	if filepath.Dir(out) != tmp || !strings.HasPrefix(filepath.Base(out), "bbd-notebooks-repro-tiny-") {
		t.Errorf("output folder %s, want %s/bbd-notebooks-repro-tiny-<hash>", out, tmp)
	}
	r2, err := nbutil.Reproduction()
	if err != nil {
		t.Fatal(err)
	}
	if r2.Out() != out {
		t.Errorf("a second runner writes to %s, the first to %s", r2.Out(), out)
	}
	// Other settings, another folder; BBD_REPRO_OUT names one.
	t.Setenv(nbutil.EnvSettings, "")
	if r3, err := nbutil.Reproduction(); err != nil || r3.Out() == out || !reflect.DeepEqual(r3.Settings(), reproduce.SmallSettings()) {
		t.Errorf("default settings: %v, folder %v, want small settings in another folder than %s", err, r3, out)
	}
	want := filepath.Join(t.TempDir(), "repro")
	t.Setenv(nbutil.EnvReproOut, want)
	if r4, err := nbutil.Reproduction(); err != nil || r4.Out() != want {
		t.Errorf("with %s=%s: %v, %v", nbutil.EnvReproOut, want, r4, err)
	}
	t.Setenv(nbutil.EnvSettings, "huge")
	if _, err := nbutil.Reproduction(); err == nil || !strings.Contains(err.Error(), "paper, small or tiny") {
		t.Errorf("BBD_SETTINGS=huge: %v, want an error naming the choices", err)
	}
}

func TestReproductionZoo(t *testing.T) {
	tmp := clearEnv(t)
	// No zoo built by notebook 02 and none named: the error says what to do.
	_, err := nbutil.Reproduction()
	if err == nil || !strings.Contains(err.Error(), "02-zoo.ipynb") || !strings.Contains(err.Error(), tmp) {
		t.Errorf("without a zoo: %v, want an error pointing at notebook 02 and %s", err, tmp)
	}
	if got := nbutil.DefaultZooDir(); filepath.Dir(got) != tmp {
		t.Errorf("DefaultZooDir() = %s, want under %s", got, tmp)
	}
	t.Setenv(nbutil.EnvZoo, t.TempDir())
	if _, err := nbutil.Reproduction(); err == nil || !strings.Contains(err.Error(), "manifest.json") {
		t.Errorf("BBD_ZOO naming an empty folder: %v, want an error about its manifest", err)
	}
}

func TestShow(t *testing.T) {
	var pngs [][]byte
	var htmls []string
	defer nbutil.CaptureDisplay(func(b []byte) { pngs = append(pngs, b) }, func(s string) { htmls = append(htmls, s) })()
	scans := []reproduce.CleanseResult{
		{Model: "a", Labels: []int{0, 1, 2, 3}, Index: []float64{0.5, 3, 0.2, 1}, Threshold: 2},
		{Model: "b", Labels: []int{0, 1, 2, 3}, Index: []float64{0.5, 1, 0.2, 1}, Threshold: 2},
	}
	if err := nbutil.Show(reproduce.AnomalyFigure(scans[0])); err != nil {
		t.Fatal(err)
	}
	if err := nbutil.ShowEach(scans, reproduce.AnomalyFigure); err != nil {
		t.Fatal(err)
	}
	if len(pngs) != 3 {
		t.Fatalf("%d figures displayed, want 3", len(pngs))
	}
	decodePNG(t, pngs[0])
	if err := nbutil.Show(reproduce.Figure9(reproduce.ActivationResult{Model: "x"})); err == nil {
		t.Error("Show passes on no error of a figure function that failed")
	}
	if err := nbutil.ShowEach(nil, reproduce.AnomalyFigure); err == nil {
		t.Error("ShowEach of no results gives no error")
	}
	nbutil.ShowTables(reproduce.Table3(scans), reproduce.Table1Paper([]string{"sunglasses"}))
	if len(htmls) != 1 || !strings.Contains(htmls[0], "Table 3") || !strings.Contains(htmls[0], "Table 1 (paper") {
		t.Errorf("ShowTables displayed %q, want both tables in one display", htmls)
	}
}

func TestBBDFigure(t *testing.T) {
	eval := func(mode string, lowClean float64) *defence.BBDEvaluation {
		return &defence.BBDEvaluation{Mode: mode, CleanAccuracy: metrics.Ratio{Hits: 90, Total: 100}, PoisonedAccuracy: metrics.Ratio{Hits: 99, Total: 100},
			Predicted: defence.BBDPrediction{TargetedClean: 0.9, TargetedPoisoned: 0.98,
				UntargetedClean: [2]float64{lowClean, 0.95}, UntargetedPoisoned: [2]float64{0.9, 0.99}}}
	}
	// A lower bound below 0 (two poor models) is drawn at 0, not refused.
	bb := []reproduce.BBDResult{{Model: "a", Targeted: eval("targeted", 0.8), Untargeted: eval("untargeted", -0.2)}}
	f, err := nbutil.BBDFigure(bb)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.PNG()
	if err != nil {
		t.Fatal(err)
	}
	saveFigure(t, "bbd", b)
	if colourful(decodePNG(t, b)) < 1000 {
		t.Error("no coloured bars drawn")
	}
	if _, err := nbutil.BBDFigure(nil); err == nil {
		t.Error("BBDFigure of no results gives no error")
	}
}

func TestFinePrunedModels(t *testing.T) {
	fp := &reproduce.FinePruningResults{Prune: []reproduce.PruneResult{{Model: "b", Method: "unit"}, {Model: "a", Method: "unit"}, {Model: "b", Method: "weight"}}}
	if got := nbutil.FinePrunedModels(fp); !reflect.DeepEqual(got, []string{"b", "a"}) {
		t.Errorf("FinePrunedModels = %v, want [b a]", got)
	}
}

// TestComputing: a unit computed is announced once; cached and finished units are not.
func TestComputing(t *testing.T) {
	var b strings.Builder
	p := nbutil.Computing(&b)
	for _, e := range []reproduce.Progress{
		{Experiment: "strip", Unit: "a", Done: 0, Total: 10},
		{Experiment: "strip", Unit: "a", Done: 5, Total: 10},
		{Experiment: "strip", Unit: "a", Done: 10, Total: 10},
		{Experiment: "strip", Unit: "b", Cached: true, Done: 1, Total: 1},
		{Experiment: "fine-pruning", Unit: "b unit", Cached: true},
	} {
		p(e)
	}
	if got, want := b.String(), "computing strip a (cached afterwards)\n"; got != want {
		t.Errorf("printed %q, want %q", got, want)
	}
}
