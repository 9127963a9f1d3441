// Package nbutil holds the small helpers the notebooks of this folder share, so that
// notebook cells stay short: finding the checkout and the shared data beside it, and
// rendering figures (an image grid with captions, top-k probability bar charts, HTML
// tables; line and bar charts drawn by package plots, as the bbd command draws them)
// to bytes that a cell shows with gonbui.DisplayPNG / gonbui.DisplayHTML.
//
// The figure helpers take plain Go values, so they are tested without a notebook.
// reproduce.go connects the notebooks 03-07 to package reproduce (which runs the models
// with TensorFlow): Reproduction builds its Runner from the environment (BBD_DATA,
// BBD_ZOO, BBD_SETTINGS, BBD_REPRO_OUT), and Show, ShowEach and ShowTables display its
// figures and tables through GoNB's gonbui (which does nothing outside a notebook).
//
// Importing it also keeps libtensorflow's two start-up lines out of the cells' output:
// GoNB runs every cell as a program, and nbutil brings in internal/tfquiet, which
// silences what the library prints while it is loaded (BBD_VERBOSE=1 in the kernel's
// environment shows it again).
package nbutil

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bbd-workbench/bbd/internal/textfmt"
	_ "github.com/bbd-workbench/bbd/internal/tfquiet" // see the package comment
)

// ModulePath is the module path of this repository.
const ModulePath = "github.com/bbd-workbench/bbd"

// Root returns the root folder of the bbd checkout: $BBD_ROOT if set, else the first
// folder holding bbd's go.mod found going up from $GONB_DIR (the folder GoNB was started
// in: the notebook's folder) or from the current directory.
func Root() (string, error) {
	if r := os.Getenv("BBD_ROOT"); r != "" {
		if !isRoot(r) {
			return "", fmt.Errorf("BBD_ROOT=%q does not hold the go.mod of %s", r, ModulePath)
		}
		return filepath.Abs(r)
	}
	var starts []string
	if d := os.Getenv("GONB_DIR"); d != "" {
		starts = append(starts, d)
	}
	if d, err := os.Getwd(); err == nil {
		starts = append(starts, d)
	}
	for _, start := range starts {
		dir, err := filepath.Abs(start)
		if err != nil {
			continue
		}
		for {
			if isRoot(dir) {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("no go.mod of %s found above %q: set BBD_ROOT to the checkout", ModulePath, starts)
}

// isRoot reports whether dir/go.mod declares ModulePath.
func isRoot(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == ModulePath
		}
	}
	return false
}

// Shared returns the path of elem under the read-only shared folder: $BBD_SHARED if set,
// else "shared" beside the checkout (<root>/../shared). The path must exist.
func Shared(elem ...string) (string, error) {
	dir := os.Getenv("BBD_SHARED")
	if dir == "" {
		root, err := Root()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(filepath.Dir(root), "shared")
	}
	p := filepath.Join(append([]string{dir}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("shared data %s not found (the shared folder lies beside the checkout, or set BBD_SHARED): %w", p, err)
		}
		return "", err
	}
	return p, nil
}

// Commas formats n with thousands separators: 601643 -> "601,643".
func Commas(n int) string { return textfmt.Thousands(n) }

// Dims formats a tensor shape as "55x47x3", leaving out a leading batch dimension of -1.
func Dims(shape []int64) string {
	if len(shape) > 0 && shape[0] == -1 {
		shape = shape[1:]
	}
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = fmt.Sprint(d)
	}
	return strings.Join(parts, "x")
}
