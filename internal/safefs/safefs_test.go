package safefs_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/bbd-workbench/bbd/internal/safefs"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// newDir makes a temporary folder for dst holding file "x" with content.
func newDir(t *testing.T, dst, content string) *safefs.Temp {
	t.Helper()
	tmp, err := safefs.NewTemp(dst)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(tmp.Dir, "x"), content)
	return tmp
}

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// TestCommitDir: a new folder gets the umask's mode (not 0700), an existing
// one is refused without overwrite and replaced with it, and nothing is left
// beside it.
func TestCommitDir(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	parent := t.TempDir()
	dst := filepath.Join(parent, "model")

	tmp := newDir(t, dst, "one")
	if err := tmp.CommitDir(false, nil); err != nil {
		t.Fatal(err)
	}
	tmp.Close()
	st, err := os.Stat(dst)
	if err != nil || st.Mode().Perm() != 0o755 || read(t, filepath.Join(dst, "x")) != "one" {
		t.Fatalf("committed folder: %v, mode %v", err, st.Mode())
	}

	tmp = newDir(t, dst, "two")
	if err := tmp.CommitDir(false, nil); !errors.Is(err, safefs.ErrExists) {
		t.Errorf("commit over an existing folder: %v", err)
	}
	tmp.Close()
	if read(t, filepath.Join(dst, "x")) != "one" {
		t.Error("refused commit changed the destination")
	}

	tmp = newDir(t, dst, "three")
	if err := tmp.CommitDir(true, nil); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(dst, "x")) != "three" || read(t, filepath.Join(tmp.Dir, "x")) != "one" {
		t.Error("overwrite did not exchange the folders")
	}
	tmp.Close()
	if got := entries(t, parent); len(got) != 1 || got[0] != "model" {
		t.Errorf("left beside the destination: %v", got)
	}
}

// TestOverwriteOnlyReplaceable: with overwrite, a destination the caller's
// check refuses, a file where a folder is written and a symbolic link are
// kept, with an ErrExists error.
func TestOverwriteOnlyReplaceable(t *testing.T) {
	parent := t.TempDir()
	notModel := filepath.Join(parent, "photos")
	write(t, filepath.Join(notModel, "me.jpg"), "precious")
	file := filepath.Join(parent, "notes.txt")
	write(t, file, "precious")
	link := filepath.Join(parent, "link")
	if err := os.Symlink(notModel, link); err != nil {
		t.Fatal(err)
	}
	refuse := func(dst string) error {
		if _, err := os.Stat(filepath.Join(dst, "saved_model.pb")); err != nil {
			return errors.New("not a SavedModel")
		}
		return nil
	}
	for _, dst := range []string{notModel, file, link} {
		tmp := newDir(t, dst, "new")
		err := tmp.CommitDir(true, refuse)
		tmp.Close()
		if !errors.Is(err, safefs.ErrExists) {
			t.Errorf("%s: %v", dst, err)
		}
	}
	// A file replacing a folder, through CommitFile.
	tmp := newDir(t, notModel, "new")
	if err := tmp.CommitFile("x", true, nil); !errors.Is(err, safefs.ErrExists) {
		t.Errorf("file over a folder: %v", err)
	}
	tmp.Close()
	if read(t, filepath.Join(notModel, "me.jpg")) != "precious" || read(t, file) != "precious" {
		t.Error("a refused destination changed")
	}
}

// TestCommitFile: a file replaces a file.
func TestCommitFile(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "data.h5")
	write(t, dst, "old")
	tmp := newDir(t, dst, "new")
	if err := tmp.CommitFile("x", true, nil); err != nil {
		t.Fatal(err)
	}
	tmp.Close()
	if read(t, dst) != "new" {
		t.Error("not replaced")
	}
}

// TestRemoveStale: folders of killed runs (process gone, unlocked) are
// removed by the next NewTemp; a live writer's and the ".old-" folder of an
// interrupted two-rename swap are kept.
func TestRemoveStale(t *testing.T) {
	parent := t.TempDir()
	dst := filepath.Join(parent, "model")
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	dead := strconv.Itoa(cmd.Process.Pid) // exited: its folders are stale
	stale := []string{".model.tmp-" + dead + "-abc", ".model.tmp-123456"}
	for _, s := range stale {
		write(t, filepath.Join(parent, s, "variables", "v"), "half written")
	}
	write(t, filepath.Join(parent, ".model.old-"+dead+"-abc", "x"), "old model")
	live, err := safefs.NewTemp(dst) // this process's, locked
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	other := filepath.Join(parent, ".othermodel.tmp-"+dead+"-abc")
	write(t, filepath.Join(other, "x"), "another destination's")

	tmp, err := safefs.NewTemp(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	for _, s := range stale {
		if _, err := os.Stat(filepath.Join(parent, s)); !os.IsNotExist(err) {
			t.Errorf("stale %s kept", s)
		}
	}
	for _, keep := range []string{live.Dir, other, filepath.Join(parent, ".model.old-"+dead+"-abc")} {
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("%s removed: %v", keep, err)
		}
	}
}
