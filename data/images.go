package data

import (
	"fmt"
	"image"
	"image/png"
	"os"
)

// Input size of the paper's DeepID networks (height, width, channels).
const (
	DeepIDHeight   = 55
	DeepIDWidth    = 47
	DeepIDChannels = 3
)

// Images holds N images as bytes, channels-last and row-major: pixel (n, y,
// x, c) is Pix[((n*H+y)*W+x)*C+c]. Labels, when not nil, has one entry per
// image (-1 = unknown); Names, when not nil, has one entry per image (source
// file name or another description).
type Images struct {
	Pix     []uint8
	H, W, C int
	Labels  []int
	Names   []string
}

// NewImages allocates n black images of size h x w x c with all labels -1.
func NewImages(n, h, w, c int) (*Images, error) {
	if n < 0 || h <= 0 || w <= 0 || c <= 0 {
		return nil, argErr("NewImages: invalid shape n=%d h=%d w=%d c=%d (expected n >= 0 and h, w, c > 0)", n, h, w, c)
	}
	labels := make([]int, n)
	for i := range labels {
		labels[i] = -1
	}
	return &Images{Pix: make([]uint8, n*h*w*c), H: h, W: w, C: c, Labels: labels}, nil
}

// Size is the number of bytes of one image: H*W*C.
func (m *Images) Size() int { return m.H * m.W * m.C }

// Len is the number of images.
func (m *Images) Len() int {
	if m == nil || m.Size() <= 0 {
		return 0
	}
	return len(m.Pix) / m.Size()
}

// Shape returns [N, H, W, C].
func (m *Images) Shape() [4]int { return [4]int{m.Len(), m.H, m.W, m.C} }

// Validate checks that the sizes of Pix, Labels and Names agree with the shape.
func (m *Images) Validate() error {
	if m == nil {
		return argErr("images: nil")
	}
	if m.H <= 0 || m.W <= 0 || m.C <= 0 {
		return argErr("images: invalid shape %dx%dx%d (expected positive height, width and channels)", m.H, m.W, m.C)
	}
	if len(m.Pix)%m.Size() != 0 {
		return argErr("images: %d pixel bytes is not a multiple of %dx%dx%d = %d", len(m.Pix), m.H, m.W, m.C, m.Size())
	}
	n := m.Len()
	if m.Labels != nil && len(m.Labels) != n {
		return argErr("images: %d labels for %d images", len(m.Labels), n)
	}
	if m.Names != nil && len(m.Names) != n {
		return argErr("images: %d names for %d images", len(m.Names), n)
	}
	return nil
}

// Label returns the label of image i, or -1 when unknown.
func (m *Images) Label(i int) int {
	if m.Labels == nil || i < 0 || i >= len(m.Labels) {
		return -1
	}
	return m.Labels[i]
}

// Name returns the name of image i, or "" when there is none.
func (m *Images) Name(i int) string {
	if m.Names == nil || i < 0 || i >= len(m.Names) {
		return ""
	}
	return m.Names[i]
}

// Image returns the pixels of image i (a sub-slice sharing memory with Pix),
// or nil when i is out of range.
func (m *Images) Image(i int) []uint8 {
	if i < 0 || i >= m.Len() {
		return nil
	}
	s := m.Size()
	return m.Pix[i*s : (i+1)*s : (i+1)*s]
}

func (m *Images) checkRange(i, j int) error {
	if i < 0 || j < i || j > m.Len() {
		return argErr("images: range [%d, %d) out of bounds for %d images", i, j, m.Len())
	}
	return nil
}

// Slice returns images [i, j). The result shares Pix, Labels and Names with
// m; use Clone for an independent copy.
func (m *Images) Slice(i, j int) (*Images, error) {
	if err := m.checkRange(i, j); err != nil {
		return nil, err
	}
	s := m.Size()
	out := &Images{Pix: m.Pix[i*s : j*s : j*s], H: m.H, W: m.W, C: m.C}
	if m.Labels != nil {
		out.Labels = m.Labels[i:j:j]
	}
	if m.Names != nil {
		out.Names = m.Names[i:j:j]
	}
	return out, nil
}

// Clone returns a deep copy.
func (m *Images) Clone() *Images {
	out := &Images{Pix: append([]uint8(nil), m.Pix...), H: m.H, W: m.W, C: m.C}
	if m.Labels != nil {
		out.Labels = append([]int(nil), m.Labels...)
	}
	if m.Names != nil {
		out.Names = append([]string(nil), m.Names...)
	}
	return out
}

// Subset returns a copy of the images at the given indices, in that order
// (indices may repeat).
func (m *Images) Subset(idx []int) (*Images, error) {
	n, s := m.Len(), m.Size()
	out := &Images{Pix: make([]uint8, 0, len(idx)*s), H: m.H, W: m.W, C: m.C}
	if m.Labels != nil {
		out.Labels = make([]int, 0, len(idx))
	}
	if m.Names != nil {
		out.Names = make([]string, 0, len(idx))
	}
	for _, k := range idx {
		if k < 0 || k >= n {
			return nil, argErr("images: index %d out of range for %d images", k, n)
		}
		out.Pix = append(out.Pix, m.Pix[k*s:(k+1)*s]...)
		if m.Labels != nil {
			out.Labels = append(out.Labels, m.Labels[k])
		}
		if m.Names != nil {
			out.Names = append(out.Names, m.Names[k])
		}
	}
	return out, nil
}

// Concat joins image sets of the same shape. Labels and names missing in some
// parts become -1 and "".
func Concat(parts ...*Images) (*Images, error) {
	if len(parts) == 0 {
		return nil, argErr("Concat: no image sets")
	}
	first := parts[0]
	out := &Images{H: first.H, W: first.W, C: first.C}
	anyLabels, anyNames := false, false
	for k, p := range parts {
		if err := p.Validate(); err != nil {
			return nil, err
		}
		if p.H != first.H || p.W != first.W || p.C != first.C {
			return nil, argErr("Concat: part %d is %dx%dx%d, expected %dx%dx%d like part 0", k, p.H, p.W, p.C, first.H, first.W, first.C)
		}
		anyLabels = anyLabels || p.Labels != nil
		anyNames = anyNames || p.Names != nil
	}
	for _, p := range parts {
		n := p.Len()
		out.Pix = append(out.Pix, p.Pix...)
		if anyLabels {
			for i := 0; i < n; i++ {
				out.Labels = append(out.Labels, p.Label(i))
			}
		}
		if anyNames {
			for i := 0; i < n; i++ {
				out.Names = append(out.Names, p.Name(i))
			}
		}
	}
	return out, nil
}

// scale255[v] = float32(v) / 255, the reference preprocessing.
var scale255 = func() (t [256]float32) {
	for v := range t {
		t[v] = float32(v) / 255
	}
	return
}()

// PixelToFloat32 returns float32(v)/255, the reference preprocessing of one
// pixel.
func PixelToFloat32(v uint8) float32 { return scale255[v] }

// AppendFloat32 appends images [i, j) converted to float32(v)/255,
// channels-last (shape [j-i, H, W, C]), to dst.
func (m *Images) AppendFloat32(dst []float32, i, j int) ([]float32, error) {
	if err := m.checkRange(i, j); err != nil {
		return dst, err
	}
	s := m.Size()
	for _, v := range m.Pix[i*s : j*s] {
		dst = append(dst, scale255[v])
	}
	return dst, nil
}

// Float32 returns images [i, j) as float32(v)/255, channels-last.
func (m *Images) Float32(i, j int) ([]float32, error) {
	if err := m.checkRange(i, j); err != nil {
		return nil, err
	}
	return m.AppendFloat32(make([]float32, 0, (j-i)*m.Size()), i, j)
}

// ToImage returns image i as an *image.NRGBA (1 channel: gray; 3: RGB; 4:
// RGBA).
func (m *Images) ToImage(i int) (*image.NRGBA, error) {
	if i < 0 || i >= m.Len() {
		return nil, argErr("images: index %d out of range for %d images", i, m.Len())
	}
	if m.C != 1 && m.C != 3 && m.C != 4 {
		return nil, argErr("images: cannot make an image of %d channels (expected 1, 3 or 4)", m.C)
	}
	pix := m.Image(i)
	out := image.NewNRGBA(image.Rect(0, 0, m.W, m.H))
	for p := 0; p < m.H*m.W; p++ {
		d := out.Pix[4*p : 4*p+4]
		switch m.C {
		case 1:
			d[0], d[1], d[2], d[3] = pix[p], pix[p], pix[p], 255
		case 3:
			d[0], d[1], d[2], d[3] = pix[3*p], pix[3*p+1], pix[3*p+2], 255
		case 4:
			copy(d, pix[4*p:4*p+4])
		}
	}
	return out, nil
}

// SavePNG writes image i to path as PNG. It refuses to replace an existing
// file unless overwrite is true.
func (m *Images) SavePNG(path string, i int, overwrite bool) error {
	im, err := m.ToImage(i)
	if err != nil {
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if !overwrite {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		if os.IsExist(err) {
			return wrapErr(path, ErrExists, err, "file exists (expected a new file; set overwrite to replace it)")
		}
		return wrapErr(path, ErrArgument, err, "cannot create PNG file")
	}
	if err := png.Encode(f, im); err != nil {
		f.Close()
		return wrapErr(path, ErrArgument, err, "cannot write PNG")
	}
	if err := f.Close(); err != nil {
		return wrapErr(path, ErrArgument, err, "cannot write PNG")
	}
	return nil
}

// String describes the set, e.g. "6 images 55x47x3, labelled".
func (m *Images) String() string {
	l := "unlabelled"
	if m.Labels != nil {
		l = "labelled"
	}
	return fmt.Sprintf("%d images %dx%dx%d, %s", m.Len(), m.H, m.W, m.C, l)
}

// Gather writes the images idx, in order, into x as float32(v)/255
// (len(idx)*H*W*C values, channels-last) and their labels into labels (-1 when
// unknown). It makes *Images a tfmodels.Examples, the input of training.
func (m *Images) Gather(idx []int, x []float32, labels []int32) error {
	s := m.Size()
	if len(x) != len(idx)*s || len(labels) != len(idx) {
		return argErr("Gather: %d indices need %d values and %d labels, found %d and %d", len(idx), len(idx)*s, len(idx), len(x), len(labels))
	}
	n := m.Len()
	for k, i := range idx {
		if i < 0 || i >= n {
			return argErr("Gather: index %d out of range for %d images", i, n)
		}
		dst := x[k*s : (k+1)*s]
		for j, v := range m.Pix[i*s : (i+1)*s] {
			dst[j] = scale255[v]
		}
		labels[k] = int32(m.Label(i))
	}
	return nil
}
