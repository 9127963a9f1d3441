package h5

// #include <hdf5.h>
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"gonum.org/v1/hdf5"
)

// The operations a File asks of the process that reads the file (the child,
// or this process with $BBD_H5_CHILD=off). Each is small and bounded: the
// parent checks a declared size before it asks for the values.
const (
	opOpen    = "open"    // Path: the file; answers File
	opClose   = "close"   // answers Recycle
	opLink    = "link"    // Path: a link; answers Kind
	opHard    = "hard"    // Path: a chain of hard links; answers OK
	opMembers = "members" // Path: a group; answers Names, Err
	opWalk    = "walk"    // Path: a group; answers Names (datasets so far), Err
	opAttr    = "attr"    // Path: an object, Name: attribute, Max: bytes; answers OK (exists), Str, Err
	opDataset = "dataset" // Path: a dataset; answers its header, Err
	opFloat32 = "float32" // Path, Count: values; answers Data (native float32), Err
	opRows    = "rows"    // Path, Start, Count: rows; answers Data (native float64), Err
)

// maxAnswerBytes bounds the values of one answer (opFloat32 reads a whole
// dataset; opRows is asked for about a chunk at a time).
const maxAnswerBytes = 1 << 30

// request is one operation on an open file.
type request struct {
	Op           string
	File         int64 // the handle opOpen gave
	Path         string
	Name         string
	Max          int
	Start, Count int
	into         []byte // where the answer's values go if they fit (not sent)
}

// describe says what libhdf5 reads for r, for a CrashError's Stage.
func (r *request) describe() string {
	switch r.Op {
	case opOpen:
		return "the file's superblock (opening it)"
	case opClose:
		return "the file's remaining objects (closing it)"
	case opLink, opHard:
		return "its links (" + r.Path + ")"
	case opMembers, opWalk:
		return "its group structure (" + r.Path + ")"
	case opAttr:
		return fmt.Sprintf("attribute %q of %s", r.Name, r.Path)
	case opDataset:
		return "the header of dataset " + r.Path
	case opRows:
		return fmt.Sprintf("rows [%d, %d) of dataset %s", r.Start, r.Start+r.Count, r.Path)
	}
	return "the values of dataset " + r.Path
}

// response is the answer to a request. Data (the values read) travels after
// the encoded response, DataLen bytes.
type response struct {
	Err     string // the operation's error; "" if none
	File    int64
	Kind    LinkKind
	OK      bool
	Names   []string
	Str     string
	Header  DatasetHeader
	DataLen int
	Recycle bool  // the reader asks to be replaced (libhdf5 kept objects open)
	Memory  int64 // if not 0, libhdf5 took this much memory: the answer is void
	data    []byte
}

// DatasetHeader is what a dataset's header says, read before its values.
type DatasetHeader struct {
	Dims    []uint // nil for a scalar
	DimsErr string // why Dims could not be read, if so
	Type    string // TypeName
	Float   bool   // IsFloat
	Numeric bool   // IsNumeric
}

// server carries out requests on the files it opened: in the child, or in
// this process when the child is off.
type server struct {
	files map[int64]*hdf5.File
	next  int64
	base  C.ssize_t // objects open in libhdf5 with no file open
}

func newServer() *server {
	Silence()
	return &server{files: map[int64]*hdf5.File{}, base: openObjects()}
}

func openObjects() C.ssize_t { return C.H5Fget_obj_count(C.H5F_OBJ_ALL, C.H5F_OBJ_ALL) }

func (s *server) do(r *request) *response {
	a := &response{}
	if r.Op == opOpen {
		f, err := hdf5.OpenFile(r.Path, hdf5.F_ACC_RDONLY)
		if err != nil {
			a.Err = err.Error()
			return a
		}
		s.next++
		s.files[s.next] = f
		a.File = s.next
		return a
	}
	f := s.files[r.File]
	if f == nil {
		a.Err = "the file is not open"
		return a
	}
	var err error
	switch r.Op {
	case opClose:
		err = f.Close()
		delete(s.files, r.File)
		a.Recycle = len(s.files) == 0 && openObjects() != s.base
	case opLink:
		a.Kind = Link(f, r.Path)
	case opHard:
		a.OK = HardLinkExists(f, r.Path)
	case opMembers:
		a.Names, err = Members(f, r.Path)
	case opWalk:
		err = Walk(f, r.Path, func(ds string) error { a.Names = append(a.Names, ds); return nil })
	case opAttr:
		a.OK, a.Str, err = attribute(f, r.Path, r.Name, r.Max)
	case opDataset:
		a.Header, err = header(f, r.Path)
	case opFloat32:
		a.data, err = readFloat32(f, r.Path, r.Count)
	case opRows:
		a.data, err = readRows(f, r.Path, r.Start, r.Count)
	default:
		err = fmt.Errorf("unknown operation %q", r.Op)
	}
	if err != nil {
		a.Err = err.Error()
	}
	a.DataLen = len(a.data)
	return a
}

// attribute reads the string attribute name of the object at p, if it has
// one.
func attribute(f *hdf5.File, p, name string, max int) (exists bool, value string, err error) {
	var obj interface {
		ID() int64
		Close() error
	}
	_, kind, err := objectInfo(f, p)
	if err != nil {
		return false, "", err
	}
	switch kind {
	case 0:
		g, err := f.OpenGroup(p)
		if err != nil {
			return false, "", fmt.Errorf("%s: cannot open group: %w", p, err)
		}
		obj = g
	case 1:
		ds, err := f.OpenDataset(p)
		if err != nil {
			return false, "", fmt.Errorf("%s: cannot open dataset: %w", p, err)
		}
		obj = ds
	default:
		return false, "", fmt.Errorf("%s: expected a group or a dataset, found another object", p)
	}
	defer obj.Close()
	if !AttributeExists(obj, name) {
		return false, "", nil
	}
	value, err = ReadStringAttribute(obj, name, max)
	return true, value, err
}

func header(f *hdf5.File, p string) (DatasetHeader, error) {
	ds, err := f.OpenDataset(p)
	if err != nil {
		return DatasetHeader{}, err
	}
	defer ds.Close()
	h := DatasetHeader{Type: TypeName(ds), Float: IsFloat(ds), Numeric: IsNumeric(ds)}
	if h.Dims, err = Dims(ds); err != nil {
		h.DimsErr = err.Error()
	}
	return h, nil
}

func readFloat32(f *hdf5.File, p string, n int) ([]byte, error) {
	if n < 0 || n > maxAnswerBytes/4 {
		return nil, fmt.Errorf("%d values asked for, expected at most %d", n, maxAnswerBytes/4)
	}
	ds, err := f.OpenDataset(p)
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	v := make([]float32, n)
	if err := ReadFloat32(ds, nil, v); err != nil {
		return nil, err
	}
	return bytesOf(v), nil
}

// readRows reads rows [start, start+count) in one selection.
func readRows(f *hdf5.File, p string, start, count int) ([]byte, error) {
	ds, err := f.OpenDataset(p)
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	dims, err := Dims(ds)
	if err != nil {
		return nil, err
	}
	if len(dims) == 0 {
		return nil, errors.New("is a scalar, expected an array")
	}
	if start < 0 || count < 0 || uint64(start)+uint64(count) > uint64(dims[0]) {
		return nil, fmt.Errorf("rows [%d, %d) asked for, the dataset has %d", start, start+count, dims[0])
	}
	rowLen, ok := Count(dims[1:], maxAnswerBytes/8)
	if !ok || uint64(count)*rowLen > maxAnswerBytes/8 {
		return nil, fmt.Errorf("rows [%d, %d) of %d values each are more than %d bytes", start, start+count, rowLen, maxAnswerBytes)
	}
	var v []float64 // one chunk of all the rows: ReadRows's own buffer
	err = ReadRows(ds, dims, start, count, int(uint64(count)*rowLen), func(_ int, rows []float64) error { v = rows; return nil })
	if err != nil {
		return nil, err
	}
	return bytesOf(v), nil
}

// bytesOf views a slice of numbers as its bytes (native order: the child is
// this program).
func bytesOf[T float32 | float64](v []T) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*int(unsafe.Sizeof(v[0])))
}

// valuesOf views b as numbers (b comes from make: Go aligns it for them).
func valuesOf[T float32 | float64](b []byte) []T {
	var zero T
	n := len(b) / int(unsafe.Sizeof(zero))
	if n == 0 {
		return nil
	}
	if uintptr(unsafe.Pointer(&b[0]))%unsafe.Alignof(zero) != 0 {
		v := make([]T, n)
		copy(bytesOf(v), b)
		return v
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), n)
}
