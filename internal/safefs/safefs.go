// Package safefs writes files and folders atomically beside their
// destination, for bbd's writers (SavedModels, competition HDF5 files, the
// zoo):
//
//   - everything is written into a temporary folder ".NAME.tmp-PID-RANDOM"
//     beside the destination NAME, created with the umask's permissions (0755
//     under the usual umask 022) and locked (flock) while its writer runs;
//   - the destination appears in one rename; an existing destination is kept
//     unless overwriting was asked for, and is then replaced only when it is
//     of the kind being written (the caller's Replaceable check: a SavedModel
//     for a SavedModel, an HDF5 file for an HDF5 file...). A folder is
//     replaced by exchanging the two in one step (Linux renameat2
//     RENAME_EXCHANGE), so a kill at any moment leaves the old or the new
//     one in place, never none;
//   - temporary folders left by killed runs (unlocked, their process gone)
//     are removed by the next write to the same destination.
package safefs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrExists is returned (wrapped) when the destination exists and
// overwriting was not asked for, or the destination is not of the kind that
// may be replaced. data.ErrExists and exporter.ErrExists are this value.
var ErrExists = errors.New("destination exists")

// Temp is a temporary folder beside a destination.
type Temp struct {
	Dir  string // the temporary folder
	dst  string
	lock *os.File // the folder, flocked while it is ours
	done bool
}

// NewTemp removes the stale temporary folders of dst, then creates a new one,
// empty and locked, beside dst. The parent folder must exist. Close it.
func NewTemp(dst string) (*Temp, error) {
	dst = filepath.Clean(dst)
	parent, base := filepath.Split(dst)
	if parent == "" {
		parent = "."
	}
	if st, err := os.Stat(parent); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%s: expected an existing parent folder %s, found none", dst, parent)
	}
	RemoveStale(dst)
	prefix := tempPrefix(base) + strconv.Itoa(os.Getpid()) + "-"
	for try := 0; ; try++ {
		dir := filepath.Join(parent, prefix+strconv.FormatUint(rand.Uint64()%1e12, 36))
		err := os.Mkdir(dir, 0o777) // the umask applies
		if os.IsExist(err) && try < 100 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: creating a temporary folder: %w", dst, err)
		}
		t := &Temp{Dir: dir, dst: dst}
		if t.lock, err = lockDir(dir); err != nil {
			os.Remove(dir)
			return nil, fmt.Errorf("%s: locking the temporary folder: %w", dst, err)
		}
		return t, nil
	}
}

func tempPrefix(base string) string { return "." + base + ".tmp-" }

// Close removes the temporary folder (whatever it holds: the new content if
// not committed, the old destination after an exchange) and unlocks it. It
// is safe to call more than once.
func (t *Temp) Close() error {
	if t.done {
		return nil
	}
	t.done = true
	err := os.RemoveAll(t.Dir)
	if t.lock != nil {
		t.lock.Close() // releases the flock
	}
	return err
}

// CommitDir makes the temporary folder the destination. An existing
// destination is an ErrExists error unless overwrite is set; with overwrite,
// replaceable (nil: anything but a symbolic link) must accept it, and the two
// are exchanged atomically; the old one is removed by Close.
func (t *Temp) CommitDir(overwrite bool, replaceable func(dst string) error) error {
	return t.commit(t.Dir, true, overwrite, replaceable)
}

// CommitFile moves the file name of the temporary folder to the destination
// (see CommitDir; a file replaces a file in one rename).
func (t *Temp) CommitFile(name string, overwrite bool, replaceable func(dst string) error) error {
	return t.commit(filepath.Join(t.Dir, name), false, overwrite, replaceable)
}

// Check reports whether dst may be written: nil when it does not exist, or
// when overwrite is set and it is replaceable: not a symbolic link, and
// accepted by replaceable (nil: anything). Otherwise the error names dst and
// wraps ErrExists, or is the *fs.PathError of reading dst.
func Check(dst string, overwrite bool, replaceable func(dst string) error) error {
	st, err := os.Lstat(dst)
	switch {
	case os.IsNotExist(err):
		return nil
	case err != nil:
		return err
	case !overwrite:
		return fmt.Errorf("%s: %w (remove it or ask for overwrite)", dst, ErrExists)
	case st.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("%s: %w and is a symbolic link: not replaced", dst, ErrExists)
	}
	if replaceable != nil {
		if err := replaceable(dst); err != nil {
			return fmt.Errorf("%s: %w and is not replaced: %v", dst, ErrExists, err)
		}
	}
	return nil
}

func (t *Temp) commit(src string, dir, overwrite bool, replaceable func(string) error) error {
	if err := Check(t.dst, overwrite, replaceable); err != nil {
		return err
	}
	st, err := os.Lstat(t.dst)
	if os.IsNotExist(err) {
		if err := renameNoReplace(src, t.dst); err != nil {
			if os.IsExist(err) || errors.Is(err, ErrExists) {
				return fmt.Errorf("%s: %w (created meanwhile by another writer)", t.dst, ErrExists)
			}
			return fmt.Errorf("%s: moving the new content into place: %w", t.dst, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", t.dst, err)
	}
	if st.IsDir() != dir {
		what := map[bool]string{true: "a folder", false: "a file"}
		return fmt.Errorf("%s: %w and is %s, expected %s: not replaced", t.dst, ErrExists, what[st.IsDir()], what[dir])
	}
	if !dir {
		if err := os.Rename(src, t.dst); err != nil {
			return fmt.Errorf("%s: moving the new file into place: %w", t.dst, err)
		}
		return nil
	}
	if err := exchange(src, t.dst); err != nil {
		return fmt.Errorf("%s: replacing it: %w", t.dst, err)
	}
	return nil
}

// RemoveStale removes the temporary folders of dst left by killed runs: those
// whose writer is gone (not locked, and the process that made them no longer
// running). Errors are ignored: a folder that cannot be removed stays.
func RemoveStale(dst string) {
	dst = filepath.Clean(dst)
	parent, base := filepath.Split(dst)
	if parent == "" {
		parent = "."
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	prefix := tempPrefix(base)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		if pid, _, ok := strings.Cut(rest, "-"); ok {
			if n, err := strconv.Atoi(pid); err == nil && processAlive(n) {
				continue
			}
		}
		p := filepath.Join(parent, e.Name())
		if !e.IsDir() { // a temporary file of an older bbd
			os.Remove(p)
			continue
		}
		if f, err := lockDir(p); err == nil {
			os.RemoveAll(p)
			f.Close()
		}
	}
}

// exchangeByRenames swaps src and dst with two renames, for file systems
// without an atomic exchange: dst is moved aside to ".NAME.old-..." (a name
// the stale cleanup leaves alone, so that a kill between the two renames
// leaves the old content there to recover by hand), src to dst, then the old
// content to src, where Close removes it.
func exchangeByRenames(src, dst string) error {
	parent, base := filepath.Split(dst)
	aside := filepath.Join(parent, "."+base+".old-"+strings.TrimPrefix(filepath.Base(src), tempPrefix(base)))
	if err := os.Rename(dst, aside); err != nil {
		return err
	}
	if err := os.Rename(src, dst); err != nil {
		if rerr := os.Rename(aside, dst); rerr != nil {
			return fmt.Errorf("%w (and restoring the old content from %s: %v)", err, aside, rerr)
		}
		return err
	}
	return os.Rename(aside, src)
}

// WriteFile writes content to path atomically (a temporary file beside it,
// then a rename): readers see the old file or the new one, never a part.
// An existing path is replaced only when overwrite is set, and only when it
// is a regular file.
func WriteFile(path string, content []byte, perm os.FileMode, overwrite bool) error {
	if err := Check(path, overwrite, IsRegularFile); err != nil {
		return err
	}
	t, err := NewTemp(path)
	if err != nil {
		return err
	}
	defer t.Close()
	if err := os.WriteFile(filepath.Join(t.Dir, "content"), content, perm); err != nil {
		return err
	}
	return t.CommitFile("content", overwrite, IsRegularFile)
}

// IsRegularFile is the replaceable rule of plain files: nil when path is a
// regular file (not a folder, not a symbolic link).
func IsRegularFile(path string) error {
	if st, err := os.Lstat(path); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	return nil
}
