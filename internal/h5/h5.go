// Package h5 reads HDF5 files for bbd's readers, treating them as hostile:
// it checks that a file exists and is HDF5 before the C library sees it,
// has libhdf5 read it in a child process (see below), and turns off the
// library's habit of printing its error stack to stderr, so that a bad input
// gives one clear Go error and nothing else.
//
// # Files that crash libhdf5
//
// Debian 12's HDF5 1.10 reads some malformed files past its buffers and dies
// with SIGSEGV (a corrupt group B-tree in H5Gget_info, a corrupt global-heap
// string in H5HG_read: see the seeds of data's FuzzOpenH5 and tfmodels'
// FuzzReadKerasH5), loops, or allocates gigabytes; Go cannot recover from a
// fault in C, and one such file can also corrupt the library's memory so
// that a later, readable file crashes it (FuzzReadKerasH5 found one). So
// libhdf5 never reads an untrusted file in bbd's process: [OpenFile] gives a
// [File] whose every step (opening the file, listing a group, following a
// link, reading a dataset's header, an attribute, or a chunk of values) is
// carried out by a child process and its answer copied back. The child is
// the program re-executed (/proc/self/exe, the same environment plus
// BBD_H5_CHILD_SERVE=1); this package's init, which runs before main, the
// tests or a notebook's code (so before any TensorFlow work; libtensorflow
// is still loaded, its start-up lines going to the parent's capture), serves
// the requests on its stdin and answers on its stdout (what the program
// prints there is moved to stderr). One child serves every File of a
// process, one step at a time.
//
// A child that dies on a step, does not finish it within the timeout, or
// sees libhdf5 take more than 2 GiB of memory for it gives a *[CrashError]
// (errors.Is [ErrCrashed]) with one message naming the file and the step:
//
//	f.h5: expected a readable HDF5 file, found one that crashed libhdf5 (SIGSEGV) reading its group structure (/): the file is malformed
//
// A child that dies after reading other files is replaced, and the new one
// opens the file again (checking that it is the same version: device, inode,
// size, modification time) and repeats the step; its verdict stands (so what
// a previous file did to the child's libhdf5 cannot get a readable file
// refused). Files open in a child that ended are opened again in the next
// one when next used. A child is also replaced after 256 files and when
// libhdf5 kept objects of a closed file open. It closes the descriptors it
// inherited by accident (without close-on-exec), and stops itself shortly
// after the timeout should its parent be gone.
//
// Costs: starting the child, once per process (and after each crash): about
// 10 ms for a program without libtensorflow, 0.2 to 1 s for one that links
// it (its loading dominates); then a pipe round trip per step (tens of
// microseconds) and a copy of the values read (a Keras file of 600,000
// weights: a few milliseconds).
//
// Environment:
//   - BBD_H5_CHILD=off reads files in this process (trusted files only: a
//     malformed file can then crash the program);
//   - BBD_H5_CHILD_TIMEOUT (a Go duration, default 2m) bounds each step.
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
