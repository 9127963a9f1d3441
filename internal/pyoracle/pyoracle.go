// Package pyoracle runs Python TensorFlow, installed by `make setup` in
// .deps/venv, as the reference oracle of bbd's tests: the scripts beside this
// file build the same networks in Keras, load the same weights and report what
// TensorFlow's Python side computes, so Go results are compared live with it.
//
// Only tests use it: it finds its scripts through the source tree
// (runtime.Caller), which a shipped binary must not depend on. The bbd
// command runs its own (embedded) Python scripts with internal/pyrun.
package pyoracle

import (
	"path/filepath"
	"runtime"

	"github.com/bbd-workbench/bbd/internal/pyrun"
)

// Dir is the folder holding the oracle scripts.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Root is the module root.
func Root() string { return filepath.Join(Dir(), "..", "..") }

// Python returns the venv's interpreter: $BBD_PYTHON, else
// .deps/venv/bin/python of this source tree.
func Python() (string, error) {
	return pyrun.Python(filepath.Join(Root(), ".deps", "venv", "bin", "python"))
}

// Run runs script (a file in Dir) with args and decodes the JSON it prints on
// its last line of stdout into out.
func Run(out interface{}, script string, args ...string) error {
	py, err := Python()
	if err != nil {
		return err
	}
	return pyrun.Run(out, py, filepath.Join(Dir(), script), args...)
}
