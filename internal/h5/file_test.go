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

// readAll reads every step of the test file with f, checking the answers.
func readAll(t *testing.T, f *File) {
	t.Helper()
	if k, err := f.Link("g"); err != nil || k != HardLink {
		t.Errorf("Link(g) = %v, %v; expected a hard link", k, err)
	}
	if ok, err := f.HardLinkExists("g/d"); err != nil || !ok {
		t.Errorf("HardLinkExists(g/d) = %v, %v", ok, err)
	}
	if names, err := f.Members("/"); err != nil || len(names) != 1 || names[0] != "g" {
		t.Errorf("Members(/) = %v, %v", names, err)
	}
	var walked []string
	if err := f.Walk("/", func(ds string) error { walked = append(walked, ds); return nil }); err != nil || len(walked) != 1 || walked[0] != "/g/d" {
		t.Errorf("Walk(/) = %v, %v", walked, err)
	}
	if v, ok, err := f.StringAttribute("/", "model_config", 100); err != nil || ok || v != "" {
		t.Errorf("StringAttribute(/, model_config) = %q, %v, %v; expected none", v, ok, err)
	}
	h, err := f.Dataset("g/d")
	if err != nil || len(h.Dims) != 2 || h.Dims[0] != 3 || h.Dims[1] != 2 || h.Type != "float32" || !h.Float || !h.Numeric {
		t.Errorf("Dataset(g/d) = %+v, %v", h, err)
	}
	if v, err := f.ReadFloat32("g/d", 6); err != nil || len(v) != 6 || v[0] != 1 || v[5] != 6 {
		t.Errorf("ReadFloat32(g/d) = %v, %v", v, err)
	}
	if _, err := f.ReadFloat32("g/d", 5); err == nil || !strings.Contains(err.Error(), "expected 5 values, the selection has 6") {
		t.Errorf("ReadFloat32(g/d, 5): got %v", err)
	}
	var rows []float64
	if err := f.ReadRows("g/d", 2, 1, 2, 2, func(row int, v []float64) error {
		if row != 1+len(rows)/2 {
			t.Errorf("row %d after %d values", row, len(rows))
		}
		rows = append(rows, v...)
		return nil
	}); err != nil || len(rows) != 4 || rows[0] != 3 || rows[3] != 6 {
		t.Errorf("ReadRows(g/d, [1, 3)) = %v, %v", rows, err)
	}
	if err := f.ReadRows("g/d", 2, 2, 2, 2, func(int, []float64) error { return nil }); err == nil || !strings.Contains(err.Error(), "rows [3, 4) asked for, the dataset has 3") {
		t.Errorf("ReadRows past the end: got %v", err)
	}
}

// TestFile: every step of a readable file is answered by one child, which
// the next file uses too; $BBD_H5_CHILD=off reads in this process with the
// same answers; a step that does not finish in time is a CrashError naming
// the file and the step; a bad timeout is an error naming its variable.
func TestFile(t *testing.T) {
	p := writeTestFile(t)
	started := children.Load()
	for i := 0; i < 2; i++ {
		f, err := OpenFile(p)
		if err != nil {
			t.Fatal(err)
		}
		n := requests.Load()
		readAll(t, f)
		if got := requests.Load() - n; got != 12 {
			t.Errorf("%d requests for 12 steps (ReadRows asks a row at a time here)", got)
		}
		if err := f.Close(); err != nil {
			t.Error(err)
		}
		if err := f.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := f.Members("/"); err == nil || !strings.Contains(err.Error(), "closed") || !errors.Is(err, ErrFile) {
			t.Errorf("Members after Close: got %v", err)
		}
	}
	if got := children.Load() - started; got > 1 {
		t.Errorf("%d children started, expected at most 1", got)
	}

	t.Setenv(ChildEnv, "off")
	n := requests.Load()
	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, f)
	f.Close()
	if got := requests.Load() - n; got != 0 {
		t.Errorf("%s=off: %d requests to a child, expected none", ChildEnv, got)
	}

	t.Setenv(ChildEnv, "")
	os.WriteFile(p, []byte("\x89HDF\r\n\x1a\nchanged"), 0o644)
	if _, err := OpenFile(p); err == nil || !strings.HasPrefix(err.Error(), p+": opening HDF5 file: ") || errors.Is(err, ErrCrashed) {
		t.Errorf("a file libhdf5 refuses without crashing: got %v", err)
	}
	t.Setenv(ChildTimeoutEnv, "1ns")
	_, err = OpenFile(p)
	want := p + ": expected a readable HDF5 file, found one that libhdf5 did not finish reading within 1ns (it was reading the file's superblock (opening it))"
	if !errors.Is(err, ErrCrashed) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("timeout: got %v, expected %q...", err, want)
	}
	t.Setenv(ChildTimeoutEnv, "soon")
	if _, err := OpenFile(p); err == nil || !strings.Contains(err.Error(), ChildTimeoutEnv) {
		t.Errorf("a bad timeout: got %v", err)
	}
}

// TestFileAfterCrash: a file that crashes a child that had read other files
// is read again by a new child, which gives the verdict; a file that was
// open in the crashed child is opened again in the next one, and a file
// replaced meanwhile is refused.
func TestFileAfterCrash(t *testing.T) {
	ok := writeTestFile(t)
	f, err := OpenFile(ok)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	readAll(t, f)
	bad := fuzzcorpus.TempFile(t, filepath.Join("..", "..", "data", "testdata", "fuzz", "FuzzOpenH5", "a67b1ad18c0dcd31"), "btree.h5")
	started := children.Load()
	b, err := OpenFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Members("/")
	var crash *CrashError
	if !errors.As(err, &crash) || !errors.Is(err, ErrFile) || crash.Cause != "SIGSEGV" || crash.Path != bad || crash.Stage != "its group structure (/)" {
		t.Fatalf("got %v, expected a CrashError (SIGSEGV) listing /", err)
	}
	if got := children.Load() - started; got != 1 {
		t.Errorf("%d children started for the crashing file, expected 1 (it is read again by a new one)", got)
	}
	b.Close()
	readAll(t, f) // opened again in a new child
	if got := children.Load() - started; got != 2 {
		t.Errorf("%d children started in all, expected 2", got)
	}

	// The child dies again; the open file has changed meanwhile.
	if b, err = OpenFile(bad); err != nil {
		t.Fatal(err)
	}
	b.Members("/")
	b.Close()
	os.WriteFile(ok, []byte("\x89HDF\r\n\x1a\nreplaced"), 0o644)
	if _, err := f.Members("/"); err == nil || !strings.Contains(err.Error(), "changed or went away") || !errors.Is(err, ErrFile) {
		t.Errorf("a replaced file: got %v", err)
	}
}
