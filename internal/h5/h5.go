// Package h5 opens HDF5 files safely for bbd's readers: it checks that the
// file exists and is HDF5 before the C library sees it, and turns off the
// library's habit of printing its error stack to stderr, so that a bad input
// gives one clear Go error and nothing else.
//
// # Files that crash libhdf5
//
// Debian 12's HDF5 1.10 reads some malformed files past its buffers and dies
// with SIGSEGV (a corrupt group B-tree in H5Gget_info, a corrupt global-heap
// string in H5HG_read: see the seeds of data's FuzzOpenH5 and tfmodels'
// FuzzReadKerasH5); Go cannot recover from a fault in C. So [Open] (used by
// tfmodels.ReadKerasH5) and data.OpenH5 call [Preflight] before opening a
// file in this process: the program re-executes itself (/proc/self/exe, the
// same environment plus BBD_H5_PREFLIGHT_CHILD=1), and this package's init,
// which runs before main, the tests or a notebook's code (so before any
// TensorFlow work; libtensorflow is still loaded, its start-up lines going to
// the parent's capture), serves as the child: it reads the files the parent
// names on its stdin one after another and exits at the end of its input.
// For each file it opens it, walks its groups (hard links only, within
// [MaxDepth] and [MaxMembers]), looks up each link by name, reads the
// attributes the readers read (a Keras model_config) on every object, each
// dataset's shape, type and storage check, and its values: in full up to
// 2^24 values per dataset and 2^26 in all, beyond that the first and last
// rows and the chunk index. That is a superset of what bbd's readers do with
// a file within those budgets: every dataset is read, where a reader reads
// some (a file whose other datasets crash libhdf5 is refused too), but no
// other attribute (one that kept HDF5 1.10 busy for minutes was found in a
// file the readers read without trouble). A child that dies on a file, does
// not finish it within the timeout, or sees libhdf5 take more than 2 GiB of
// memory for it (a global heap declaring 4 GB was found), gives a
// *[CrashError] (errors.Is [ErrCrashed]) with one message:
//
//	f.h5: expected a readable HDF5 file, found one that crashed libhdf5 (SIGSEGV) reading its group structure (/): the file is malformed
//
// and the file is not opened in this process. A child that finishes lets the
// in-process read go on (and report whatever errors it finds). A child that
// dies on a file after reading others is replaced, and the new one reads the
// file again and gives the verdict (so what a previous file did to the
// child's libhdf5 cannot get a readable file refused). A child is also
// replaced after 256 files and when libhdf5 kept objects of a file open. It
// closes the descriptors it inherited by accident (without close-on-exec),
// and stops itself shortly after the timeout should its parent be gone.
//
// Costs: starting the child, once per process (and after each crash): about
// 10 ms for a program without libtensorflow, 0.2 to 1 s for one that links
// it (its loading dominates); then the walk, a few milliseconds for a Keras
// file. Each version of a file (path, inode, size, modification time) is
// checked once per process.
// Environment:
//   - BBD_H5_PREFLIGHT=off skips the child (trusted files only: a malformed
//     file can then crash the program);
//   - BBD_H5_PREFLIGHT_TIMEOUT (a Go duration, default 2m) bounds the child.
//
// Linux only (the project's platform): the child is found through
// /proc/self/exe, falling back on os.Executable.
package h5

// #include <hdf5.h>
// #include <stdlib.h>
// static void bbd_h5_silence(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
// static int bbd_h5_attr_exists(hid_t obj, const char *name) { return H5Aexists(obj, name); }
import "C"

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"unsafe"

	"gonum.org/v1/hdf5"
)

var silence sync.Once

// Silence stops the HDF5 library from printing error stacks (errors are still
// returned). Open calls it. In a thread-safe HDF5 build (Debian's) the setting
// is per OS thread, so code here also avoids expected failures altogether:
// test for objects with LinkExists and AttributeExists before opening them.
func Silence() { silence.Do(func() { C.bbd_h5_silence() }) }

// AttributeExists reports whether the object (file, group or dataset) has the
// named attribute, without the error the library prints when opening a
// missing one.
func AttributeExists(obj interface{ ID() int64 }, name string) bool {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	return C.bbd_h5_attr_exists(C.hid_t(obj.ID()), cname) > 0
}

// signature is the HDF5 format signature, found at offset 0 or at a user-block
// offset 512, 1024, 2048, ...
var signature = []byte("\x89HDF\r\n\x1a\n")

// ErrDirectory is wrapped by IsHDF5's error when path is a directory.
var ErrDirectory = errors.New("expected an HDF5 file, found a directory")

// IsHDF5 reports whether path holds the HDF5 signature, without the C library.
// Errors opening or reading path are the os package's, unwrapped.
func IsHDF5(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	if st.IsDir() {
		return false, fmt.Errorf("%s: %w", path, ErrDirectory)
	}
	buf := make([]byte, len(signature))
	for off := int64(0); off+int64(len(buf)) <= st.Size(); off = nextOffset(off) {
		if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
			return false, err
		}
		if bytes.Equal(buf, signature) {
			return true, nil
		}
	}
	return false, nil
}

func nextOffset(off int64) int64 {
	if off == 0 {
		return 512
	}
	return off * 2
}

// Open opens an existing HDF5 file read-only, with one clear error for a
// missing file or a file that is not HDF5. The file is read in a child
// process first (see Preflight): a file that crashes libhdf5 there is a
// *CrashError, and is not opened here.
func Open(path string) (*hdf5.File, error) {
	Silence()
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
	if err := Preflight(path); err != nil {
		return nil, err
	}
	f, err := hdf5.OpenFile(path, hdf5.F_ACC_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("%s: opening HDF5 file: %w", path, err)
	}
	return f, nil
}
