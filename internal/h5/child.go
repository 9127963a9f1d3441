package h5

// #include <hdf5.h>
//
// // bbd_h5_chunks looks up the first max chunks of a chunked dataset in its
// // chunk index (0 otherwise; -1 on error).
// static int bbd_h5_chunks(hid_t ds, hsize_t max) {
// #if H5_VERSION_GE(1, 10, 5)
//     hid_t dcpl = H5Dget_create_plist(ds);
//     if (dcpl < 0) return -1;
//     H5D_layout_t layout = H5Pget_layout(dcpl);
//     H5Pclose(dcpl);
//     if (layout != H5D_CHUNKED) return 0;
//     hsize_t n = 0;
//     if (H5Dget_num_chunks(ds, H5S_ALL, &n) < 0) return -1;
//     for (hsize_t i = 0; i < n && i < max; i++) {
//         hsize_t offset[H5S_MAX_RANK];
//         unsigned mask;
//         haddr_t addr;
//         hsize_t size;
//         if (H5Dget_chunk_info(ds, H5S_ALL, i, offset, &mask, &addr, &size) < 0) return -1;
//     }
// #endif
//     return 0;
// }
import "C"

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gonum.org/v1/hdf5"
)

// Budgets of the child's walk. Within them it reads what bbd's readers read
// and more; a file beyond them is read in part (values of the first and last
// rows, the chunk index) and may still crash the in-process read.
const (
	// childFullValues is the most values of one dataset the child reads in
	// full, childTotalValues of all of them (Keras weights are read in full,
	// a large competition file in part).
	childFullValues  = 1 << 24
	childTotalValues = 1 << 26
	// childAttrs is the most attributes read per object.
	childAttrs = 1 << 12
	// childChunks is the most entries of a chunk index looked up.
	childChunks = 1 << 16
	// childStringBytes bounds a string attribute (a Keras model_config).
	childStringBytes = 16 << 20
	// childRowValues is how many values the child reads at a time.
	childRowValues = 1 << 19
	// childMemory is the most memory libhdf5 may take to read one file (its
	// peak resident memory beyond the start): a malformed file can make
	// HDF5 1.10 allocate gigabytes (a global heap of 4 GB was found).
	childMemory = 2 << 30
)

// runChild is the child process: it reads the NUL-terminated paths on in
// one after another, walks each file and prints what it reads before reading
// it, then lineDone (lineDoneRecycle if libhdf5 kept objects open). A crash
// ends it before that; an error of the walk does not (the parent's own read
// reports errors). It returns at the end of in.
func runChild(in io.Reader, out io.Writer) int {
	closeInherited()
	runtime.LockOSThread() // HDF5's error-printing setting is per thread
	Silence()
	timeout, err := preflightTimeout()
	if err != nil {
		timeout = DefaultPreflightTimeout
	}
	open := func() C.ssize_t { return C.H5Fget_obj_count(C.H5F_OBJ_ALL, C.H5F_OBJ_ALL) }
	before := open() // transient datatypes of the hdf5 package
	r := bufio.NewReader(in)
	for {
		file, err := r.ReadString(0)
		if err != nil {
			return 0
		}
		// The parent stops the child after the timeout; should the parent
		// be gone, the child stops itself a little later (a file can make
		// libhdf5 loop).
		stop := time.AfterFunc(timeout+timeout/10, func() { os.Exit(3) })
		walkFile(strings.TrimSuffix(file, "\x00"), out)
		stop.Stop()
		if open() != before {
			fmt.Fprintln(out, lineDoneRecycle)
		} else {
			fmt.Fprintln(out, lineDone)
		}
	}
}

// walkFile reads file as the readers would (see Preflight), and reports
// lineMemory if libhdf5 took more than childMemory for it.
func walkFile(file string, out io.Writer) {
	c := &child{out: out, seen: map[objectKey]bool{}, rss: resetPeakRSS()}
	defer func() {
		if c.overMemory() {
			fmt.Fprintf(out, "%s%d\n", lineMemory, c.memory)
		}
	}()
	if !c.stage("the file's superblock (opening it)") {
		return
	}
	f, err := hdf5.OpenFile(file, hdf5.F_ACC_RDONLY)
	if err != nil {
		return
	}
	defer f.Close()
	c.f = f
	if k, kind, err := objectInfo(f, "/"); err == nil && kind == 0 {
		c.seen[k] = true
		c.group("/", 0)
	}
}

type child struct {
	f       *hdf5.File
	out     io.Writer
	seen    map[objectKey]bool
	members int
	values  uint64 // values read in full so far
	rss     int64  // resident memory at the file's start
	memory  int64  // if not 0, libhdf5 took this much: the walk stopped
}

// stage reports what the child reads next, or returns false when libhdf5
// took more than childMemory for the file so far (the last stage reported
// is the culprit): the walk then stops.
func (c *child) stage(format string, args ...any) bool {
	if c.overMemory() {
		return false
	}
	fmt.Fprintf(c.out, lineStage+format+"\n", args...)
	return true
}

// overMemory reports whether the peak resident memory grew by more than
// childMemory since the file's start.
func (c *child) overMemory() bool {
	if c.memory > 0 {
		return true
	}
	if peak, ok := peakRSS(); ok && peak-c.rss > childMemory {
		c.memory = peak - c.rss
		return true
	}
	return false
}

// resetPeakRSS makes the peak resident memory the current one (Linux
// clear_refs) and returns it.
func resetPeakRSS() int64 {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	rss, _ := peakRSS()
	return rss
}

// peakRSS returns the process's peak resident memory (VmHWM) in bytes.
func peakRSS() (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

// group visits group p like Walk, but goes on past errors (the parent may
// read any part of the file), and reads every object's attributes.
func (c *child) group(p string, depth int) {
	if !c.stage("its group structure (%s)", p) {
		return
	}
	names, err := Members(c.f, p)
	if g, err := c.f.OpenGroup(p); err == nil {
		c.attributes(g, p)
		g.Close()
	}
	c.members += len(names)
	if err != nil || depth >= MaxDepth || c.members > MaxMembers {
		return
	}
	for _, name := range names {
		full := path.Join(p, name)
		if !c.stage("its links (%s)", full) {
			return
		}
		if Link(c.f, full) != HardLink {
			continue
		}
		k, kind, err := objectInfo(c.f, full)
		if err != nil || c.seen[k] {
			continue
		}
		c.seen[k] = true
		switch kind {
		case 0:
			c.group(full, depth+1)
		case 1:
			c.dataset(full)
		}
	}
}

// stringAttributes are the attributes bbd's readers read (as strings, with
// ReadStringAttribute). The child reads them on every object, and no other
// attribute: a malformed attribute no reader reads must not get a file
// refused (one that made HDF5 1.10 loop in H5HG_read was found).
var stringAttributes = []string{"model_config"}

// attributes reads obj's attributes of stringAttributes.
func (c *child) attributes(obj interface{ ID() int64 }, p string) {
	for _, name := range stringAttributes {
		if !c.stage("attribute %q of %s", name, p) {
			return
		}
		if AttributeExists(obj, name) {
			_, _ = ReadStringAttribute(obj, name, childStringBytes) // checks its type first
		}
	}
}

// dataset reads the header of dataset p as the readers do (shape, type,
// storage), then its values: all of them within the budgets, else the first
// and last rows and the chunk index.
func (c *child) dataset(p string) {
	if !c.stage("the header of dataset %s", p) {
		return
	}
	ds, err := c.f.OpenDataset(p)
	if err != nil {
		return
	}
	defer ds.Close()
	c.attributes(ds, p)
	dims, err := Dims(ds)
	TypeName(ds)
	IsFloat(ds)
	if err != nil || !IsNumeric(ds) {
		return
	}
	if !c.stage("the values of dataset %s", p) {
		return
	}
	n, ok := Count(dims, childFullValues)
	switch {
	case n == 0 && ok:
		return
	case len(dims) == 0:
		var v [1]float64
		_ = ReadFloat64(ds, nil, v[:])
		return
	case ok && c.values+n <= childTotalValues:
		c.values += n
		_ = ReadRows(ds, dims, 0, int(dims[0]), childRowValues, discard)
		return
	}
	rows := int(dims[0])
	rowValues, ok := Count(dims[1:], childRowValues)
	if !ok || rowValues == 0 {
		return // rows too long to read one: left to the parent's limits
	}
	k := max(1, childRowValues/int(rowValues))
	_ = ReadRows(ds, dims, 0, min(k, rows), childRowValues, discard)
	_ = ReadRows(ds, dims, max(0, rows-k), min(k, rows), childRowValues, discard)
	if !c.stage("the chunk index of dataset %s", p) {
		return
	}
	C.bbd_h5_chunks(C.hid_t(ds.ID()), childChunks)
}

func discard(int, []float64) error { return nil }

// closeInherited closes the descriptors beyond stdin, stdout and stderr that
// the parent left open without close-on-exec (a go test fuzzing worker's
// pipes to its coordinator, say): a child that outlives its parent must not
// hold them. Descriptors this process opened itself are close-on-exec (the
// Go runtime opens every one so) and are kept.
func closeInherited() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
		if errno == 0 && flags&syscall.FD_CLOEXEC == 0 {
			syscall.Close(fd)
		}
	}
}
