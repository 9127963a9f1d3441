package h5

// #include <hdf5.h>
// #include <stdlib.h>
// #include <string.h>
//
// // Range overflows (a float64 beyond float32's range, say) abort the read
// // instead of being clamped or turned into infinities silently.
// static H5T_conv_ret_t bbd_h5_conv_abort(H5T_conv_except_t except, hid_t src, hid_t dst, void *sbuf, void *dbuf, void *data) {
//     if (except == H5T_CONV_EXCEPT_RANGE_HI || except == H5T_CONV_EXCEPT_RANGE_LOW) return H5T_CONV_ABORT;
//     return H5T_CONV_UNHANDLED;
// }
//
// // bbd_h5_read reads the selection fspace (H5S_ALL: everything) of dataset ds
// // into buf, n elements of the native type chosen by kind (0 float, 1 double),
// // converted by HDF5 from whatever type the file stores.
// // bbd_h5_check_layout returns 0 when the dataset's storage agrees with its
// // header, -2 when a compact dataset's stored buffer does not hold exactly
// // its elements (HDF5 1.10's H5Dread then reads past it and can crash; newer
// // HDF5 refuses such a file on open), -1 on an HDF5 error.
// static int bbd_h5_check_layout(hid_t ds) {
//     int ret = -1;
//     hid_t dcpl = H5Dget_create_plist(ds);
//     if (dcpl < 0) return -1;
//     H5D_layout_t layout = H5Pget_layout(dcpl);
//     H5Pclose(dcpl);
//     if (layout < 0) return -1;
//     if (layout != H5D_COMPACT) return 0;
//     hid_t space = H5Dget_space(ds);
//     hid_t type = H5Dget_type(ds);
//     if (space >= 0 && type >= 0) {
//         hssize_t npoints = H5Sget_simple_extent_npoints(space);
//         size_t size = H5Tget_size(type);
//         hsize_t stored = H5Dget_storage_size(ds);
//         if (npoints >= 0 && size > 0) ret = stored == (hsize_t)npoints * size ? 0 : -2;
//     }
//     if (space >= 0) H5Sclose(space);
//     if (type >= 0) H5Tclose(type);
//     return ret;
// }
//
// // bbd_h5_number_class returns 0 when ds holds floating-point numbers, 1
// // integers, of at most 16 bytes each (a malformed file can declare
// // gigabytes, which HDF5 1.10 allocates for each value converted), -1
// // otherwise.
// static int bbd_h5_number_class(hid_t ds) {
//     int ret = -1;
//     hid_t t = H5Dget_type(ds);
//     if (t < 0) return -1;
//     size_t size = H5Tget_size(t);
//     H5T_class_t c = H5Tget_class(t);
//     if (size > 0 && size <= 16) ret = c == H5T_FLOAT ? 0 : c == H5T_INTEGER ? 1 : -1;
//     H5Tclose(t);
//     return ret;
// }
//
// static herr_t bbd_h5_read(hid_t ds, int kind, hid_t fspace, hsize_t n, void *buf) {
//     if (bbd_h5_number_class(ds) < 0) return -3;
//     int layout = bbd_h5_check_layout(ds);
//     if (layout < 0) return layout;
//     hid_t mtype = kind == 1 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
//     hsize_t dims[1];
//     dims[0] = n;
//     hid_t mspace = H5Screate_simple(1, dims, NULL);
//     if (mspace < 0) return -1;
//     hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
//     if (dxpl < 0) { H5Sclose(mspace); return -1; }
//     herr_t err = H5Pset_type_conv_cb(dxpl, bbd_h5_conv_abort, NULL);
//     if (err >= 0) err = H5Dread(ds, mtype, mspace, fspace, dxpl, buf);
//     H5Pclose(dxpl);
//     H5Sclose(mspace);
//     return err;
// }
//
// // bbd_h5_read_string reads a scalar string attribute (fixed or variable
// // length) of at most max bytes into a malloc'ed, NUL-terminated *out.
// // It returns 0, or a negative code: -1 HDF5 error, -2 not a string, -3 not
// // one value, -4 too long.
// static int bbd_h5_read_string(hid_t obj, const char *name, size_t max, char **out, size_t *len) {
//     int ret = -1;
//     hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
//     if (attr < 0) return -1;
//     hid_t ftype = H5Aget_type(attr);
//     hid_t space = H5Aget_space(attr);
//     hid_t mtype = -1;
//     *out = NULL;
//     if (ftype < 0 || space < 0) goto done;
//     if (H5Tget_class(ftype) != H5T_STRING) { ret = -2; goto done; }
//     if (H5Sget_simple_extent_npoints(space) != 1) { ret = -3; goto done; }
//     htri_t vlen = H5Tis_variable_str(ftype);
//     if (vlen < 0) goto done;
//     mtype = H5Tcopy(H5T_C_S1);
//     if (mtype < 0) goto done;
//     H5T_cset_t cset = H5Tget_cset(ftype);
//     if (cset >= 0 && H5Tset_cset(mtype, cset) < 0) goto done;
//     if (vlen) {
//         char *s = NULL;
//         if (H5Tset_size(mtype, H5T_VARIABLE) < 0) goto done;
//         if (H5Aread(attr, mtype, &s) < 0) goto done;
//         if (s == NULL) { *out = calloc(1, 1); *len = 0; ret = *out ? 0 : -1; goto done; }
//         size_t n = strnlen(s, max + 1);
//         if (n > max) { H5free_memory(s); ret = -4; goto done; }
//         *out = malloc(n + 1);
//         if (*out) { memcpy(*out, s, n); (*out)[n] = 0; *len = n; ret = 0; }
//         H5free_memory(s);
//     } else {
//         size_t size = H5Tget_size(ftype);
//         if (size == 0) goto done;
//         if (size > max) { ret = -4; goto done; }
//         // The stored value must be exactly one string of that size (HDF5
//         // 1.10 reads past a shorter one and can crash).
//         if (H5Aget_storage_size(attr) != size) { ret = -5; goto done; }
//         // NULLPAD in memory: all size bytes are kept (a NULLTERM memory
//         // type would give the last one to the terminator); calloc's extra
//         // byte ends the string.
//         if (H5Tset_size(mtype, size) < 0 || H5Tset_strpad(mtype, H5T_STR_NULLPAD) < 0) goto done;
//         *out = calloc(size + 1, 1);
//         if (*out == NULL) goto done;
//         if (H5Aread(attr, mtype, *out) < 0) { free(*out); *out = NULL; goto done; }
//         *len = strnlen(*out, size);
//         ret = 0;
//     }
// done:
//     if (mtype >= 0) H5Tclose(mtype);
//     if (space >= 0) H5Sclose(space);
//     if (ftype >= 0) H5Tclose(ftype);
//     H5Aclose(attr);
//     return ret;
// }
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"gonum.org/v1/hdf5"
)

// Dims returns the dimensions of a dataset; a scalar dataset has none.
func Dims(ds *hdf5.Dataset) ([]uint, error) {
	sp := ds.Space()
	if sp == nil {
		return nil, errors.New("cannot get its dataspace")
	}
	defer sp.Close()
	if sp.SimpleExtentNDims() == 0 {
		return nil, nil
	}
	dims, _, err := sp.SimpleExtentDims()
	return dims, err
}

// Count multiplies dims, reporting false when the product exceeds limit (or
// overflows), so that a declared size is checked before it is allocated.
func Count(dims []uint, limit uint64) (uint64, bool) {
	n := uint64(1)
	for _, d := range dims {
		if d == 0 {
			return 0, true
		}
		if uint64(d) > limit/n {
			return 0, false
		}
		n *= uint64(d)
	}
	return n, n <= limit
}

// ReadFloat32 reads the selection fspace of ds (nil: the whole dataset) into
// dst, converted by HDF5 to native float32 from the type the file stores
// (float16, float64, big-endian...). The selection must hold exactly len(dst)
// elements. A value outside float32's range is an error.
func ReadFloat32(ds *hdf5.Dataset, fspace *hdf5.Dataspace, dst []float32) error {
	if len(dst) == 0 {
		return checkCount(ds, fspace, 0)
	}
	return read(ds, 0, fspace, len(dst), unsafe.Pointer(&dst[0]))
}

// ReadFloat64 is ReadFloat32 for native float64 (integers are converted too).
func ReadFloat64(ds *hdf5.Dataset, fspace *hdf5.Dataspace, dst []float64) error {
	if len(dst) == 0 {
		return checkCount(ds, fspace, 0)
	}
	return read(ds, 1, fspace, len(dst), unsafe.Pointer(&dst[0]))
}

func read(ds *hdf5.Dataset, kind C.int, fspace *hdf5.Dataspace, n int, buf unsafe.Pointer) error {
	if err := checkCount(ds, fspace, n); err != nil {
		return err
	}
	fs := C.hid_t(C.H5S_ALL)
	if fspace != nil {
		fs = C.hid_t(fspace.ID())
	}
	switch r := C.bbd_h5_read(C.hid_t(ds.ID()), kind, fs, C.hsize_t(n), buf); {
	case r == -2:
		return errors.New("its compact storage does not hold the number of values its header declares (a malformed file)")
	case r == -3:
		return fmt.Errorf("its element type is %s, expected integers or floating-point numbers of at most %d bytes", TypeName(ds), maxNumberBytes)
	case r < 0:
		return errors.New("HDF5 could not read or convert the values (unreadable data, or values out of range)")
	}
	return nil
}

// checkCount checks that the selection (or the whole dataset) has n elements.
func checkCount(ds *hdf5.Dataset, fspace *hdf5.Dataspace, n int) error {
	var got C.hssize_t
	if fspace != nil {
		got = C.H5Sget_select_npoints(C.hid_t(fspace.ID()))
	} else {
		sp := ds.Space()
		if sp == nil {
			return errors.New("cannot get its dataspace")
		}
		got = C.H5Sget_simple_extent_npoints(C.hid_t(sp.ID()))
		sp.Close()
	}
	if got < 0 || int64(got) != int64(n) {
		return fmt.Errorf("expected %d values, the selection has %d", n, int64(got))
	}
	return nil
}

// ReadStringAttribute reads the named attribute of obj (a file, group or
// dataset) as one string of at most max bytes, fixed or variable length. Any
// other type or shape is an error: the attribute is checked before anything
// is allocated for it.
func ReadStringAttribute(obj interface{ ID() int64 }, name string, max int) (string, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var out *C.char
	var n C.size_t
	switch C.bbd_h5_read_string(C.hid_t(obj.ID()), cname, C.size_t(max), &out, &n) {
	case 0:
		defer C.free(unsafe.Pointer(out))
		return C.GoStringN(out, C.int(n)), nil
	case -2:
		return "", fmt.Errorf("attribute %q: expected a string, found another type", name)
	case -3:
		return "", fmt.Errorf("attribute %q: expected one string, found an array or an empty value", name)
	case -4:
		return "", fmt.Errorf("attribute %q: expected at most %d bytes, found more", name, max)
	case -5:
		return "", fmt.Errorf("attribute %q: its stored value does not hold the string its type declares (a malformed file)", name)
	}
	return "", fmt.Errorf("attribute %q: unreadable", name)
}

// TypeName describes the element type of a dataset: "float32", "float16",
// "float64 big-endian", "uint8", "int16", "float of 3640655876 bytes"..., or
// the class for other types.
func TypeName(ds *hdf5.Dataset) string {
	t := C.H5Dget_type(C.hid_t(ds.ID()))
	if t < 0 {
		return "unknown type"
	}
	defer C.H5Tclose(t)
	bytes := uint64(C.H5Tget_size(t))
	size := bytes * 8
	class := C.H5Tget_class(t)
	if bytes > maxNumberBytes && class == C.H5T_FLOAT {
		return fmt.Sprintf("float of %d bytes", bytes)
	} else if bytes > maxNumberBytes && class == C.H5T_INTEGER {
		return fmt.Sprintf("integer of %d bytes", bytes)
	}
	var s string
	switch class {
	case C.H5T_FLOAT:
		s = fmt.Sprintf("float%d", size)
	case C.H5T_INTEGER:
		s = fmt.Sprintf("int%d", size)
		if C.H5Tget_sign(t) == C.H5T_SGN_NONE {
			s = "u" + s
		}
	case C.H5T_STRING:
		return "string"
	case C.H5T_COMPOUND:
		return "compound"
	case C.H5T_ENUM:
		return "enum"
	case C.H5T_ARRAY:
		return "array"
	case C.H5T_VLEN:
		return "variable-length"
	case C.H5T_REFERENCE:
		return "reference"
	case C.H5T_OPAQUE:
		return "opaque"
	case C.H5T_BITFIELD:
		return "bitfield"
	case C.H5T_TIME:
		return "time"
	default:
		return "unknown type"
	}
	if size > 8 && C.H5Tget_order(t) == C.H5T_ORDER_BE {
		s += " big-endian"
	}
	return s
}

// maxNumberBytes is the largest integer or float type read (a long double).
const maxNumberBytes = 16

// IsNumeric reports whether a dataset holds integers or floating-point
// numbers (of any byte order and of at most 16 bytes: ReadFloat32 and
// ReadFloat64 convert).
func IsNumeric(ds *hdf5.Dataset) bool { return C.bbd_h5_number_class(C.hid_t(ds.ID())) >= 0 }

// IsFloat reports whether a dataset holds floating-point numbers (of at most
// 16 bytes).
func IsFloat(ds *hdf5.Dataset) bool { return C.bbd_h5_number_class(C.hid_t(ds.ID())) == 0 }

// ReadRows reads rows [start, start+count) of dataset ds of the given dims
// as float64 (HDF5 converts from any integer or float type and byte order)
// and hands them to fn in chunks of whole rows, about chunkValues values at a
// time (at least one row): fn(first row, values).
func ReadRows(ds *hdf5.Dataset, dims []uint, start, count, chunkValues int, fn func(row int, v []float64) error) error {
	rowLen := 1
	for _, d := range dims[1:] {
		rowLen *= int(d)
	}
	if count == 0 || rowLen == 0 {
		return nil
	}
	chunk := max(1, chunkValues/rowLen)
	buf := make([]float64, min(chunk, count)*rowLen)
	fspace := ds.Space()
	if fspace == nil {
		return errors.New("cannot get the dataset's dataspace")
	}
	defer fspace.Close()
	offset := make([]uint, len(dims))
	cnt := append([]uint(nil), dims...)
	for r := start; r < start+count; r += chunk {
		k := min(chunk, start+count-r)
		offset[0], cnt[0] = uint(r), uint(k)
		if err := fspace.SelectHyperslab(offset, nil, cnt, nil); err != nil {
			return fmt.Errorf("selecting rows [%d, %d): %v", r, r+k, err)
		}
		v := buf[:k*rowLen]
		if err := ReadFloat64(ds, fspace, v); err != nil {
			return fmt.Errorf("reading rows [%d, %d): %v", r, r+k, err)
		}
		if err := fn(r, v); err != nil {
			return err
		}
	}
	return nil
}
