package data

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// IDX magic numbers (unsigned byte data): images have 3 dimensions, labels 1.
const (
	IDXImagesMagic = 2051
	IDXLabelsMagic = 2049
)

// DefaultFashionMNISTDir is where the Fashion-MNIST IDX files are installed.
const DefaultFashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// openIDX opens path, transparently un-gzipping it when it starts with the
// gzip magic bytes.
func openIDX(path string) (io.Reader, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, openErr(path, err)
	}
	r, err := idxStream(f, path)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return r, f.Close, nil
}

// idxStream returns the IDX bytes of r, un-gzipped when r starts with the
// gzip magic bytes (path names r in errors).
func idxStream(r io.Reader, path string) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, _ := br.Peek(2)
	if len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, wrapErr(path, ErrFormat, err, "bad gzip stream")
		}
		return gz, nil
	}
	return br, nil
}

func idxHeader(path string, r io.Reader, magic uint32, ndims int) ([]int, error) {
	hdr := make([]byte, 4+4*ndims)
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return nil, idxReadErr(path, err, "magic number", 4)
	}
	got := binary.BigEndian.Uint32(hdr)
	if got != magic {
		what := map[uint32]string{IDXImagesMagic: "IDX images", IDXLabelsMagic: "IDX labels"}[magic]
		return nil, inputErr(path, ErrFormat, "bad magic number %d (0x%08x), expected %d for %s", got, got, magic, what)
	}
	if _, err := io.ReadFull(r, hdr[4:]); err != nil {
		return nil, idxReadErr(path, err, "header", len(hdr))
	}
	dims := make([]int, ndims)
	for i := range dims {
		dims[i] = int(binary.BigEndian.Uint32(hdr[4+4*i:])) // < 2^32: int is 64-bit here
	}
	return dims, nil
}

// readUpTo reads n bytes, growing its buffer as they arrive: a header
// declaring more data than the file holds costs only what the file holds.
// Fewer bytes is io.ErrUnexpectedEOF.
func readUpTo(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, min(n, 1<<20))
	for {
		k, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(buf) == n {
			return buf, nil
		}
		grown := make([]byte, len(buf), min(n, 2*cap(buf)))
		copy(grown, buf)
		buf = grown
	}
}

func idxReadErr(path string, err error, what string, want int) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return inputErr(path, ErrFormat, "truncated file: the %s needs %d bytes, the file ends first", what, want)
	}
	return wrapErr(path, ErrFormat, err, "cannot read the %s", what)
}

// ReadIDXImages reads an IDX image file (magic 2051, gzip-compressed or raw)
// as N images of rows x cols x 1 with unknown labels.
func ReadIDXImages(path string) (*Images, error) {
	r, closeFn, err := openIDX(path)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	return readIDXImages(r, path)
}

func readIDXImages(r io.Reader, path string) (*Images, error) {
	dims, err := idxHeader(path, r, IDXImagesMagic, 3)
	if err != nil {
		return nil, err
	}
	n, h, w := dims[0], dims[1], dims[2]
	// Each dimension is below 2^32: the products cannot overflow uint64.
	if h == 0 || w == 0 || uint64(h)*uint64(w) > MaxImagePixels || uint64(n)*uint64(h)*uint64(w) > MaxReadBytes {
		return nil, inputErr(path, ErrFormat, "implausible image dimensions %dx%dx%d (expected images of at most %d pixels, %d bytes in all)", n, h, w, MaxImagePixels, uint64(MaxReadBytes))
	}
	pix, err := readUpTo(r, n*h*w)
	if err != nil {
		return nil, idxReadErr(path, err, "pixel data of "+strconv.Itoa(n)+" images "+strconv.Itoa(h)+"x"+strconv.Itoa(w), n*h*w)
	}
	labels := make([]int, n)
	for i := range labels {
		labels[i] = -1
	}
	return &Images{Pix: pix, H: h, W: w, C: 1, Labels: labels}, nil
}

// ReadIDXLabels reads an IDX label file (magic 2049, gzip-compressed or raw).
func ReadIDXLabels(path string) ([]int, error) {
	r, closeFn, err := openIDX(path)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	return readIDXLabels(r, path)
}

func readIDXLabels(r io.Reader, path string) ([]int, error) {
	dims, err := idxHeader(path, r, IDXLabelsMagic, 1)
	if err != nil {
		return nil, err
	}
	n := dims[0]
	if n > 1<<31 {
		return nil, inputErr(path, ErrFormat, "implausible label count %d", n)
	}
	raw, err := readUpTo(r, n)
	if err != nil {
		return nil, idxReadErr(path, err, strconv.Itoa(n)+" labels", n)
	}
	out := make([]int, n)
	for i, v := range raw {
		out[i] = int(v)
	}
	return out, nil
}

// LoadIDX reads an image file and a label file and joins them; the counts
// must agree.
func LoadIDX(imagesPath, labelsPath string) (*Images, error) {
	imgs, err := ReadIDXImages(imagesPath)
	if err != nil {
		return nil, err
	}
	labels, err := ReadIDXLabels(labelsPath)
	if err != nil {
		return nil, err
	}
	if len(labels) != imgs.Len() {
		return nil, inputErr(labelsPath, ErrFormat, "has %d labels, expected %d (one per image of %s)", len(labels), imgs.Len(), imagesPath)
	}
	imgs.Labels = labels
	return imgs, nil
}

// findIDX returns dir/base.gz if it exists, else dir/base.
func findIDX(dir, base string) string {
	p := filepath.Join(dir, base+".gz")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return filepath.Join(dir, base)
}

// LoadFashionMNIST loads the Fashion-MNIST training (60,000) and test
// (10,000) sets from dir (DefaultFashionMNISTDir when dir is ""), as
// 28x28x1 images with labels 0..9. It reads train-images-idx3-ubyte,
// train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte,
// each with or without a .gz suffix.
func LoadFashionMNIST(dir string) (train, test *Images, err error) {
	if dir == "" {
		dir = DefaultFashionMNISTDir
	}
	train, err = LoadIDX(findIDX(dir, "train-images-idx3-ubyte"), findIDX(dir, "train-labels-idx1-ubyte"))
	if err != nil {
		return nil, nil, err
	}
	test, err = LoadIDX(findIDX(dir, "t10k-images-idx3-ubyte"), findIDX(dir, "t10k-labels-idx1-ubyte"))
	if err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// FashionMNISTClasses names the ten Fashion-MNIST labels.
var FashionMNISTClasses = [10]string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

// ToDeepID maps images to the 55x47x3 input of the paper's DeepID network so
// that architecture is used unchanged, e.g. for Fashion-MNIST. The mapping:
//
//  1. each image is resized from H x W to 55 x 47 with bilinear
//     interpolation (half-pixel centres, rounded to the nearest byte, see
//     ResizePixels); a 28x28 image is thus stretched ~1.96x vertically and
//     ~1.68x horizontally, filling the whole frame;
//  2. a single gray channel is replicated to R, G and B (3-channel input is
//     kept as is).
//
// Labels and names are kept. Images must have 1 or 3 channels.
func ToDeepID(imgs *Images) (*Images, error) {
	if err := imgs.Validate(); err != nil {
		return nil, err
	}
	if imgs.C != 1 && imgs.C != 3 {
		return nil, argErr("ToDeepID: images have %d channels, expected 1 (gray) or 3 (RGB)", imgs.C)
	}
	r, err := Resize(imgs, DeepIDHeight, DeepIDWidth, Bilinear)
	if err != nil {
		return nil, err
	}
	if r.C == 3 {
		return r, nil
	}
	out := &Images{Pix: make([]uint8, len(r.Pix)*3), H: r.H, W: r.W, C: 3, Labels: r.Labels, Names: r.Names}
	for i, v := range r.Pix {
		out.Pix[3*i], out.Pix[3*i+1], out.Pix[3*i+2] = v, v, v
	}
	return out, nil
}
