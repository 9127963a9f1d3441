// Package fuzzcorpus reads the files of Go's fuzz corpora (testdata/fuzz/...,
// "go test fuzz v1") of targets with one []byte argument, so that a
// regression test can run a seed outside the fuzz target.
package fuzzcorpus

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Bytes returns the []byte value of the corpus file at path.
func Bytes(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		return nil, fmt.Errorf("%s: expected a Go fuzz corpus file (\"go test fuzz v1\" and one value), found %d lines", path, len(lines))
	}
	v, ok := strings.CutPrefix(lines[1], "[]byte(")
	if ok {
		v, ok = strings.CutSuffix(v, ")")
	}
	s, err := strconv.Unquote(v)
	if !ok || err != nil {
		return nil, fmt.Errorf("%s: expected one []byte(\"...\") value, found %.40q", path, lines[1])
	}
	return []byte(s), nil
}

// TempFile writes the []byte value of the corpus file at path to a file
// named name in t's temporary folder and returns its path.
func TempFile(t testing.TB, path, name string) string {
	t.Helper()
	b, err := Bytes(path)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
