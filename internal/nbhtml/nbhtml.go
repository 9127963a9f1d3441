package nbhtml

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/bbd-workbench/bbd/internal/pyrun"
	"github.com/bbd-workbench/bbd/internal/safefs"
)

// EnvJupyter names the environment variable that overrides the jupyter command.
const EnvJupyter = "BBD_JUPYTER"

// Jupyter returns the jupyter command to run: $BBD_JUPYTER when set; else the
// one of bbd's venv (beside the Python that pyrun.Python finds, given
// candidates); else jupyter on PATH.
func Jupyter(candidates ...string) (string, error) {
	if j := os.Getenv(EnvJupyter); j != "" {
		if _, err := exec.LookPath(j); err != nil {
			return "", fmt.Errorf("jupyter %s (from $%s) does not run: %w", j, EnvJupyter, err)
		}
		return j, nil
	}
	if py, err := pyrun.Python(candidates...); err == nil {
		j := filepath.Join(filepath.Dir(py), "jupyter")
		if _, err := os.Stat(j); err == nil {
			return j, nil
		}
	}
	j, err := exec.LookPath("jupyter")
	if err != nil {
		return "", fmt.Errorf("jupyter not found (not in bbd's venv, not on PATH): run `make setup`")
	}
	return j, nil
}

// Export writes the notebook ipynb as HTML into outDir (created if needed)
// and returns the page's path: outDir/<name>.html for <name>.ipynb. An
// existing page is replaced in one rename, so a reader never sees half of one.
func Export(ctx context.Context, ipynb, outDir string) (string, error) {
	jupyter, err := Jupyter()
	if err != nil {
		return "", err
	}
	return ExportWith(ctx, jupyter, ipynb, outDir)
}

// ExportWith is Export with the given jupyter command.
func ExportWith(ctx context.Context, jupyter, ipynb, outDir string) (string, error) {
	if _, err := os.Stat(ipynb); err != nil {
		return "", err
	}
	if err := os.MkdirAll(outDir, 0o777); err != nil {
		return "", err
	}
	name := strings.TrimSuffix(filepath.Base(ipynb), ".ipynb")
	dst := filepath.Join(outDir, name+".html")
	tmp, err := safefs.NewTemp(dst)
	if err != nil {
		return "", err
	}
	defer tmp.Close()
	cmd := exec.CommandContext(ctx, jupyter, "nbconvert", "--to", "html", "--log-level=WARN",
		"--output-dir", tmp.Dir, "--output", name, ipynb)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return "", fmt.Errorf("jupyter nbconvert --to html %s: %w\n%s(is nbconvert installed? run `make setup`)",
			ipynb, err, tail(log.String(), 2000))
	}
	if _, err := os.Stat(filepath.Join(tmp.Dir, name+".html")); err != nil {
		return "", fmt.Errorf("jupyter nbconvert --to html %s wrote no %s.html\n%s", ipynb, name, tail(log.String(), 2000))
	}
	if err := tmp.CommitFile(name+".html", true, safefs.IsRegularFile); err != nil {
		return "", err
	}
	return dst, nil
}

// FigureNotebook returns a small executed GoNB notebook (nbformat 4.5): a
// markdown cell with title and one code cell whose output displays the PNG
// figure, as gonbui.DisplayPNG leaves it. A fixture for tests of HTML export
// and of JupyterLab.
func FigureNotebook(title string, figure []byte) []byte {
	nb := map[string]any{
		"nbformat": 4, "nbformat_minor": 5,
		"metadata": map[string]any{
			"kernelspec":    map[string]any{"name": "gonb", "display_name": "Go (gonb)", "language": "go"},
			"language_info": map[string]any{"name": "go", "file_extension": ".go", "mimetype": "text/x-go"},
		},
		"cells": []any{
			map[string]any{"id": "title", "cell_type": "markdown", "metadata": map[string]any{},
				"source": "# " + title},
			map[string]any{"id": "figure", "cell_type": "code", "metadata": map[string]any{}, "execution_count": 1,
				"source": "%%\ngonbui.DisplayPNG(figure)\ngonbui.Sync()",
				"outputs": []any{map[string]any{
					"output_type": "display_data", "metadata": map[string]any{},
					"data": map[string]any{
						"image/png":  base64.StdEncoding.EncodeToString(figure),
						"text/plain": "<figure>",
					},
				}}},
		},
	}
	b, err := json.MarshalIndent(nb, "", " ")
	if err != nil {
		panic(err) // maps of strings and numbers always marshal
	}
	return b
}

// SampleFigure is a w x h PNG (a colour gradient) to put in FigureNotebook.
func SampleFigure(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(255 * x / w), uint8(255 * y / h), 160, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err) // encoding to memory does not fail
	}
	return b.Bytes()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
