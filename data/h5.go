package data

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"gonum.org/v1/hdf5"

	"github.com/bbd-workbench/bbd/internal/h5"
	"github.com/bbd-workbench/bbd/internal/safefs"
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

// Limits on what a file may declare, checked before anything is allocated
// for it: a hostile file cannot make the readers allocate more.
const (
	// MaxImagePixels is the most pixels (H x W) of one image: 2^24, e.g.
	// 4096 x 4096.
	MaxImagePixels = 1 << 24
	// MaxReadBytes is the most bytes of pixels one read returns (a batch of
	// an HDF5 file, an IDX file, a folder of images): 4 GiB.
	MaxReadBytes = 1 << 32
)

// h5ChunkValues is how many values ReadBatch converts at a time.
const h5ChunkValues = 1 << 19

// H5Reader streams a competition HDF5 file: datasets "data" [N,C,H,W]
// (C = 1 or 3, pixel values 0..255 stored as any integer or floating-point
// type, either byte order) and "label" [N] or [N,1] (integer or float, -1 =
// unknown). Only the rows asked for are read, a bounded chunk at a time. It
// is not safe for concurrent use.
type H5Reader struct {
	path       string
	f          *h5.File
	dataDims   []uint
	labelDims  []uint
	n, c, h, w int
	dataType   string
}

// OpenH5 opens a competition HDF5 file for streaming. Errors name the path:
// missing file, not an HDF5 file, missing "data"/"label" datasets (listing
// the datasets found), wrong rank or shape, unsupported element type. The
// file is read by a child process (internal/h5.File): one that crashes the
// HDF5 C library, makes it loop or take gigabytes is an ErrFormat error
// wrapping an *h5.CrashError, and libhdf5 never reads it in this process.
func OpenH5(path string) (*H5Reader, error) {
	ok, err := IsHDF5(path)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, inputErr(path, ErrNotHDF5, "not an HDF5 file (expected the signature \\x89HDF\\r\\n\\x1a\\n at the start)")
	}
	f, err := h5.OpenFile(path)
	if err != nil {
		return nil, h5Err(path, err, "cannot open HDF5 file")
	}
	r := &H5Reader{path: path, f: f}
	if err := r.open(); err != nil {
		r.f.Close()
		return nil, err
	}
	return r, nil
}

// h5Err is an ErrFormat error for err: an error about the whole file
// (h5.ErrFile: the child crashed on it, say) names the file itself.
func h5Err(path string, err error, format string, args ...any) error {
	if errors.Is(err, h5.ErrFile) {
		return &InputError{Path: path, Kind: ErrFormat, Err: err} // err names path
	}
	return wrapErr(path, ErrFormat, err, format, args...)
}

func (r *H5Reader) open() error {
	names, err := r.f.Members("/")
	if errors.Is(err, h5.ErrFile) {
		return h5Err(r.path, err, "")
	}
	found := "none"
	if len(names) > 0 {
		found = strings.Join(names, ", ")
	}
	for _, want := range []string{"data", "label"} {
		link, err := r.f.Link(want)
		if err != nil {
			return h5Err(r.path, err, "cannot read the link %q", want)
		}
		switch link {
		case h5.NoLink:
			return inputErr(r.path, ErrFormat, "no %q dataset (expected datasets \"data\" [N,3,H,W] and \"label\" [N]; found: %s)", want, found)
		case h5.SoftLink, h5.ExternalLink:
			return inputErr(r.path, ErrFormat, "%q is a soft or external link, expected a dataset of this file", want)
		}
	}
	data, err := r.f.Dataset("data")
	if err != nil {
		return h5Err(r.path, err, "cannot open dataset \"data\" (found: %s)", found)
	}
	label, err := r.f.Dataset("label")
	if err != nil {
		return h5Err(r.path, err, "cannot open dataset \"label\" (found: %s)", found)
	}
	if r.dataDims, err = datasetDims(data); err != nil {
		return wrapErr(r.path, ErrFormat, err, "dataset \"data\"")
	}
	if r.labelDims, err = datasetDims(label); err != nil {
		return wrapErr(r.path, ErrFormat, err, "dataset \"label\"")
	}
	d := r.dataDims
	if len(d) != 4 || (d[1] != 1 && d[1] != 3) || d[2] == 0 || d[3] == 0 {
		return inputErr(r.path, ErrFormat, "dataset \"data\" has shape %v, expected [N, 3, H, W] (channels first, e.g. [N, 3, 55, 47])", d)
	}
	if px, ok := h5.Count(d[2:], MaxImagePixels); !ok || d[0] > math.MaxInt32 {
		return inputErr(r.path, ErrFormat, "dataset \"data\" has shape %v, expected at most %d images of at most %d pixels", d, math.MaxInt32, MaxImagePixels)
	} else if px == 0 {
		return inputErr(r.path, ErrFormat, "dataset \"data\" has shape %v, expected images of at least one pixel", d)
	}
	r.n, r.c, r.h, r.w = int(d[0]), int(d[1]), int(d[2]), int(d[3])
	l := r.labelDims
	if !(len(l) == 1 || (len(l) == 2 && l[1] == 1)) || int(l[0]) != r.n {
		return inputErr(r.path, ErrFormat, "dataset \"label\" has shape %v, expected [%d] (one label per image of \"data\")", l, r.n)
	}
	for _, ds := range []struct {
		name string
		h    h5.DatasetHeader
	}{{"data", data}, {"label", label}} {
		if !ds.h.Numeric {
			return inputErr(r.path, ErrFormat, "dataset %q has element type %s, expected integers or floating-point numbers", ds.name, ds.h.Type)
		}
	}
	r.dataType = data.Type
	return nil
}

func datasetDims(h h5.DatasetHeader) ([]uint, error) {
	if h.DimsErr != "" {
		return nil, errors.New(h.DimsErr)
	}
	if len(h.Dims) == 0 {
		return nil, errors.New("is a scalar, expected an array")
	}
	return h.Dims, nil
}

// Path returns the file's path.
func (r *H5Reader) Path() string { return r.path }

// Len returns the number of images N.
func (r *H5Reader) Len() int { return r.n }

// Shape returns [N, H, W, C] (channels-last, as ReadBatch returns them).
func (r *H5Reader) Shape() [4]int { return [4]int{r.n, r.h, r.w, r.c} }

// DataType returns the element type of the "data" dataset, e.g. "float32",
// "uint8" or "float64 big-endian".
func (r *H5Reader) DataType() string { return r.dataType }

// ReadBatch reads images [start, start+n) (fewer at the end of the file is an
// error: ask for min(n, Len()-start)). Pixels are transposed to channels-last
// and rounded to the nearest integer; a NaN or a value outside [0, 255] is an
// error naming the file, the row and the position. A batch of more than
// MaxReadBytes pixels is refused before anything is read.
func (r *H5Reader) ReadBatch(start, n int) (*Images, error) {
	if r.f == nil {
		return nil, inputErr(r.path, ErrArgument, "reader is closed")
	}
	if start < 0 || n < 0 || start > r.n || n > r.n-start {
		return nil, inputErr(r.path, ErrArgument, "rows [%d, %d) out of range, the file has %d images", start, start+n, r.n)
	}
	c, h, w := r.c, r.h, r.w
	plane := h * w
	if uint64(n)*uint64(c*plane) > MaxReadBytes {
		return nil, inputErr(r.path, ErrArgument, "rows [%d, %d): %d images of %dx%dx%d are more than %d bytes: read fewer at a time", start, start+n, n, h, w, c, uint64(MaxReadBytes))
	}
	out := &Images{Pix: make([]uint8, n*plane*c), H: h, W: w, C: c, Labels: make([]int, n)}
	err := r.f.ReadRows("data", c*plane, start, n, h5ChunkValues, func(row int, raw []float64) error {
		for k := 0; k < len(raw)/(c*plane); k++ {
			src := raw[k*c*plane : (k+1)*c*plane]
			dst := out.Pix[(row-start+k)*c*plane : (row-start+k+1)*c*plane]
			for ch := 0; ch < c; ch++ {
				for p := 0; p < plane; p++ {
					v := src[ch*plane+p]
					if !(v >= 0 && v <= 255) { // also catches NaN
						return inputErr(r.path, ErrValue, "dataset \"data\" image %d (channel %d, y %d, x %d) has value %v, expected a pixel value in [0, 255]", row+k, ch, p/w, p%w, v)
					}
					dst[p*c+ch] = uint8(math.Round(v))
				}
			}
		}
		return nil
	})
	if err == nil {
		err = r.f.ReadRows("label", 1, start, n, h5ChunkValues, func(row int, raw []float64) error {
			for k, lv := range raw {
				if lv != math.Trunc(lv) || lv < -1 || lv > math.MaxInt32 {
					return inputErr(r.path, ErrValue, "dataset \"label\" entry %d is %v, expected an integer >= -1", row+k, lv)
				}
				out.Labels[row-start+k] = int(lv)
			}
			return nil
		})
	}
	if err != nil {
		var ie *InputError
		if errors.As(err, &ie) {
			return nil, err
		}
		return nil, h5Err(r.path, err, "cannot read")
	}
	return out, nil
}

// ReadAll reads every image.
func (r *H5Reader) ReadAll() (*Images, error) { return r.ReadBatch(0, r.n) }

// Close releases the file. It is safe to call more than once.
func (r *H5Reader) Close() error {
	f := r.f
	if f == nil {
		return nil
	}
	r.f = nil
	if err := f.Close(); err != nil {
		return wrapErr(r.path, nil, err, "closing HDF5 file")
	}
	return nil
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
// Names are not stored. The file is written in a temporary folder beside path
// and renamed into place (see internal/safefs), so a reader never sees half a
// file. An existing path is an ErrExists error unless opts.Overwrite is set,
// and even then unless it is an HDF5 file (nothing else is replaced).
func WriteH5(path string, imgs *Images, opts H5WriteOptions) (err error) {
	if err := imgs.Validate(); err != nil {
		return err
	}
	if err := checkH5Destination(path, opts.Overwrite); err != nil {
		return err
	}
	tmp, err := safefs.NewTemp(path)
	if err != nil {
		return wrapErr(path, ErrArgument, err, "cannot create a temporary folder beside it")
	}
	defer tmp.Close()
	name := filepath.Base(path)
	if err := writeH5File(filepath.Join(tmp.Dir, name), imgs); err != nil {
		return wrapErr(path, ErrFormat, err, "cannot write HDF5 file")
	}
	if err := tmp.CommitFile(name, opts.Overwrite, isH5File); err != nil {
		if errors.Is(err, ErrExists) { // checked above: another writer came first
			return inputErr(path, ErrExists, "file exists (created meanwhile by another writer); not written")
		}
		return wrapErr(path, ErrArgument, err, "cannot move the new file into place")
	}
	return nil
}

// checkH5Destination refuses an existing path unless overwrite is set and it
// is an HDF5 file.
func checkH5Destination(path string, overwrite bool) error {
	err := safefs.Check(path, overwrite, isH5File)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrExists):
		return &InputError{Kind: ErrExists, Msg: err.Error()} // names path
	}
	return openErr(path, err)
}

// isH5File accepts a regular HDF5 file: the only kind of file WriteH5
// replaces.
func isH5File(path string) error {
	st, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return errors.New("it is not a regular file (expected an HDF5 file)")
	}
	if ok, err := h5.IsHDF5(path); err != nil || !ok {
		return errors.New("it is not an HDF5 file")
	}
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
