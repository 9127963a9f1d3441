package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// oneLineError runs bbd, expects exit 1 with one "bbd: " line on stderr
// holding want, and nothing changed under dir.
func oneLineError(t *testing.T, dir string, want []string, args ...string) {
	t.Helper()
	before := snapshot(t, dir)
	out, errs, code := bbd(t, args...)
	if code != 1 || out != "" || !strings.HasPrefix(errs, "bbd: ") || strings.Count(errs, "\n") != 1 {
		t.Errorf("bbd %q: exit %d, stdout %q, stderr %q", args, code, out, errs)
	}
	for _, w := range want {
		if !strings.Contains(errs, w) {
			t.Errorf("bbd %q: stderr %q lacks %q", args, errs, w)
		}
	}
	if after := snapshot(t, dir); fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("bbd %q changed files:\nbefore %v\nafter  %v", args, before, after)
	}
}

// TestBadInputOverwrite: convert --overwrite used to delete whatever was at
// the destination; now a regular file and a folder that is not a SavedModel
// are kept, and only a SavedModel is replaced.
func TestBadInputOverwrite(t *testing.T) {
	weights := sharedPath(t, "badnets", "sunglasses_bd_weights.h5")
	dir := t.TempDir()
	file := filepath.Join(dir, "thesis.pdf")
	folder := filepath.Join(dir, "photos")
	os.WriteFile(file, []byte("precious"), 0o644)
	os.Mkdir(folder, 0o755)
	os.WriteFile(filepath.Join(folder, "me.jpg"), []byte("precious"), 0o644)
	for _, dst := range []string{file, folder} {
		oneLineError(t, dir, []string{dst, "not a SavedModel", "nothing written"}, "convert", "--overwrite", weights, dst)
	}
	sm := convertSunglasses(t, dir)
	os.WriteFile(filepath.Join(sm, "old.txt"), []byte("old"), 0o644)
	mustBBD(t, "convert", "--overwrite", weights, sm)
	if _, err := os.Stat(filepath.Join(sm, "old.txt")); !os.IsNotExist(err) {
		t.Error("--overwrite over a SavedModel kept its old content")
	}
	if st, err := os.Stat(sm); err != nil || st.Mode().Perm()&0o055 == 0 {
		t.Errorf("converted folder mode %v (%v): the umask's, not 0700", st.Mode().Perm(), err)
	}
}

// TestBadInputSavedModelWithoutVariables: a SavedModel whose variables/ is
// missing is refused by info and predict (it used to pass info with exit 0).
func TestBadInputSavedModelWithoutVariables(t *testing.T) {
	dir := t.TempDir()
	sm := convertSunglasses(t, dir)
	if err := os.RemoveAll(filepath.Join(sm, "variables")); err != nil {
		t.Fatal(err)
	}
	oneLineError(t, dir, []string{sm, "variables"}, "info", sm)
	oneLineError(t, dir, []string{sm, "variables"}, "predict", "--model", sm, sharedPath(t, "ytf-samples"))
}

// TestBadInputBatchTooLarge: --batch 1000000 is a usage error (it used to
// die of out-of-memory on a large HDF5 file).
func TestBadInputBatchTooLarge(t *testing.T) {
	weights := sharedPath(t, "badnets", "sunglasses_bd_weights.h5")
	for _, args := range [][]string{
		{"predict", "--batch", "1000000", "--model", weights, sharedPath(t, "ytf-samples")},
		{"bench", "--batch", "1000000", "--no-python"},
	} {
		out, errs, code := bbd(t, args...)
		if code != 2 || out != "" || !strings.Contains(errs, "at most") {
			t.Errorf("bbd %q: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}

// TestBinaryDoesNotEmbedTheSourceTree: the bbd command does not link the
// tests' Python oracle, which finds its scripts through the build machine's
// source path (runtime.Caller); bench runs its embedded scripts instead.
func TestBinaryDoesNotEmbedTheSourceTree(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip(err)
	}
	out, err := exec.Command(goCmd, "list", "-deps", ".").Output()
	if err != nil {
		t.Skip(err)
	}
	if strings.Contains(string(out), "internal/pyoracle") {
		t.Error("cmd/bbd depends on internal/pyoracle")
	}
	if !strings.Contains(string(out), "internal/pyrun") {
		t.Error("cmd/bbd does not use internal/pyrun")
	}
}
