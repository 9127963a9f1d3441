package h5

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// File is an HDF5 file opened for reading, with libhdf5 kept out of this
// process: every call into the library (opening the file, listing a group,
// reading a header, an attribute or values) is made by the child process and
// its answer copied here (see the package documentation). A step that
// crashes the child, makes it loop or take too much memory is a *CrashError
// naming the file. With $BBD_H5_CHILD=off the same steps run in this
// process (trusted files only).
//
// The methods of a File may be called from several goroutines: requests are
// served one at a time.
type File struct {
	path    string // as the caller spells it, for messages
	abs     string
	version fileVersion
	local   bool // read in this process
	w       *worker
	id      int64 // the handle in w (or in the local server)
	closed  bool
}

// fileVersion identifies a version of a file: a File opened again in a new
// child (the previous one died on another file) must find the same file.
type fileVersion struct {
	dev, ino   uint64
	size, nsec int64
}

func versionOf(path string) (fileVersion, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fileVersion{}, err
	}
	v := fileVersion{size: st.Size(), nsec: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		v.dev, v.ino = uint64(sys.Dev), uint64(sys.Ino)
	}
	return v, nil
}

// local is the in-process server ($BBD_H5_CHILD=off); localMu serialises
// it (gonum/hdf5's handles are not safe for concurrent use).
var (
	localMu     sync.Mutex
	localServer *server
)

// OpenFile opens an existing HDF5 file read-only, with one clear error for a
// missing file or a file that is not HDF5, checked before libhdf5 sees it.
func OpenFile(path string) (*File, error) {
	ok, err := IsHDF5(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%s: expected an HDF5 file, found no such file", path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !ok {
		return nil, fmt.Errorf("%s: expected an HDF5 file, found a file without the HDF5 signature (not an HDF5 file)", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	v, err := versionOf(abs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f := &File{path: path, abs: abs, version: v, local: !ChildEnabled()}
	if _, err := f.do(request{Op: opOpen}); err != nil {
		if errors.Is(err, ErrFile) {
			return nil, err
		}
		return nil, fmt.Errorf("%s: opening HDF5 file: %w", path, err)
	}
	return f, nil
}

// Path returns the file's path as given to OpenFile.
func (f *File) Path() string { return f.path }

// Close releases the file. It is safe to call more than once.
func (f *File) Close() error {
	if f.local {
		localMu.Lock()
		defer localMu.Unlock()
	} else {
		current.Lock()
		defer current.Unlock()
	}
	if f.closed {
		return nil
	}
	f.closed = true
	if f.local {
		a := localServer.do(&request{Op: opClose, File: f.id})
		return answerErr(a)
	}
	w := f.w
	if w == nil || w != current.w {
		return nil // its child is gone, and the file with it
	}
	delete(w.open, f)
	timeout, err := childTimeout()
	if err != nil {
		timeout = DefaultChildTimeout
	}
	a, _, err := w.call(&request{Op: opClose, File: f.id}, timeout)
	if err != nil || a.Recycle || (len(w.open) == 0 && w.opened >= workerFiles) {
		retire()
	}
	if err != nil {
		return nil // the child died closing a file it had read: nothing is left open
	}
	return answerErr(a)
}

func answerErr(a *response) error {
	if a.Err != "" {
		return errors.New(a.Err)
	}
	return nil
}

// errClosed is the error of a File used after Close.
var errClosed = errors.New("the file is closed")

// do carries out r on f and returns the answer; the error is the
// operation's own (a plain error with libhdf5's or bbd's message), a
// *CrashError, or the child could not be started.
func (f *File) do(r request) (*response, error) {
	if f.local {
		return f.doLocal(r)
	}
	timeout, err := childTimeout()
	if err != nil {
		return nil, &fileError{msg: f.path + ": " + err.Error()}
	}
	current.Lock()
	defer current.Unlock()
	if f.closed {
		return nil, &fileError{msg: f.path + ": " + errClosed.Error(), err: errClosed}
	}
	for retried := false; ; retried = true {
		if current.w == nil {
			w, err := startWorker()
			if err != nil {
				return nil, &fileError{msg: fmt.Sprintf("%s: cannot read the file in a child process (%v); set %s=off for trusted files", f.path, err, ChildEnv), err: err}
			}
			current.w = w
		}
		w := current.w
		// A child that has read other files may die of what they did to
		// its libhdf5: a new child then gives the verdict.
		others := !retried && (w.opened > len(w.open) || len(w.open) > 1 || (len(w.open) == 1 && !w.open[f]))
		if f.w != w { // not open in this child (yet, or any more)
			if f.w != nil {
				if v, err := versionOf(f.abs); err != nil || v != f.version {
					return nil, &fileError{msg: f.path + ": the file changed or went away while it was being read"}
				}
			}
			a, err := f.step(w, &request{Op: opOpen, Path: f.abs}, timeout, others)
			if err == errRetry {
				continue
			} else if err != nil {
				return nil, err
			} else if a.Err != "" {
				return nil, errors.New(a.Err)
			}
			f.w, f.id = w, a.File
			w.opened++
			w.open[f] = true
			if r.Op == opOpen {
				return a, nil
			}
		}
		r.File = f.id
		a, err := f.step(w, &r, timeout, others)
		if err == errRetry {
			continue
		} else if err != nil {
			return nil, err
		}
		return a, answerErr(a)
	}
}

// errRetry says that a child died on a step after reading other files.
var errRetry = errors.New("retry in a new child")

// step sends s to w (the current worker) and turns a child that died, ran
// out of time or took too much memory into a *CrashError (errRetry when
// others says w had read other files: a new child is asked again).
func (f *File) step(w *worker, s *request, timeout time.Duration, others bool) (*response, error) {
	a, timedOut, err := w.call(s, timeout)
	if err == nil && a.Memory == 0 {
		return a, nil
	}
	st := retire()
	switch {
	case err == nil:
		return nil, &CrashError{Path: f.path, Cause: "memory", Memory: a.Memory, Stage: s.describe()}
	case timedOut: // no second timeout: the verdict is kept
		return nil, &CrashError{Path: f.path, Cause: "stopped", Timeout: timeout, Stage: s.describe()}
	case err != errGone:
		return nil, &fileError{msg: fmt.Sprintf("%s: reading the file in a child process: %v", f.path, err), err: err}
	case others:
		return nil, errRetry
	case st == nil:
		return nil, &fileError{msg: fmt.Sprintf("%s: cannot read the file in a child process (it did not start); set %s=off for trusted files", f.path, ChildEnv)}
	}
	return nil, &CrashError{Path: f.path, Cause: crashCause(st, w.stderr.String()), Stage: s.describe()}
}

func (f *File) doLocal(r request) (*response, error) {
	localMu.Lock()
	defer localMu.Unlock()
	if f.closed {
		return nil, &fileError{msg: f.path + ": " + errClosed.Error(), err: errClosed}
	}
	if localServer == nil {
		localServer = newServer()
	}
	if r.Op == opOpen {
		r.Path = f.abs
	}
	r.File = f.id
	a := localServer.do(&r)
	if r.Op == opOpen && a.Err == "" {
		f.id = a.File
	}
	return a, answerErr(a)
}

// Link reports the kind of the link p (see [Link]).
func (f *File) Link(p string) (LinkKind, error) {
	a, err := f.do(request{Op: opLink, Path: p})
	if err != nil {
		return NoLink, err
	}
	return a.Kind, nil
}

// HardLinkExists reports whether p is a chain of hard links to an object
// (see [HardLinkExists]).
func (f *File) HardLinkExists(p string) (bool, error) {
	a, err := f.do(request{Op: opHard, Path: p})
	if err != nil {
		return false, err
	}
	return a.OK, nil
}

// Members returns the sorted names of the members of group p (see
// [Members]).
func (f *File) Members(p string) ([]string, error) {
	a, err := f.do(request{Op: opMembers, Path: p})
	if err != nil {
		return nil, err
	}
	return a.Names, nil
}

// Walk calls fn with the path of every dataset under group root, as [Walk]
// does (hard links only, each object once, within MaxDepth and MaxMembers).
// The child lists them; fn runs here.
func (f *File) Walk(root string, fn func(dataset string) error) error {
	a, err := f.do(request{Op: opWalk, Path: root})
	if a == nil {
		return err
	}
	for _, ds := range a.Names {
		if err := fn(ds); err != nil {
			return err
		}
	}
	return err // the walk's own error, after the datasets found before it
}

// StringAttribute reads the attribute name of the object at p (a group or a
// dataset) as one string of at most max bytes (see [ReadStringAttribute]);
// exists is false, with no error, when the object has no such attribute.
func (f *File) StringAttribute(p, name string, max int) (value string, exists bool, err error) {
	a, err := f.do(request{Op: opAttr, Path: p, Name: name, Max: max})
	if a == nil {
		return "", false, err
	}
	return a.Str, a.OK, err
}

// Dataset reads the header of dataset p: its shape, element type and
// whether the readers can convert its values.
func (f *File) Dataset(p string) (DatasetHeader, error) {
	a, err := f.do(request{Op: opDataset, Path: p})
	if err != nil {
		return DatasetHeader{}, err
	}
	return a.Header, nil
}

// ReadFloat32 reads the n values of dataset p, converted by HDF5 to float32
// (see [ReadFloat32]); the dataset must hold exactly n values. Check its
// header first: n is what the caller allocates.
func (f *File) ReadFloat32(p string, n int) ([]float32, error) {
	if n < 0 || n > maxAnswerBytes/4 {
		return nil, fmt.Errorf("%s: %s: %d values, expected at most %d at a time", f.path, p, n, maxAnswerBytes/4)
	}
	a, err := f.do(request{Op: opFloat32, Path: p, Count: n})
	if err != nil {
		return nil, err
	}
	if len(a.data) != 4*n {
		return nil, fmt.Errorf("expected %d values, the child read %d bytes", n, len(a.data))
	}
	return valuesOf[float32](a.data), nil
}

// ReadRows reads rows [start, start+count) of dataset p, whose rows hold
// rowLen values each, as float64 (HDF5 converts from any integer or float
// type and byte order) and hands them to fn in chunks of whole rows, about
// chunkValues values at a time (at least one row): fn(first row, values).
// The values are overwritten after fn returns.
func (f *File) ReadRows(p string, rowLen, start, count, chunkValues int, fn func(row int, v []float64) error) error {
	if count <= 0 || rowLen <= 0 {
		return nil
	}
	if rowLen > maxAnswerBytes/8 {
		return fmt.Errorf("rows of %d values, expected at most %d", rowLen, maxAnswerBytes/8)
	}
	chunk := max(1, min(chunkValues, maxAnswerBytes/8)/rowLen)
	var buf []byte // reused: fn must not keep the values
	for r := start; r < start+count; r += chunk {
		k := min(chunk, start+count-r)
		a, err := f.do(request{Op: opRows, Path: p, Start: r, Count: k, into: buf})
		if err != nil {
			return err
		}
		if len(a.data) != 8*k*rowLen {
			return fmt.Errorf("reading rows [%d, %d): expected %d values, the child read %d bytes", r, r+k, k*rowLen, len(a.data))
		}
		if err := fn(r, valuesOf[float64](a.data)); err != nil {
			return err
		}
		buf = a.data
	}
	return nil
}
