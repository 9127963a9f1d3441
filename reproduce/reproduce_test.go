package reproduce_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/bbd-workbench/bbd/internal/browser"
	"github.com/bbd-workbench/bbd/internal/testzoo"
	"github.com/bbd-workbench/bbd/reproduce"
)

func TestReproduceZoo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every experiment on the reduced zoo")
	}
	dir, _ := testzoo.Reduced(t)
	src, err := reproduce.ZooSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "repro")
	var units, cached int
	cfg := reproduce.Config{Source: src, Out: out, Settings: reproduce.TinySettings(), Progress: func(p reproduce.Progress) {
		if p.Done == p.Total && p.Total > 0 || p.Cached {
			units++
			if p.Cached {
				cached++
			}
		}
	}}
	r, err := reproduce.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Write(res); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"results.json", "report.html", "tables/table1-bbd.md", "tables/table2.csv", "tables/table3.json", "tables/table4.md",
		"figures/fig1-pruning.png", "figures/fig2-fine-pruning.svg", "figures/fig3-strip-sunglasses.png", "figures/fig4-triggers.png",
		"figures/anomaly-clean.png", "figures/fig9-pca-multi_trigger.png"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	checkTablesMatchResults(t, out)
	checkReportInChromium(t, out, res)

	// A second run reads every unit from the cache.
	units, cached = 0, 0
	r2, err := reproduce.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if cached == 0 || cached != units {
		t.Errorf("second run: %d of %d units cached, want all", cached, units)
	}
}

// checkTablesMatchResults compares the numbers of the written tables with
// the results.json the same run wrote.
func checkTablesMatchResults(t *testing.T, out string) {
	t.Helper()
	var res reproduce.Results
	readJSON(t, filepath.Join(out, "results.json"), &res)
	table := func(name string) reproduce.Table {
		var tb reproduce.Table
		readJSON(t, filepath.Join(out, "tables", name+".json"), &tb)
		return tb
	}
	near := func(what, cell string, want float64) {
		t.Helper()
		got, err := strconv.ParseFloat(cell, 64)
		if err != nil || math.Abs(got-want) > 5e-5 {
			t.Errorf("%s: table says %q, results.json %v", what, cell, want)
		}
	}
	t2 := table("table2")
	for i, s := range res.STRIP {
		near("table 2 FRR "+s.Model, t2.Rows[i][1], s.FRR.Value())
		near("table 2 FAR "+s.Model, t2.Rows[i][2], s.FAR.Value())
		near("table 2 AUROC "+s.Model, t2.Rows[i][4], s.AUROC)
	}
	t4 := table("table4")
	for i, b := range res.BBD {
		near("table 4 targeted accuracy "+b.Model, t4.Rows[2*i][7], b.Targeted.Accuracy.Value())
		near("table 4 untargeted FAR "+b.Model, t4.Rows[2*i+1][4], b.Untargeted.FAR)
	}
	choice := table("fine-pruning-choice")
	for i, p := range res.FinePruning.Prune {
		near("fraction "+p.Model+" "+p.Method, choice.Rows[i][2], p.Report.Fraction)
		near("clean accuracy "+p.Model+" "+p.Method, choice.Rows[i][5], p.Report.Chosen.CleanAccuracy[reproduce.CleanTestSet])
	}
	t3 := table("table3")
	if len(t3.Rows) != len(res.NeuralCleanse) {
		t.Errorf("table 3 has %d rows for %d scans", len(t3.Rows), len(res.NeuralCleanse))
	}
	// The zoo's BadNets, trained from scratch, leave no last-layer trace:
	// the data-free check runs on every scan and flags nothing, so the
	// verdict is Neural Cleanse's.
	col := slices.Index(t3.Header, "last layer flags")
	ncCol := slices.Index(t3.Header, "Neural Cleanse flags")
	for i, c := range res.NeuralCleanse {
		if c.LastLayer == nil || len(c.LastLayer) != 0 || col < 0 || t3.Rows[i][col] != "none" {
			t.Errorf("table 3, %s: last layer flags %v, cell %q (column %d); want an empty list, \"none\"", c.Model, c.LastLayer, t3.Rows[i][max(col, 0)], col)
		}
		if !slices.Equal(c.Flagged, c.NCFlagged) || ncCol < 0 || t3.Rows[i][ncCol] != t3.Rows[i][1] {
			t.Errorf("table 3, %s: flagged %v, Neural Cleanse's %v (column %d): want the same", c.Model, c.Flagged, c.NCFlagged, ncCol)
		}
	}
}

// checkReportInChromium opens the HTML report in headless Chromium and
// requires every figure of the run to be shown (decoded, not broken).
func checkReportInChromium(t *testing.T, out string, res *reproduce.Results) {
	t.Helper()
	figs, err := res.Figures(out)
	if err != nil {
		t.Fatal(err)
	}
	loaded, total, err := browser.ImagesLoaded(context.Background(), "file://"+filepath.Join(out, reproduce.ReportFile))
	if err != nil {
		t.Fatalf("opening the report in Chromium: %v", err)
	}
	if total != len(figs) || loaded != total {
		t.Errorf("report in Chromium: %d of %d images loaded, want all %d figures", loaded, total, len(figs))
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
