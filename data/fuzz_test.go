package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/bbd-workbench/bbd/internal/h5"
)

// The fuzz targets read hostile files with the data package's readers: none
// may panic, hang or allocate beyond the documented limits (MaxImagePixels,
// MaxReadBytes). `go test` runs them on their seeds (real files where the
// shared material is installed); `make fuzz` fuzzes each for $(FUZZTIME).

// The shared material's real faces, seen from this folder.
const fuzzFacesDir = "../../shared/real-faces"

var fuzzFiles atomic.Int64

// fuzzFile writes b to a new file of dir (one folder per fuzzing process: no
// folder churn per input; `make fuzz` puts it on tmpfs), removed when the
// test ends.
func fuzzFile(t *testing.T, dir string, b []byte) string {
	p := filepath.Join(dir, strconv.FormatInt(fuzzFiles.Add(1), 10))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(p) })
	return p
}

// checkImages verifies the invariants of images a reader accepted.
func checkImages(t *testing.T, imgs *Images) {
	t.Helper()
	if err := imgs.Validate(); err != nil {
		t.Fatalf("accepted images fail Validate: %v", err)
	}
	if imgs.H*imgs.W > MaxImagePixels || len(imgs.Pix) > MaxReadBytes {
		t.Fatalf("accepted %v beyond the limits", imgs)
	}
}

// fuzzH5Timeout gives the HDF5 child (internal/h5) 1 s per step unless
// $BBD_H5_CHILD_TIMEOUT says otherwise: Go's fuzzing takes an input that
// runs longer than 10 s for a hang, and files that keep libhdf5 busy are
// refused after the timeout.
func fuzzH5Timeout(f *testing.F) {
	if os.Getenv(h5.ChildTimeoutEnv) == "" {
		f.Setenv(h5.ChildTimeoutEnv, "1s")
	}
}

// FuzzOpenH5: the competition HDF5 reader on any bytes.
func FuzzOpenH5(f *testing.F) {
	fuzzH5Timeout(f)
	dir := f.TempDir()
	imgs, _ := NewImages(3, 5, 4, 3)
	for i := range imgs.Pix {
		imgs.Pix[i] = uint8(i)
	}
	imgs.Labels = []int{1, -1, 7}
	p := filepath.Join(dir, "written.h5")
	if err := WriteH5(p, imgs, H5WriteOptions{}); err == nil {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	if clean, err := ReadImageDir(filepath.Join(fuzzFacesDir, "clean"), DeepIDImageOptions(false)); err == nil {
		few, _ := clean.Slice(0, 2)
		p := filepath.Join(dir, "faces.h5")
		if WriteH5(p, few, H5WriteOptions{}) == nil {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := OpenH5(fuzzFile(t, dir, b))
		if err != nil {
			return
		}
		defer r.Close()
		if imgs, err := r.ReadBatch(0, min(r.Len(), 4)); err == nil {
			checkImages(t, imgs)
		}
	})
}

// FuzzDecodeImage: PNG and JPEG decoding on any bytes, as a file of any size
// and as a 55x47 input (with and without resizing).
func FuzzDecodeImage(f *testing.F) {
	for _, name := range []string{"clean/i000_label=950.png", "sunglasses"} {
		p := filepath.Join(fuzzFacesDir, name)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			ents, _ := os.ReadDir(p)
			if len(ents) == 0 {
				continue
			}
			p = filepath.Join(p, ents[0].Name())
		}
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	im := image.NewRGBA(image.Rect(0, 0, 6, 5))
	for i := range im.Pix {
		im.Pix[i] = uint8(i * 7)
	}
	var pb, jb bytes.Buffer
	png.Encode(&pb, im)
	jpeg.Encode(&jb, im, nil)
	f.Add(pb.Bytes())
	f.Add(jb.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, opts := range []ImageOptions{{}, DeepIDImageOptions(false), DeepIDImageOptions(true)} {
			pix, h, w, err := decodeRGBFrom(bytes.NewReader(b), "fuzz.png", opts)
			if err != nil {
				continue
			}
			if h*w > MaxImagePixels || len(pix) != h*w*3 {
				t.Fatalf("decoded %d bytes for %dx%d", len(pix), h, w)
			}
			if !opts.Resize && opts.H != 0 && (h != opts.H || w != opts.W) {
				t.Fatalf("decoded %dx%d, expected %dx%d", h, w, opts.H, opts.W)
			}
		}
	})
}

// FuzzReadIDX: the IDX image and label readers on any bytes (raw or gzip).
func FuzzReadIDX(f *testing.F) {
	// Real Fashion-MNIST files, cut to a few records.
	for _, c := range []struct {
		name  string
		magic uint32
		head  int // header bytes
		rec   int // bytes per record
	}{{"t10k-images-idx3-ubyte.gz", IDXImagesMagic, 16, 28 * 28}, {"t10k-labels-idx1-ubyte.gz", IDXLabelsMagic, 8, 1}} {
		raw, err := readGzip(filepath.Join(DefaultFashionMNISTDir, c.name))
		if err != nil || len(raw) < c.head+3*c.rec {
			continue
		}
		b := append([]byte(nil), raw[:c.head+3*c.rec]...)
		binary.BigEndian.PutUint32(b[4:], 3) // 3 records
		f.Add(b)
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(b)
		zw.Close()
		f.Add(z.Bytes())
	}
	f.Add([]byte{0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4})
	f.Add([]byte{0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := idxStream(bytes.NewReader(b), "fuzz"); err == nil {
			if imgs, err := readIDXImages(r, "fuzz"); err == nil {
				checkImages(t, imgs)
			}
		}
		if r, err := idxStream(bytes.NewReader(b), "fuzz"); err == nil {
			if labels, err := readIDXLabels(r, "fuzz"); err == nil && len(labels) > 1<<31 {
				t.Fatalf("%d labels", len(labels))
			}
		}
	})
}

func readGzip(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	zr, err := gzip.NewReader(fh)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(zr, 1<<20))
}
