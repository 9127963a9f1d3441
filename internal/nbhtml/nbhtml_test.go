package nbhtml

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bbd-workbench/bbd/internal/browser"
)

func TestJupyterOverride(t *testing.T) {
	t.Setenv(EnvJupyter, "/nonexistent/jupyter")
	if _, err := Jupyter(); err == nil || !strings.Contains(err.Error(), EnvJupyter) {
		t.Fatalf("Jupyter with a missing $%s: %v, want an error naming it", EnvJupyter, err)
	}
}

// TestExport writes a notebook with one figure as HTML and checks in headless
// Chromium that the page shows the figure.
func TestExport(t *testing.T) {
	jupyter, err := Jupyter()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(jupyter, "nbconvert", "--version").CombinedOutput(); err != nil {
		t.Fatalf("%s nbconvert does not run (%v: %s): run `make setup`", jupyter, err, out)
	} else {
		t.Logf("%s nbconvert %s", jupyter, strings.TrimSpace(string(out)))
	}
	dir := t.TempDir()
	ipynb := filepath.Join(dir, "figure.ipynb")
	if err := os.WriteFile(ipynb, FigureNotebook("A figure", SampleFigure(90, 60)), 0o644); err != nil {
		t.Fatal(err)
	}
	outDir := filepath.Join(dir, "report", "notebooks")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for run := 1; run <= 2; run++ { // the second run replaces the page
		start := time.Now()
		page, err := Export(ctx, ipynb, outDir)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("run %d: exported in %s", run, time.Since(start).Round(time.Millisecond))
		if want := filepath.Join(outDir, "figure.html"); page != want {
			t.Fatalf("Export wrote %s, want %s", page, want)
		}
	}
	entries, _ := os.ReadDir(outDir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("%s holds %v, want only figure.html", outDir, names)
	}
	page := filepath.Join(outDir, "figure.html")
	raw, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"A figure", "data:image/png;base64,"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("%s does not contain %q", page, want)
		}
	}
	if _, err := browser.Path(); err != nil {
		t.Fatal(err)
	}
	imgs, err := browser.Images(ctx, "file://"+page)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || !imgs[0].Loaded() || imgs[0].Width != 90 || imgs[0].Height != 60 {
		t.Fatalf("the page's images: %+v, want one loaded 90x60 figure", imgs)
	}
}

func TestExportMissingNotebook(t *testing.T) {
	if _, err := Export(context.Background(), filepath.Join(t.TempDir(), "none.ipynb"), t.TempDir()); err == nil {
		t.Fatal("Export of a missing notebook succeeded")
	}
}
