package h5

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/hdf5"

	"github.com/bbd-workbench/bbd/internal/fuzzcorpus"
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
// file; a changed file is checked again (by the same child);
// BBD_H5_PREFLIGHT=off skips the child; a child that does not answer in time
// is a CrashError naming the file.
func TestPreflight(t *testing.T) {
	p := writeTestFile(t)
	n, started := requests.Load(), children.Load()
	for i := 0; i < 3; i++ {
		if err := Preflight(p); err != nil {
			t.Fatal(err)
		}
	}
	if got := requests.Load() - n; got != 1 {
		t.Errorf("3 preflights of one file: %d requests, expected 1", got)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := requests.Load() - n; got != 1 {
		t.Errorf("Open after Preflight: %d requests in all, expected 1", got)
	}

	os.WriteFile(p, []byte("\x89HDF\r\n\x1a\nchanged"), 0o644)
	if err := Preflight(p); err != nil {
		t.Errorf("a file libhdf5 refuses without crashing: got %v, expected nil (the parent reports it)", err)
	}
	if got := requests.Load() - n; got != 2 {
		t.Errorf("a changed file: %d requests in all, expected 2", got)
	}
	if got := children.Load() - started; got > 1 {
		t.Errorf("%d children started, expected at most 1", got)
	}

	t.Setenv(PreflightEnv, "off")
	os.WriteFile(p, []byte("\x89HDF\r\n\x1a\nchanged again"), 0o644)
	if err := Preflight(p); err != nil || requests.Load()-n != 2 {
		t.Errorf("%s=off: got %v and %d requests, expected nil and none", PreflightEnv, err, requests.Load()-n-2)
	}

	t.Setenv(PreflightEnv, "")
	t.Setenv(PreflightTimeoutEnv, "1ns")
	err = Preflight(p)
	want := p + ": expected a readable HDF5 file, found one that libhdf5 did not finish reading within 1ns"
	if !errors.Is(err, ErrCrashed) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("timeout: got %v, expected %q...", err, want)
	}
	if err2 := Preflight(p); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("timeout again: got %v, expected the same verdict", err2)
	}
	t.Setenv(PreflightTimeoutEnv, "soon")
	os.WriteFile(p, []byte("\x89HDF\r\n\x1a\nchanged once more"), 0o644)
	if err := Preflight(p); err == nil || !strings.Contains(err.Error(), PreflightTimeoutEnv) {
		t.Errorf("a bad timeout: got %v", err)
	}
}

// TestPreflightAfterCrash: a file that crashes a child that had read other
// files is read again by a new child; the next file gets a new child too.
func TestPreflightAfterCrash(t *testing.T) {
	ok := writeTestFile(t)
	if err := Preflight(ok); err != nil {
		t.Fatal(err)
	}
	bad := fuzzcorpus.TempFile(t, filepath.Join("..", "..", "data", "testdata", "fuzz", "FuzzOpenH5", "a67b1ad18c0dcd31"), "btree.h5")
	started := children.Load()
	err := Preflight(bad)
	var crash *CrashError
	if !errors.As(err, &crash) || crash.Cause != "SIGSEGV" || crash.Path != bad {
		t.Fatalf("got %v, expected a CrashError (SIGSEGV)", err)
	}
	if got := children.Load() - started; got != 1 {
		t.Errorf("%d children started for the crashing file, expected 1 (it is read again by a new one)", got)
	}
	os.WriteFile(ok, []byte("\x89HDF\r\n\x1a\nnot quite"), 0o644)
	if err := Preflight(ok); err != nil {
		t.Errorf("after a crash: got %v", err)
	}
	if got := children.Load() - started; got != 2 {
		t.Errorf("%d children started in all, expected 2", got)
	}
}
