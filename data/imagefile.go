package data

import (
	"errors"
	"image"
	"image/color"
	_ "image/jpeg" // register JPEG decoding
	_ "image/png"  // register PNG decoding
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ResizeMethod selects the interpolation used when resizing.
type ResizeMethod int

const (
	// Bilinear interpolation with half-pixel centres (the convention of
	// OpenCV and of TensorFlow's resize with half_pixel_centers), rounded to
	// the nearest integer.
	Bilinear ResizeMethod = iota
	// Nearest neighbour with half-pixel centres.
	Nearest
)

// ImageOptions controls reading PNG and JPEG files.
type ImageOptions struct {
	// H and W are the expected height and width; 0 means "take the size of
	// the (first) image". All images of a directory must have the same size.
	H, W int
	// Resize allows resizing images of another size to H x W (or to the size
	// of the first image); without it a different size is an ErrSize error.
	Resize bool
	// Method is the resize interpolation (default Bilinear).
	Method ResizeMethod
}

// DeepIDImageOptions expects 55x47 images, as the DeepID BadNets do.
func DeepIDImageOptions(resize bool) ImageOptions {
	return ImageOptions{H: DeepIDHeight, W: DeepIDWidth, Resize: resize}
}

var labelRE = regexp.MustCompile(`(?:^|[^A-Za-z])(label|target)=(-?[0-9]+)`)

// ParseLabel finds "label=<int>" or "target=<int>" in the base name of path
// (e.g. "cl_0_label=43.png", "i000_target=0.png"). It returns the first such
// value, or -1 and false when there is none.
func ParseLabel(path string) (int, bool) {
	m := labelRE.FindStringSubmatch(filepath.Base(path))
	if m == nil {
		return -1, false
	}
	v, err := strconv.Atoi(m[2])
	if err != nil || v < -1 {
		return -1, false
	}
	return v, true
}

// IsImageFileName reports whether name ends in .png, .jpg or .jpeg (any case).
func IsImageFileName(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg":
		return true
	}
	return false
}

// ReadImageFile reads one PNG or JPEG file as a single RGB image (gray is
// replicated to three channels, alpha is dropped), with the label parsed
// from the file name (see ParseLabel) and the base name as its name.
func ReadImageFile(path string, opts ImageOptions) (*Images, error) {
	pix, h, w, err := decodeRGB(path, opts)
	if err != nil {
		return nil, err
	}
	th, tw := opts.H, opts.W
	if th == 0 {
		th = h
	}
	if tw == 0 {
		tw = w
	}
	if pix, err = fitSize(path, pix, h, w, th, tw, opts); err != nil {
		return nil, err
	}
	lbl, _ := ParseLabel(path)
	return &Images{Pix: pix, H: th, W: tw, C: 3, Labels: []int{lbl}, Names: []string{filepath.Base(path)}}, nil
}

func fitSize(path string, pix []uint8, h, w, th, tw int, opts ImageOptions) ([]uint8, error) {
	if h == th && w == tw {
		return pix, nil
	}
	if !opts.Resize {
		return nil, fitSizeErr(path, h, w, ImageOptions{H: th, W: tw})
	}
	return ResizePixels(pix, h, w, 3, th, tw, opts.Method)
}

func fitSizeErr(path string, h, w int, want ImageOptions) error {
	th, tw := want.H, want.W
	if th == 0 {
		th = h
	}
	if tw == 0 {
		tw = w
	}
	return inputErr(path, ErrSize, "image is %dx%d, expected %dx%d (use --resize to resize)", h, w, th, tw)
}

// ReadImageDir reads every *.png, *.jpg and *.jpeg file of dir (not
// recursive), sorted by file name. Other files are ignored; a directory
// without images is an ErrNoImages error.
func ReadImageDir(dir string, opts ImageOptions) (*Images, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, openErr(dir, err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && IsImageFileName(e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, inputErr(dir, ErrNoImages, "no PNG or JPEG images found (expected *.png, *.jpg or *.jpeg files)")
	}
	var out *Images
	for _, name := range names {
		p := filepath.Join(dir, name)
		pix, h, w, err := decodeRGB(p, opts)
		if err != nil {
			return nil, err
		}
		if out == nil {
			th, tw := opts.H, opts.W
			if th == 0 {
				th = h
			}
			if tw == 0 {
				tw = w
			}
			if uint64(len(names))*uint64(th*tw*3) > MaxReadBytes {
				return nil, inputErr(dir, ErrSize, "%d images of %dx%d are more than %d bytes", len(names), th, tw, uint64(MaxReadBytes))
			}
			out = &Images{H: th, W: tw, C: 3, Pix: make([]uint8, 0, len(names)*th*tw*3)}
			// Later images must fit this size (or be resized): later
			// decodes check their declared size against it.
			opts.H, opts.W = th, tw
		}
		if pix, err = fitSize(p, pix, h, w, out.H, out.W, opts); err != nil {
			return nil, err
		}
		lbl, _ := ParseLabel(name)
		out.Pix = append(out.Pix, pix...)
		out.Labels = append(out.Labels, lbl)
		out.Names = append(out.Names, name)
	}
	return out, nil
}

// Load reads images from path: a directory (ReadImageDir), an HDF5 file
// (ReadH5, recognised by its signature) or a PNG/JPEG file (ReadImageFile).
// Images of HDF5 files must already have size opts.H x opts.W when those are
// set (they are not resized).
func Load(path string, opts ImageOptions) (*Images, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, openErr(path, err)
	}
	if st.IsDir() {
		return ReadImageDir(path, opts)
	}
	isH5, err := IsHDF5(path)
	if err != nil {
		return nil, err
	}
	if !isH5 {
		return ReadImageFile(path, opts)
	}
	imgs, err := ReadH5(path)
	if err != nil {
		return nil, err
	}
	if (opts.H != 0 && imgs.H != opts.H) || (opts.W != 0 && imgs.W != opts.W) {
		return nil, inputErr(path, ErrSize, "images are %dx%d, expected %dx%d", imgs.H, imgs.W, opts.H, opts.W)
	}
	return imgs, nil
}

// decodeRGB decodes a PNG or JPEG file to RGB bytes. The size the file
// declares is checked first, before the pixels are decoded and allocated:
// at most MaxImagePixels, and opts.H x opts.W when set without opts.Resize.
func decodeRGB(path string, opts ImageOptions) ([]uint8, int, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, 0, openErr(path, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, 0, 0, inputErr(path, ErrFormat, "is a directory, expected a PNG or JPEG file")
	}
	return decodeRGBFrom(f, path, opts)
}

// decodeRGBFrom is decodeRGB on an open file (path names it in errors).
func decodeRGBFrom(f io.ReadSeeker, path string, opts ImageOptions) ([]uint8, int, int, error) {
	decodeErr := func(err error) error {
		if errors.Is(err, image.ErrFormat) {
			return inputErr(path, ErrFormat, "not a PNG or JPEG image (unrecognised content)")
		}
		return wrapErr(path, ErrFormat, err, "cannot decode image")
	}
	cfg, format, err := image.DecodeConfig(f)
	if err != nil {
		return nil, 0, 0, decodeErr(err)
	}
	if format != "png" && format != "jpeg" {
		return nil, 0, 0, inputErr(path, ErrFormat, "is a %s image, expected PNG or JPEG", format)
	}
	h, w := cfg.Height, cfg.Width
	if h <= 0 || w <= 0 || uint64(h)*uint64(w) > MaxImagePixels {
		return nil, 0, 0, inputErr(path, ErrSize, "image is %dx%d, expected at most %d pixels", h, w, MaxImagePixels)
	}
	if !opts.Resize && ((opts.H != 0 && h != opts.H) || (opts.W != 0 && w != opts.W)) {
		return nil, 0, 0, fitSizeErr(path, h, w, opts)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, 0, wrapErr(path, ErrFormat, err, "cannot read")
	}
	im, _, err := image.Decode(f)
	if err != nil {
		return nil, 0, 0, decodeErr(err)
	}
	pix, dh, dw := toRGB(im)
	if dh != h || dw != w {
		return nil, 0, 0, inputErr(path, ErrFormat, "image decodes to %dx%d, its header says %dx%d", dh, dw, h, w)
	}
	return pix, h, w, nil
}

// toRGB converts any image to RGB bytes. Alpha is dropped without
// compositing (like PIL's convert("RGB")); gray is replicated.
func toRGB(im image.Image) ([]uint8, int, int) {
	b := im.Bounds()
	h, w := b.Dy(), b.Dx()
	out := make([]uint8, 0, h*w*3)
	switch m := im.(type) {
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			for x := 0; x < w; x++ {
				out = append(out, row[4*x], row[4*x+1], row[4*x+2])
			}
		}
		return out, h, w
	case *image.Gray:
		for y := 0; y < h; y++ {
			for _, v := range m.Pix[y*m.Stride : y*m.Stride+w] {
				out = append(out, v, v, v)
			}
		}
		return out, h, w
	case *image.RGBA:
		opaque := m.Opaque()
		if opaque {
			for y := 0; y < h; y++ {
				row := m.Pix[y*m.Stride : y*m.Stride+4*w]
				for x := 0; x < w; x++ {
					out = append(out, row[4*x], row[4*x+1], row[4*x+2])
				}
			}
			return out, h, w
		}
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBAModel.Convert(im.At(x, y)).(color.NRGBA)
			out = append(out, c.R, c.G, c.B)
		}
	}
	return out, h, w
}

// ResizePixels resizes one channels-last image of h x w x c bytes to
// nh x nw x c. Bilinear uses half-pixel centres (source coordinate
// (x+0.5)*w/nw-0.5, clamped to the image) and rounds to the nearest integer;
// Nearest picks the source pixel floor((x+0.5)*w/nw).
func ResizePixels(pix []uint8, h, w, c, nh, nw int, method ResizeMethod) ([]uint8, error) {
	if h <= 0 || w <= 0 || c <= 0 || nh <= 0 || nw <= 0 || len(pix) != h*w*c {
		return nil, argErr("ResizePixels: %d bytes for %dx%dx%d resized to %dx%d (expected h*w*c bytes and positive sizes)", len(pix), h, w, c, nh, nw)
	}
	out := make([]uint8, nh*nw*c)
	if nh == h && nw == w {
		copy(out, pix)
		return out, nil
	}
	sy, sx := float64(h)/float64(nh), float64(w)/float64(nw)
	switch method {
	case Nearest:
		for y := 0; y < nh; y++ {
			yy := min(int((float64(y)+0.5)*sy), h-1)
			for x := 0; x < nw; x++ {
				xx := min(int((float64(x)+0.5)*sx), w-1)
				copy(out[(y*nw+x)*c:(y*nw+x+1)*c], pix[(yy*w+xx)*c:(yy*w+xx+1)*c])
			}
		}
	case Bilinear:
		type tap struct {
			i0, i1 int
			f      float64
		}
		taps := func(n, src int, s float64) []tap {
			t := make([]tap, n)
			for i := range t {
				p := (float64(i)+0.5)*s - 0.5
				p = math.Max(0, math.Min(p, float64(src-1)))
				i0 := int(p)
				i1 := min(i0+1, src-1)
				t[i] = tap{i0, i1, p - float64(i0)}
			}
			return t
		}
		ty, tx := taps(nh, h, sy), taps(nw, w, sx)
		for y, a := range ty {
			for x, b := range tx {
				for ch := 0; ch < c; ch++ {
					v00 := float64(pix[(a.i0*w+b.i0)*c+ch])
					v01 := float64(pix[(a.i0*w+b.i1)*c+ch])
					v10 := float64(pix[(a.i1*w+b.i0)*c+ch])
					v11 := float64(pix[(a.i1*w+b.i1)*c+ch])
					top := v00 + (v01-v00)*b.f
					bot := v10 + (v11-v10)*b.f
					v := top + (bot-top)*a.f
					out[(y*nw+x)*c+ch] = uint8(math.Max(0, math.Min(255, math.Round(v))))
				}
			}
		}
	default:
		return nil, argErr("ResizePixels: unknown resize method %d", method)
	}
	return out, nil
}

// Resize returns a copy of imgs resized to nh x nw (labels and names kept).
func Resize(imgs *Images, nh, nw int, method ResizeMethod) (*Images, error) {
	if err := imgs.Validate(); err != nil {
		return nil, err
	}
	n := imgs.Len()
	out := &Images{Pix: make([]uint8, 0, n*nh*nw*imgs.C), H: nh, W: nw, C: imgs.C}
	for i := 0; i < n; i++ {
		p, err := ResizePixels(imgs.Image(i), imgs.H, imgs.W, imgs.C, nh, nw, method)
		if err != nil {
			return nil, err
		}
		out.Pix = append(out.Pix, p...)
	}
	if imgs.Labels != nil {
		out.Labels = append([]int(nil), imgs.Labels...)
	}
	if imgs.Names != nil {
		out.Names = append([]string(nil), imgs.Names...)
	}
	return out, nil
}
