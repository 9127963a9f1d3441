// Package pyrun finds the Python interpreter of bbd's venv (with TensorFlow,
// installed by `make setup`) and runs Python scripts with it: the scripts of
// this folder, embedded in the bbd binary (the Keras side of `bbd bench`),
// and, for the tests' oracle (internal/pyoracle), scripts from a folder.
//
// Nothing here depends on where the source tree was: the binary finds the
// venv relative to itself (.deps/bin/bbd.bin -> .deps/venv) or through
// $BBD_PYTHON.
package pyrun

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// scripts are the Python files of this folder: bench_predict.py,
// bench_train.py and the helpers they import (keras_models.py).
//
//go:embed *.py
var scripts embed.FS

// Python returns the interpreter to use: $BBD_PYTHON when set; else the venv
// beside the running executable as `make setup` lays them out
// (<root>/.deps/bin/bbd.bin and <root>/.deps/venv/bin/python); else the first
// of candidates that exists.
func Python(candidates ...string) (string, error) {
	if p := os.Getenv("BBD_PYTHON"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("python %s (from $BBD_PYTHON) not found", p)
		}
		return p, nil
	}
	var tried []string
	if exe, err := os.Executable(); err == nil {
		candidates = append([]string{filepath.Join(filepath.Dir(exe), "..", "venv", "bin", "python")}, candidates...)
	}
	for _, p := range candidates {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("python with TensorFlow not found (set $BBD_PYTHON; looked at %s): run 'make setup'", strings.Join(tried, ", "))
}

// Run runs the script at path with args using the interpreter py, on the
// CPU, and decodes the JSON object the script prints on its last line of
// stdout into out (nil: not decoded). A failure includes the end of its
// stderr.
func Run(out any, py, path string, args ...string) error {
	cmd := exec.Command(py, append([]string{path}, args...)...)
	cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=2", "CUDA_VISIBLE_DEVICES=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	script := filepath.Base(path)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", script, strings.Join(args, " "), err, tail(stderr.String(), 3000))
	}
	if out == nil {
		return nil
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), out); err != nil {
		return fmt.Errorf("%s: decoding its JSON output: %w\n%s", script, err, tail(stdout.String(), 2000))
	}
	return nil
}

// RunEmbedded runs script, one of the Python files embedded in bbd, with
// Python(): the embedded files are written to a temporary folder, removed
// afterwards.
func RunEmbedded(out any, script string, args ...string) error {
	if _, err := fs.Stat(scripts, script); err != nil {
		return fmt.Errorf("no embedded Python script %q", script)
	}
	py, err := Python()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bbd-py-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.CopyFS(dir, scripts); err != nil {
		return fmt.Errorf("writing the Python scripts to %s: %w", dir, err)
	}
	return Run(out, py, filepath.Join(dir, script), args...)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
