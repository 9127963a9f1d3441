package h5

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/hdf5"
)

// writeTestFile writes an HDF5 file with a group, an attribute and a dataset.
func writeTestFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ok.h5")
	f, err := hdf5.CreateFile(p, hdf5.F_ACC_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := f.CreateGroup("g")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	sp, err := hdf5.CreateSimpleDataspace([]uint{3, 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	ds, err := g.CreateDataset("d", hdf5.T_NATIVE_FLOAT, sp)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	v := []float32{1, 2, 3, 4, 5, 6}
	if err := ds.Write(&v); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPreflight: a readable file passes the child once per version of the
// file; a changed file is checked again; BBD_H5_PREFLIGHT=off skips the
// child; a child that does not answer in time is a CrashError naming the
// file.
func TestPreflight(t *testing.T) {
	p := writeTestFile(t)
	n := children.Load()
	for i := 0; i < 3; i++ {
		if err := Preflight(p); err != nil {
			t.Fatal(err)
		}
	}
	if got := children.Load() - n; got != 1 {
		t.Errorf("3 preflights of one file started %d children, expected 1", got)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := children.Load() - n; got != 1 {
		t.Errorf("Open after Preflight started %d children in all, expected 1", got)
	}

	os.WriteFile(p, []byte("\x89HDF\r\n\x1a\nchanged"), 0o644)
	if err := Preflight(p); err != nil {
		t.Errorf("a file libhdf5 refuses without crashing: got %v, expected nil (the parent reports it)", err)
	}
	if got := children.Load() - n; got != 2 {
		t.Errorf("a changed file: %d children in all, expected 2", got)
	}

	t.Setenv(PreflightEnv, "off")
	os.WriteFile(p, []byte("\x89HDF\r\n\x1a\nchanged again"), 0o644)
	if err := Preflight(p); err != nil || children.Load()-n != 2 {
		t.Errorf("%s=off: got %v and %d children, expected nil and none", PreflightEnv, err, children.Load()-n-2)
	}

	t.Setenv(PreflightEnv, "")
	t.Setenv(PreflightTimeoutEnv, "1ns")
	err = Preflight(p)
	want := p + ": expected a readable HDF5 file, found one that libhdf5 did not finish reading within 1ns"
	if !errors.Is(err, ErrCrashed) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("timeout: got %v, expected %q...", err, want)
	}
	t.Setenv(PreflightTimeoutEnv, "soon")
	if err := Preflight(p); err == nil || !strings.Contains(err.Error(), PreflightTimeoutEnv) {
		t.Errorf("a bad timeout: got %v", err)
	}
}

func TestLastStage(t *testing.T) {
	out := "noise\n" + lineStage + "a\n" + lineStage + "b\nmore noise\n"
	if s, done := lastStage(out); s != "b" || done {
		t.Errorf("got %q %v", s, done)
	}
	if _, done := lastStage(out + lineDone + "\n"); !done {
		t.Error("done not seen")
	}
}
