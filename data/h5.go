package data

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"gonum.org/v1/hdf5"

	"github.com/bbd-workbench/bbd/internal/h5"
)

// h5mu serialises this package's calls into libhdf5: gonum/hdf5 handles are
// not safe for concurrent use, whatever the library's own build (Debian's is
// thread-safe).
var h5mu sync.Mutex

// IsHDF5 reports whether the file at path starts with the HDF5 signature (at
// offset 0, or at 512, 1024, 2048, ... when the file has a user block). It
// returns an error naming the path when the file cannot be read.
func IsHDF5(path string) (bool, error) {
	ok, err := h5.IsHDF5(path)
	switch {
	case errors.Is(err, h5.ErrDirectory):
		return false, inputErr(path, ErrArgument, "is a directory, expected an HDF5 file")
	case err != nil:
		return false, openErr(path, err)
	}
	return ok, nil
}

func openErr(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is already in the message
	}
	return wrapErr(path, nil, err, "cannot read")
}

// numKind is the storage type of an HDF5 dataset, an index into numKinds.
type numKind int

// numKinds lists the supported element types in the order datasetKind tries
// them: the name reported by DataType, the HDF5 type and its reader.
var numKinds = [...]struct {
	name string
	t    *hdf5.Datatype
	read func(ds *hdf5.Dataset, dims []uint, start, count int) ([]float64, error)
}{
	{"float32", hdf5.T_IEEE_F32LE, readTyped[float32]},
	{"float64", hdf5.T_IEEE_F64LE, readTyped[float64]},
	{"uint8", hdf5.T_STD_U8LE, readTyped[uint8]},
	{"int8", hdf5.T_STD_I8LE, readTyped[int8]},
	{"uint16", hdf5.T_STD_U16LE, readTyped[uint16]},
	{"int16", hdf5.T_STD_I16LE, readTyped[int16]},
	{"uint32", hdf5.T_STD_U32LE, readTyped[uint32]},
	{"int32", hdf5.T_STD_I32LE, readTyped[int32]},
	{"uint64", hdf5.T_STD_U64LE, readTyped[uint64]},
	{"int64", hdf5.T_STD_I64LE, readTyped[int64]},
}

func datasetKind(ds *hdf5.Dataset) (numKind, string, error) {
	dt, err := ds.Datatype()
	if err != nil {
		return 0, "", err
	}
	defer dt.Close()
	for k, c := range numKinds {
		if dt.Equal(c.t) {
			return numKind(k), c.name, nil
		}
	}
	cls := map[hdf5.TypeClass]string{hdf5.T_INTEGER: "integer", hdf5.T_FLOAT: "float", hdf5.T_STRING: "string", hdf5.T_COMPOUND: "compound"}[dt.Class()]
	if cls == "" {
		cls = fmt.Sprintf("class %d", dt.Class())
	}
	return 0, "", fmt.Errorf("unsupported element type (%s, %d bytes; expected little-endian float32/float64 or an integer type)", cls, dt.Size())
}

type number interface {
	~float32 | ~float64 | ~uint8 | ~int8 | ~uint16 | ~int16 | ~uint32 | ~int32 | ~uint64 | ~int64
}

// readHyperslab reads count rows starting at start from a dataset of the
// given kind, converted to float64.
func readHyperslab(ds *hdf5.Dataset, kind numKind, dims []uint, start, count int) ([]float64, error) {
	return numKinds[kind].read(ds, dims, start, count)
}

func readTyped[T number](ds *hdf5.Dataset, dims []uint, start, count int) ([]float64, error) {
	rowLen := 1
	for _, d := range dims[1:] {
		rowLen *= int(d)
	}
	buf := make([]T, count*rowLen)
	if count == 0 || rowLen == 0 {
		return make([]float64, len(buf)), nil
	}
	fspace := ds.Space()
	if fspace == nil {
		return nil, errors.New("cannot get the dataset's dataspace")
	}
	defer fspace.Close()
	offset := make([]uint, len(dims))
	cnt := append([]uint(nil), dims...)
	offset[0], cnt[0] = uint(start), uint(count)
	if err := fspace.SelectHyperslab(offset, nil, cnt, nil); err != nil {
		return nil, fmt.Errorf("selecting rows [%d, %d): %v", start, start+count, err)
	}
	mspace, err := hdf5.CreateSimpleDataspace([]uint{uint(len(buf))}, nil)
	if err != nil {
		return nil, err
	}
	defer mspace.Close()
	if err := ds.ReadSubset(&buf, mspace, fspace); err != nil {
		return nil, fmt.Errorf("reading rows [%d, %d): %v", start, start+count, err)
	}
	out := make([]float64, len(buf))
	for i, v := range buf {
		out[i] = float64(v)
	}
	return out, nil
}

// H5Reader streams a competition HDF5 file: datasets "data" [N,C,H,W]
// (C = 1 or 3, pixel values 0..255 stored as float32, float64 or an integer
// type) and "label" [N] or [N,1] (float or integer, -1 = unknown). Only the
// rows asked for are read. It is not safe for concurrent use.
type H5Reader struct {
	path              string
	f                 *hdf5.File
	data, label       *hdf5.Dataset
	dataDims          []uint
	labelDims         []uint
	dataKind          numKind
	labelKind         numKind
	n, c, h, w        int
	dataType, lblType string
}

// OpenH5 opens a competition HDF5 file for streaming. Errors name the path:
// missing file, not an HDF5 file, missing "data"/"label" datasets (listing
// the datasets found), wrong rank or shape, unsupported element type.
func OpenH5(path string) (*H5Reader, error) {
	ok, err := IsHDF5(path)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, inputErr(path, ErrNotHDF5, "not an HDF5 file (expected the signature \\x89HDF\\r\\n\\x1a\\n at the start)")
	}
	h5.Silence()
	h5mu.Lock()
	defer h5mu.Unlock()
	f, err := hdf5.OpenFile(path, hdf5.F_ACC_RDONLY)
	if err != nil {
		return nil, wrapErr(path, ErrFormat, err, "cannot open HDF5 file")
	}
	r := &H5Reader{path: path, f: f}
	if err := r.open(); err != nil {
		r.closeLocked()
		return nil, err
	}
	return r, nil
}

func (r *H5Reader) open() error {
	var names []string
	if n, err := r.f.NumObjects(); err == nil {
		for i := uint(0); i < n; i++ {
			if s, err := r.f.ObjectNameByIndex(i); err == nil {
				names = append(names, s)
			}
		}
	}
	sort.Strings(names)
	found := "none"
	if len(names) > 0 {
		found = strings.Join(names, ", ")
	}
	for _, want := range []string{"data", "label"} {
		if !r.f.LinkExists(want) {
			return inputErr(r.path, ErrFormat, "no %q dataset (expected datasets \"data\" [N,3,H,W] and \"label\" [N]; found: %s)", want, found)
		}
	}
	var err error
	if r.data, err = r.f.OpenDataset("data"); err != nil {
		return wrapErr(r.path, ErrFormat, err, "cannot open dataset \"data\" (found: %s)", found)
	}
	if r.label, err = r.f.OpenDataset("label"); err != nil {
		return wrapErr(r.path, ErrFormat, err, "cannot open dataset \"label\" (found: %s)", found)
	}
	if r.dataDims, err = datasetDims(r.data); err != nil {
		return wrapErr(r.path, ErrFormat, err, "dataset \"data\"")
	}
	if r.labelDims, err = datasetDims(r.label); err != nil {
		return wrapErr(r.path, ErrFormat, err, "dataset \"label\"")
	}
	d := r.dataDims
	if len(d) != 4 || (d[1] != 1 && d[1] != 3) || d[2] == 0 || d[3] == 0 {
		return inputErr(r.path, ErrFormat, "dataset \"data\" has shape %v, expected [N, 3, H, W] (channels first, e.g. [N, 3, 55, 47])", d)
	}
	r.n, r.c, r.h, r.w = int(d[0]), int(d[1]), int(d[2]), int(d[3])
	l := r.labelDims
	if !(len(l) == 1 || (len(l) == 2 && l[1] == 1)) || int(l[0]) != r.n {
		return inputErr(r.path, ErrFormat, "dataset \"label\" has shape %v, expected [%d] (one label per image of \"data\")", l, r.n)
	}
	if r.dataKind, r.dataType, err = datasetKind(r.data); err != nil {
		return wrapErr(r.path, ErrFormat, err, "dataset \"data\"")
	}
	if r.labelKind, r.lblType, err = datasetKind(r.label); err != nil {
		return wrapErr(r.path, ErrFormat, err, "dataset \"label\"")
	}
	return nil
}

func datasetDims(ds *hdf5.Dataset) ([]uint, error) {
	sp := ds.Space()
	if sp == nil {
		return nil, errors.New("cannot get its dataspace")
	}
	defer sp.Close()
	if sp.SimpleExtentNDims() <= 0 {
		return nil, errors.New("is a scalar, expected an array")
	}
	dims, _, err := sp.SimpleExtentDims()
	return dims, err
}

// Path returns the file's path.
func (r *H5Reader) Path() string { return r.path }

// Len returns the number of images N.
func (r *H5Reader) Len() int { return r.n }

// Shape returns [N, H, W, C] (channels-last, as ReadBatch returns them).
func (r *H5Reader) Shape() [4]int { return [4]int{r.n, r.h, r.w, r.c} }

// DataType returns the element type of the "data" dataset, e.g. "float32".
func (r *H5Reader) DataType() string { return r.dataType }

// ReadBatch reads images [start, start+n) (fewer at the end of the file is an
// error: ask for min(n, Len()-start)). Pixels are transposed to channels-last
// and rounded to the nearest integer; a NaN or a value outside [0, 255] is an
// error naming the file, the row and the position.
func (r *H5Reader) ReadBatch(start, n int) (*Images, error) {
	if r.f == nil {
		return nil, inputErr(r.path, ErrArgument, "reader is closed")
	}
	if start < 0 || n < 0 || start+n > r.n {
		return nil, inputErr(r.path, ErrArgument, "rows [%d, %d) out of range, the file has %d images", start, start+n, r.n)
	}
	h5mu.Lock()
	raw, err := readHyperslab(r.data, r.dataKind, r.dataDims, start, n)
	var rawLbl []float64
	if err == nil {
		rawLbl, err = readHyperslab(r.label, r.labelKind, r.labelDims, start, n)
	}
	h5mu.Unlock()
	if err != nil {
		return nil, wrapErr(r.path, ErrFormat, err, "cannot read")
	}
	c, h, w := r.c, r.h, r.w
	out := &Images{Pix: make([]uint8, n*h*w*c), H: h, W: w, C: c, Labels: make([]int, n)}
	plane := h * w
	for k := 0; k < n; k++ {
		src := raw[k*c*plane : (k+1)*c*plane]
		dst := out.Pix[k*c*plane : (k+1)*c*plane]
		for ch := 0; ch < c; ch++ {
			for p := 0; p < plane; p++ {
				v := src[ch*plane+p]
				if !(v >= 0 && v <= 255) { // also catches NaN
					return nil, inputErr(r.path, ErrValue, "dataset \"data\" image %d (channel %d, y %d, x %d) has value %v, expected a pixel value in [0, 255]", start+k, ch, p/w, p%w, v)
				}
				dst[p*c+ch] = uint8(math.Round(v))
			}
		}
		lv := rawLbl[k]
		if lv != math.Trunc(lv) || lv < -1 || lv > math.MaxInt32 {
			return nil, inputErr(r.path, ErrValue, "dataset \"label\" entry %d is %v, expected an integer >= -1", start+k, lv)
		}
		out.Labels[k] = int(lv)
	}
	return out, nil
}

// ReadAll reads every image.
func (r *H5Reader) ReadAll() (*Images, error) { return r.ReadBatch(0, r.n) }

// Close releases the file. It is safe to call more than once.
func (r *H5Reader) Close() error {
	h5mu.Lock()
	defer h5mu.Unlock()
	return r.closeLocked()
}

func (r *H5Reader) closeLocked() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = wrapErr(r.path, nil, err, "closing HDF5 file")
		}
	}
	if r.data != nil {
		keep(r.data.Close())
		r.data = nil
	}
	if r.label != nil {
		keep(r.label.Close())
		r.label = nil
	}
	if r.f != nil {
		keep(r.f.Close())
		r.f = nil
	}
	return first
}

// ReadH5 reads a whole competition HDF5 file (see OpenH5). For large files
// prefer OpenH5 and ReadBatch.
func ReadH5(path string) (*Images, error) {
	r, err := OpenH5(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.ReadAll()
}

// H5WriteOptions controls WriteH5.
type H5WriteOptions struct {
	// Overwrite allows replacing an existing file.
	Overwrite bool
}

// h5WriteChunk is the number of images converted to float32 at a time.
const h5WriteChunk = 512

// WriteH5 writes imgs in the competition format: "data" float32 [N,C,H,W]
// with pixel values 0..255 and "label" float32 [N] (-1 for unknown labels).
// Names are not stored. The file is written to a temporary file in the same
// directory and renamed into place, so a reader never sees half a file. An
// existing path is an ErrExists error unless opts.Overwrite is set.
func WriteH5(path string, imgs *Images, opts H5WriteOptions) (err error) {
	if err := imgs.Validate(); err != nil {
		return err
	}
	if st, err := os.Stat(path); err == nil {
		if st.IsDir() {
			return inputErr(path, ErrExists, "is a directory, expected a file path to write")
		}
		if !opts.Overwrite {
			return inputErr(path, ErrExists, "file exists (expected a new file; set Overwrite to replace it)")
		}
	}
	dir := filepath.Dir(path)
	tf, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return wrapErr(path, ErrArgument, err, "cannot create a temporary file in %s", dir)
	}
	tmp := tf.Name()
	tf.Close()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := writeH5File(tmp, imgs); err != nil {
		return wrapErr(path, ErrFormat, err, "cannot write HDF5 file")
	}
	if opts.Overwrite {
		if err := os.Rename(tmp, path); err != nil {
			return wrapErr(path, ErrArgument, err, "cannot move the temporary file into place")
		}
		return nil
	}
	// Link fails if path exists: no-clobber even against a concurrent writer.
	if lerr := os.Link(tmp, path); lerr != nil {
		if _, serr := os.Lstat(path); serr == nil {
			return inputErr(path, ErrExists, "file exists (expected a new file; set Overwrite to replace it)")
		}
		if err := os.Rename(tmp, path); err != nil { // file system without hard links
			return wrapErr(path, ErrArgument, err, "cannot move the temporary file into place")
		}
		return nil
	}
	os.Remove(tmp)
	return nil
}

func writeH5File(tmp string, imgs *Images) error {
	h5.Silence()
	h5mu.Lock()
	defer h5mu.Unlock()
	f, err := hdf5.CreateFile(tmp, hdf5.F_ACC_TRUNC)
	if err != nil {
		return err
	}
	n, c, h, w := imgs.Len(), imgs.C, imgs.H, imgs.W
	werr := func() error {
		ds, err := createFloat32Dataset(f, "data", []uint{uint(n), uint(c), uint(h), uint(w)})
		if err != nil {
			return err
		}
		defer ds.Close()
		plane := h * w
		buf := make([]float32, 0, h5WriteChunk*c*plane)
		for start := 0; start < n; start += h5WriteChunk {
			cnt := min(h5WriteChunk, n-start)
			buf = buf[:cnt*c*plane]
			for k := 0; k < cnt; k++ {
				src := imgs.Image(start + k)
				dst := buf[k*c*plane : (k+1)*c*plane]
				for p := 0; p < plane; p++ {
					for ch := 0; ch < c; ch++ {
						dst[ch*plane+p] = float32(src[p*c+ch])
					}
				}
			}
			fs := ds.Space()
			if fs == nil {
				return errors.New("cannot get the dataspace of \"data\"")
			}
			if err := fs.SelectHyperslab([]uint{uint(start), 0, 0, 0}, nil, []uint{uint(cnt), uint(c), uint(h), uint(w)}, nil); err != nil {
				fs.Close()
				return err
			}
			ms, err := hdf5.CreateSimpleDataspace([]uint{uint(len(buf))}, nil)
			if err != nil {
				fs.Close()
				return err
			}
			err = ds.WriteSubset(&buf, ms, fs)
			ms.Close()
			fs.Close()
			if err != nil {
				return fmt.Errorf("writing \"data\" rows [%d, %d): %v", start, start+cnt, err)
			}
		}
		lds, err := createFloat32Dataset(f, "label", []uint{uint(n)})
		if err != nil {
			return err
		}
		defer lds.Close()
		if n > 0 {
			lbl := make([]float32, n)
			for i := range lbl {
				lbl[i] = float32(imgs.Label(i))
			}
			if err := lds.Write(&lbl); err != nil {
				return fmt.Errorf("writing \"label\": %v", err)
			}
		}
		return nil
	}()
	cerr := f.Close()
	if werr != nil {
		return werr
	}
	return cerr
}

// createFloat32Dataset creates the float32 dataset name of shape dims in f.
func createFloat32Dataset(f *hdf5.File, name string, dims []uint) (*hdf5.Dataset, error) {
	space, err := hdf5.CreateSimpleDataspace(dims, nil)
	if err != nil {
		return nil, err
	}
	defer space.Close()
	ds, err := f.CreateDataset(name, hdf5.T_NATIVE_FLOAT, space)
	if err != nil {
		return nil, fmt.Errorf("creating dataset %q: %v", name, err)
	}
	return ds, nil
}
