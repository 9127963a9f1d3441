// Package pyoracle runs Python TensorFlow, installed by `make setup` in
// .deps/venv, as the reference oracle of bbd's tests: the scripts beside this
// file build the same networks in Keras, load the same weights and report what
// TensorFlow's Python side computes, so Go results are compared live with it.
//
// The product itself never calls Python; only tests do.
package pyoracle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Dir is the folder holding the oracle scripts.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Root is the module root.
func Root() string { return filepath.Join(Dir(), "..", "..") }

// Python returns the venv's interpreter: $BBD_PYTHON, else .deps/venv/bin/python.
func Python() (string, error) {
	p := os.Getenv("BBD_PYTHON")
	if p == "" {
		p = filepath.Join(Root(), ".deps", "venv", "bin", "python")
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("python reference oracle %s not found: run 'make setup'", p)
	}
	return p, nil
}

// Run runs script (a file in Dir) with args and decodes the JSON it prints on
// its last line of stdout into out.
func Run(out interface{}, script string, args ...string) error {
	py, err := Python()
	if err != nil {
		return err
	}
	cmd := exec.Command(py, append([]string{filepath.Join(Dir(), script)}, args...)...)
	cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=2", "CUDA_VISIBLE_DEVICES=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", script, strings.Join(args, " "), err, tail(stderr.String(), 3000))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if out == nil {
		return nil
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), out); err != nil {
		return fmt.Errorf("%s: decoding its JSON output: %w\n%s", script, err, tail(stdout.String(), 2000))
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
