package h5

// #include <hdf5.h>
// #include <limits.h>
//
// // bbd_h5_num_attrs returns the number of attributes of obj, -1 on error.
// static int bbd_h5_num_attrs(hid_t obj) {
// #if H5_VERSION_GE(1, 12, 0)
//     H5O_info2_t info;
//     if (H5Oget_info3(obj, &info, H5O_INFO_NUM_ATTRS) < 0) return -1;
// #else
//     H5O_info_t info;
//     if (H5Oget_info2(obj, &info, H5O_INFO_NUM_ATTRS) < 0) return -1;
// #endif
//     return info.num_attrs > INT_MAX ? INT_MAX : (int)info.num_attrs;
// }
//
// // bbd_h5_attr_name writes the name of attribute idx of obj to buf (n
// // bytes, truncated) and returns its length, -1 on error.
// static long bbd_h5_attr_name(hid_t obj, hsize_t idx, char *buf, size_t n) {
//     return (long)H5Aget_name_by_idx(obj, ".", H5_INDEX_NAME, H5_ITER_INC, idx, buf, n, H5P_DEFAULT);
// }
//
// // bbd_h5_attr_is_string returns 1 when the attribute name of obj is a
// // string of one value, 0 otherwise, -1 on error.
// static int bbd_h5_attr_is_string(hid_t obj, const char *name) {
//     int ret = -1;
//     hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
//     if (attr < 0) return -1;
//     hid_t type = H5Aget_type(attr);
//     hid_t space = H5Aget_space(attr);
//     if (type >= 0 && space >= 0) ret = H5Tget_class(type) == H5T_STRING && H5Sget_simple_extent_npoints(space) == 1;
//     if (space >= 0) H5Sclose(space);
//     if (type >= 0) H5Tclose(type);
//     H5Aclose(attr);
//     return ret;
// }
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
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
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
)

// runChild is the child process: it walks the file and prints what it reads
// before reading it, then "done". A crash ends it before "done"; an error of
// the walk does not (the parent's own read reports errors).
func runChild(file string) int {
	runtime.LockOSThread() // HDF5's error-printing setting is per thread
	// The parent stops the child after the timeout; should the parent be
	// gone, the child stops itself a little later (a file can make libhdf5
	// loop).
	if d, err := preflightTimeout(); err == nil {
		time.AfterFunc(d+d/10, func() { os.Exit(3) })
	}
	Silence()
	c := &child{out: os.Stdout, seen: map[objectKey]bool{}}
	c.stage("the file's superblock (opening it)")
	if f, err := hdf5.OpenFile(file, hdf5.F_ACC_RDONLY); err == nil {
		c.f = f
		if k, kind, err := objectInfo(f, "/"); err == nil && kind == 0 {
			c.seen[k] = true
			c.group("/", 0)
		}
		f.Close()
	}
	fmt.Fprintln(c.out, lineDone)
	return 0
}

type child struct {
	f       *hdf5.File
	out     io.Writer
	seen    map[objectKey]bool
	members int
	values  uint64 // values read in full so far
}

func (c *child) stage(format string, args ...any) {
	fmt.Fprintf(c.out, lineStage+format+"\n", args...)
}

// group visits group p like Walk, but goes on past errors (the parent may
// read any part of the file), and reads every object's attributes.
func (c *child) group(p string, depth int) {
	c.stage("its group structure (%s)", p)
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
		c.stage("its links (%s)", full)
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

// attributes reads the names of obj's attributes and every string of one
// value (as ReadStringAttribute does, e.g. a Keras model_config).
func (c *child) attributes(obj interface{ ID() int64 }, p string) {
	c.stage("the attributes of %s", p)
	n := int(C.bbd_h5_num_attrs(C.hid_t(obj.ID())))
	AttributeExists(obj, "model_config")
	var buf [1024]C.char
	for i := 0; i < min(n, childAttrs); i++ {
		l := C.bbd_h5_attr_name(C.hid_t(obj.ID()), C.hsize_t(i), &buf[0], C.size_t(len(buf)))
		if l < 0 || int(l) >= len(buf) {
			continue
		}
		name := C.GoStringN(&buf[0], C.int(l))
		c.stage("attribute %q of %s", name, p)
		if C.bbd_h5_attr_is_string(C.hid_t(obj.ID()), &buf[0]) == 1 {
			_, _ = ReadStringAttribute(obj, name, childStringBytes)
		}
	}
}

// dataset reads the header of dataset p as the readers do (shape, type,
// storage), then its values: all of them within the budgets, else the first
// and last rows and the chunk index.
func (c *child) dataset(p string) {
	c.stage("the header of dataset %s", p)
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
	c.stage("the values of dataset %s", p)
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
	c.stage("the chunk index of dataset %s", p)
	C.bbd_h5_chunks(C.hid_t(ds.ID()), childChunks)
}

func discard(int, []float64) error { return nil }
