package nbutil

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// ImageGrid renders images as a grid of cols columns, each image enlarged scale times
// (nearest neighbour) with its caption lines below it, and returns the PNG bytes.
// captions may be nil or shorter than images; tiles all get the size of the largest.
func ImageGrid(images []image.Image, captions [][]string, cols, scale int) ([]byte, error) {
	if len(images) == 0 {
		return nil, fmt.Errorf("nbutil.ImageGrid: no images")
	}
	if cols <= 0 || scale <= 0 {
		return nil, fmt.Errorf("nbutil.ImageGrid: cols (%d) and scale (%d) must be positive", cols, scale)
	}
	face := basicfont.Face7x13
	const pad, lineH, charW = 6, 14, 7
	tileW, imgH, lines := 0, 0, 0
	for i, img := range images {
		if img == nil {
			return nil, fmt.Errorf("nbutil.ImageGrid: image %d is nil", i)
		}
		b := img.Bounds()
		tileW = max(tileW, b.Dx()*scale)
		imgH = max(imgH, b.Dy()*scale)
		if i < len(captions) {
			lines = max(lines, len(captions[i]))
			for _, l := range captions[i] {
				tileW = max(tileW, len(l)*charW)
			}
		}
	}
	tileH := imgH + lines*lineH
	if lines > 0 {
		tileH += pad / 2
	}
	if cols > len(images) {
		cols = len(images)
	}
	rows := (len(images) + cols - 1) / cols
	out := image.NewNRGBA(image.Rect(0, 0, cols*(tileW+pad)+pad, rows*(tileH+pad)+pad))
	draw.Draw(out, out.Bounds(), image.White, image.Point{}, draw.Src)
	for i, img := range images {
		x0 := pad + (i%cols)*(tileW+pad)
		y0 := pad + (i/cols)*(tileH+pad)
		b := img.Bounds()
		xoff := x0 + (tileW-b.Dx()*scale)/2
		for y := 0; y < b.Dy()*scale; y++ {
			for x := 0; x < b.Dx()*scale; x++ {
				out.Set(xoff+x, y0+y, img.At(b.Min.X+x/scale, b.Min.Y+y/scale))
			}
		}
		if i >= len(captions) {
			continue
		}
		d := font.Drawer{Dst: out, Src: image.NewUniform(color.Black), Face: face}
		for j, l := range captions[i] {
			d.Dot = fixed.P(x0, y0+imgH+pad/2+(j+1)*lineH-3)
			d.DrawString(l)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
