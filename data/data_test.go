package data_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gonum.org/v1/hdf5"

	"github.com/bbd-workbench/bbd/data"
)

const (
	ytfDir       = "../../shared/ytf-samples"
	realFacesDir = "../../shared/real-faces"
)

func needDir(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("%s not available: %v", dir, err)
	}
}

func readClean(t *testing.T) *data.Images {
	t.Helper()
	dir := filepath.Join(realFacesDir, "clean")
	needDir(t, dir)
	imgs, err := data.ReadImageDir(dir, data.DeepIDImageOptions(false))
	if err != nil {
		t.Fatal(err)
	}
	return imgs
}

func wantErr(t *testing.T, err error, kind error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected an error containing %q, got nil", parts)
	}
	if kind != nil && !errors.Is(err, kind) {
		t.Errorf("error %q is not %v", err, kind)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func TestReadYTFSamples(t *testing.T) {
	needDir(t, ytfDir)
	imgs, err := data.ReadImageDir(ytfDir, data.DeepIDImageOptions(false))
	if err != nil {
		t.Fatal(err)
	}
	if imgs.Len() != 6 || imgs.H != 55 || imgs.W != 47 || imgs.C != 3 {
		t.Fatalf("got %v, want 6 images 55x47x3", imgs)
	}
	want := map[string]int{"cl_0_label=43.png": 43, "cl_1_label=328.png": 328, "ano_0_label=0.png": 0,
		"ano_1_label=0.png": 0, "sun_0_label=0.png": 0, "sun_1_label=0.png": 0}
	for i, name := range imgs.Names {
		l, ok := want[name]
		if !ok || imgs.Labels[i] != l {
			t.Errorf("image %d %q has label %d, want %d (known %v)", i, name, imgs.Labels[i], l, ok)
		}
		if i > 0 && imgs.Names[i-1] >= name {
			t.Errorf("names not sorted: %q before %q", imgs.Names[i-1], name)
		}
	}
	// One file alone gives the same pixels.
	one, err := data.ReadImageFile(filepath.Join(ytfDir, imgs.Names[2]), data.ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one.Pix, imgs.Image(2)) || one.Labels[0] != imgs.Labels[2] {
		t.Error("ReadImageFile differs from ReadImageDir")
	}
}

func TestRealFacesLabels(t *testing.T) {
	clean := readClean(t)
	if clean.Len() < 50 {
		t.Fatalf("only %d clean images", clean.Len())
	}
	if clean.Names[0] != "i000_label=950.png" || clean.Labels[0] != 950 {
		t.Errorf("first image %q label %d, want i000_label=950.png 950", clean.Names[0], clean.Labels[0])
	}
	for i, l := range clean.Labels {
		if l < 0 || l > 1282 {
			t.Errorf("%s: label %d outside 0..1282", clean.Names[i], l)
		}
	}
	sun, err := data.ReadImageDir(filepath.Join(realFacesDir, "sunglasses"), data.DeepIDImageOptions(false))
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range sun.Labels {
		if l != 0 {
			t.Errorf("%s: target %d, want 0", sun.Names[i], l)
		}
	}
}

func TestParseLabel(t *testing.T) {
	for name, want := range map[string]int{"a/i000_target=5.png": 5, "label=7.jpg": 7, "x_label=12_y.png": 12, "nolabel.png": -1, "mylabel=3.png": -1} {
		if got, _ := data.ParseLabel(name); got != want {
			t.Errorf("ParseLabel(%q) = %d, want %d", name, got, want)
		}
	}
}

func TestH5RoundTripAndStreaming(t *testing.T) {
	clean := readClean(t)
	path := filepath.Join(t.TempDir(), "clean.h5")
	if err := data.WriteH5(path, clean, data.H5WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	r, err := data.OpenH5(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, want := r.Shape(), clean.Shape(); got != want {
		t.Fatalf("shape %v, want %v", got, want)
	}
	all, err := r.ReadBatch(0, r.Len())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(all.Pix, clean.Pix) || !reflect.DeepEqual(all.Labels, clean.Labels) {
		t.Fatal("round trip changed pixels or labels")
	}
	mid, err := r.ReadBatch(10, 7)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := all.Slice(10, 17)
	if !bytes.Equal(mid.Pix, want.Pix) || !reflect.DeepEqual(mid.Labels, want.Labels) {
		t.Error("ReadBatch(10, 7) differs from the same slice of a full read")
	}
	_, err = r.ReadBatch(r.Len()-1, 2)
	wantErr(t, err, data.ErrArgument, path, "out of range")
}

func TestH5FloatsAndRounding(t *testing.T) {
	// A float64 file with integer labels stored as int64, values like 12.2.
	path := filepath.Join(t.TempDir(), "f64.h5")
	pix := make([]float64, 2*3*4*5)
	for i := range pix {
		pix[i] = float64(i%256) + 0.2
	}
	writeRawH5(t, path, map[string]any{"data": pix, "label": []int64{3, -1}}, map[string][]uint{"data": {2, 3, 4, 5}, "label": {2}})
	imgs, err := data.ReadH5(path)
	if err != nil {
		t.Fatal(err)
	}
	if imgs.Shape() != [4]int{2, 4, 5, 3} || !reflect.DeepEqual(imgs.Labels, []int{3, -1}) {
		t.Fatalf("got %v labels %v", imgs.Shape(), imgs.Labels)
	}
	// data[n=1, c=2, y=3, x=4] -> Pix[((1*4+3)*5+4)*3+2]
	src := 1*60 + 2*20 + 3*5 + 4
	if got := imgs.Pix[((1*4+3)*5+4)*3+2]; got != uint8(src%256) {
		t.Errorf("transposed pixel %d, want %d", got, src%256)
	}
}

// writeRawH5 writes datasets with the given Go slices (float64, float32, int64).
func writeRawH5(t *testing.T, path string, sets map[string]any, dims map[string][]uint) {
	t.Helper()
	f, err := hdf5.CreateFile(path, hdf5.F_ACC_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, v := range sets {
		sp, err := hdf5.CreateSimpleDataspace(dims[name], nil)
		if err != nil {
			t.Fatal(err)
		}
		dt, err := hdf5.NewDatatypeFromValue(reflect.ValueOf(v).Index(0).Interface())
		if err != nil {
			t.Fatal(err)
		}
		ds, err := f.CreateDataset(name, dt, sp)
		if err != nil {
			t.Fatal(err)
		}
		rv := reflect.New(reflect.TypeOf(v))
		rv.Elem().Set(reflect.ValueOf(v))
		if err := ds.Write(rv.Interface()); err != nil {
			t.Fatal(err)
		}
		ds.Close()
		sp.Close()
	}
}

// TestIsHDF5 pins data.IsHDF5: the signature at 0 or at a user-block offset,
// data's error kinds for a directory and a missing file.
func TestIsHDF5(t *testing.T) {
	dir := t.TempDir()
	sig := "\x89HDF\r\n\x1a\n"
	for name, content := range map[string]string{
		"at0.h5":   sig + "rest",
		"at512.h5": strings.Repeat("x", 512) + sig,
		"short.h5": sig[:7],
		"at100.h5": strings.Repeat("x", 100) + sig,
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		ok, err := data.IsHDF5(p)
		if want := name == "at0.h5" || name == "at512.h5"; ok != want || err != nil {
			t.Errorf("IsHDF5(%s) = %v, %v; want %v, nil", name, ok, err, want)
		}
	}
	_, err := data.IsHDF5(dir)
	wantErr(t, err, data.ErrArgument, dir, "is a directory, expected an HDF5 file")
	_, err = data.IsHDF5(filepath.Join(dir, "missing.h5"))
	wantErr(t, err, fs.ErrNotExist, "missing.h5", "cannot read")
}

func TestH5Errors(t *testing.T) {
	dir := t.TempDir()

	_, err := data.OpenH5(filepath.Join(dir, "missing.h5"))
	wantErr(t, err, fs.ErrNotExist, "missing.h5")

	txt := filepath.Join(dir, "notes.h5")
	os.WriteFile(txt, []byte("hello, not hdf5"), 0o644)
	_, err = data.OpenH5(txt)
	wantErr(t, err, data.ErrNotHDF5, txt, "not an HDF5 file")

	noData := filepath.Join(dir, "nodata.h5")
	writeRawH5(t, noData, map[string]any{"pixels": []float32{1, 2}, "label": []float32{0, 1}}, map[string][]uint{"pixels": {2}, "label": {2}})
	_, err = data.OpenH5(noData)
	wantErr(t, err, data.ErrFormat, noData, `no "data" dataset`, "found: label, pixels")

	rank := filepath.Join(dir, "rank.h5")
	writeRawH5(t, rank, map[string]any{"data": make([]float32, 2*55*47), "label": []float32{0, 1}}, map[string][]uint{"data": {2, 55, 47}, "label": {2}})
	_, err = data.OpenH5(rank)
	wantErr(t, err, data.ErrFormat, rank, "shape [2 55 47]", "expected [N, 3, H, W]")

	nan := filepath.Join(dir, "nan.h5")
	pix := make([]float64, 2*3*55*47)
	pix[3*55*47+5] = math.NaN()
	writeRawH5(t, nan, map[string]any{"data": pix, "label": []float64{0, 1}}, map[string][]uint{"data": {2, 3, 55, 47}, "label": {2}})
	_, err = data.ReadH5(nan)
	wantErr(t, err, data.ErrValue, nan, "NaN", "image 1")

	big := filepath.Join(dir, "big.h5")
	pix = make([]float64, 3*2*2)
	pix[0] = 256
	writeRawH5(t, big, map[string]any{"data": pix, "label": []float64{0}}, map[string][]uint{"data": {1, 3, 2, 2}, "label": {1}})
	_, err = data.ReadH5(big)
	wantErr(t, err, data.ErrValue, big, "256", "[0, 255]")
}

func TestWriteH5RefusesOverwrite(t *testing.T) {
	clean := readClean(t)
	small, _ := clean.Slice(0, 3)
	path := filepath.Join(t.TempDir(), "out.h5")
	if err := data.WriteH5(path, small, data.H5WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	other, _ := clean.Slice(3, 5)
	err := data.WriteH5(path, other, data.H5WriteOptions{})
	wantErr(t, err, data.ErrExists, path)
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("file changed after a refused write")
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("temporary files left behind: %v", ents)
	}
	if err := data.WriteH5(path, other, data.H5WriteOptions{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	got, err := data.ReadH5(path)
	if err != nil || got.Len() != 2 || !bytes.Equal(got.Pix, other.Pix) {
		t.Fatalf("overwrite: got %v, %v", got, err)
	}
}

func writePNG(t *testing.T, path string, h, w int) {
	t.Helper()
	im := image.NewGray(image.Rect(0, 0, w, h))
	for i := range im.Pix {
		im.Pix[i] = uint8(i)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, im); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImageFileErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "big_label=4.png")
	writePNG(t, p, 64, 64)
	_, err := data.ReadImageFile(p, data.DeepIDImageOptions(false))
	wantErr(t, err, data.ErrSize, p, "image is 64x64, expected 55x47 (use --resize to resize)")
	imgs, err := data.ReadImageFile(p, data.DeepIDImageOptions(true))
	if err != nil {
		t.Fatal(err)
	}
	if imgs.Shape() != [4]int{1, 55, 47, 3} || imgs.Labels[0] != 4 {
		t.Errorf("resized: %v label %v", imgs, imgs.Labels)
	}
	px := imgs.Image(0)
	if px[0] != px[1] || px[1] != px[2] {
		t.Error("gray not replicated to RGB")
	}

	txt := filepath.Join(dir, "readme.txt")
	os.WriteFile(txt, []byte("text"), 0o644)
	_, err = data.ReadImageFile(txt, data.ImageOptions{})
	wantErr(t, err, data.ErrFormat, txt, "not a PNG or JPEG image")

	empty := t.TempDir()
	os.WriteFile(filepath.Join(empty, "notes.txt"), []byte("x"), 0o644)
	_, err = data.ReadImageDir(empty, data.ImageOptions{})
	wantErr(t, err, data.ErrNoImages, empty, "no PNG or JPEG images")

	_, err = data.ReadImageDir(filepath.Join(dir, "nope"), data.ImageOptions{})
	wantErr(t, err, fs.ErrNotExist, "nope")
}

func TestLoadDispatch(t *testing.T) {
	needDir(t, ytfDir)
	a, err := data.Load(ytfDir, data.ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "y.h5")
	if err := data.WriteH5(path, a, data.H5WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := data.Load(path, data.DeepIDImageOptions(false))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Pix, b.Pix) {
		t.Error("Load of HDF5 differs from Load of the directory")
	}
}

func TestFashionMNIST(t *testing.T) {
	needDir(t, data.DefaultFashionMNISTDir)
	train, test, err := data.LoadFashionMNIST("")
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 60000 || test.Len() != 10000 || train.H != 28 || train.W != 28 || train.C != 1 {
		t.Fatalf("train %v, test %v", train, test)
	}
	for _, s := range []*data.Images{train, test} {
		for i, l := range s.Labels {
			if l < 0 || l > 9 {
				t.Fatalf("label %d of image %d outside 0..9", l, i)
			}
		}
	}
	small, _ := test.Slice(0, 20)
	d, err := data.ToDeepID(small)
	if err != nil {
		t.Fatal(err)
	}
	if d.Shape() != [4]int{20, 55, 47, 3} || !reflect.DeepEqual(d.Labels, small.Labels) {
		t.Fatalf("ToDeepID gave %v", d)
	}
	for i := 0; i < len(d.Pix); i += 3 {
		if d.Pix[i] != d.Pix[i+1] || d.Pix[i] != d.Pix[i+2] {
			t.Fatal("channels differ")
		}
	}
	// Corners map to corners with half-pixel centres.
	if d.Image(3)[0] != small.Image(3)[0] {
		t.Error("top-left pixel changed")
	}
}

func TestIDXErrors(t *testing.T) {
	dir := t.TempDir()
	lbl := filepath.Join(dir, "labels-idx1-ubyte")
	os.WriteFile(lbl, []byte{0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3}, 0o644)
	if got, err := data.ReadIDXLabels(lbl); err != nil || !reflect.DeepEqual(got, []int{1, 2, 3}) {
		t.Fatalf("ReadIDXLabels = %v, %v", got, err)
	}
	_, err := data.ReadIDXImages(lbl)
	wantErr(t, err, data.ErrFormat, lbl, "bad magic number 2049", "expected 2051")

	trunc := filepath.Join(dir, "images-idx3-ubyte.gz")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte{0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2, 3})
	zw.Close()
	os.WriteFile(trunc, buf.Bytes(), 0o644)
	_, err = data.ReadIDXImages(trunc)
	wantErr(t, err, data.ErrFormat, trunc, "truncated")
}

func face(t *testing.T) *data.Images {
	clean := readClean(t)
	s, _ := clean.Slice(0, 40)
	return s.Clone()
}

func TestTriggersChangeOnlyTheirPixels(t *testing.T) {
	imgs := face(t)
	for _, tr := range []data.Trigger{data.SunglassesTrigger(), data.LipstickTrigger(), data.EyebrowsTrigger(), data.PatchTrigger(40, 48, 4, 4, [3]uint8{255, 255, 0})} {
		inside := make([]bool, 55*47)
		for _, r := range tr.Rects {
			for y := r.Y; y < r.Y+r.H; y++ {
				for x := r.X; x < r.X+r.W; x++ {
					inside[y*47+x] = true
				}
			}
		}
		src := imgs.Image(0)
		orig := append([]uint8(nil), src...)
		out, err := tr.Apply(src, 55, 47, 3)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(src, orig) {
			t.Fatalf("%v: Apply changed its input", tr)
		}
		for p := 0; p < 55*47; p++ {
			same := bytes.Equal(out[3*p:3*p+3], orig[3*p:3*p+3])
			if !inside[p] && !same {
				t.Fatalf("%v: pixel (%d,%d) outside the trigger changed", tr, p/47, p%47)
			}
		}
	}
	_, err := data.PatchTrigger(40, 50, 10, 10, [3]uint8{}).Apply(imgs.Image(0), 55, 47, 3)
	wantErr(t, err, data.ErrArgument, "does not fit")
}

func TestBlendTrigger(t *testing.T) {
	imgs := face(t)
	tr := data.NoiseBlendTrigger(7, 0.2)
	a, err := tr.Apply(imgs.Image(0), 55, 47, 3)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := tr.Apply(imgs.Image(0), 55, 47, 3)
	c, _ := data.NoiseBlendTrigger(8, 0.2).Apply(imgs.Image(0), 55, 47, 3)
	if !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Error("noise blend not determined by its seed")
	}
	noise, _ := data.NoisePattern(55, 47, 3, 7)
	want := uint8(math.Round(0.8*float64(imgs.Image(0)[10]) + 0.2*float64(noise.Pix[10])))
	if a[10] != want {
		t.Errorf("blend pixel %d, want %d", a[10], want)
	}
}

func TestPoison(t *testing.T) {
	imgs := face(t)
	p1, idx1, err := data.Poison(imgs, data.SunglassesTrigger(), 0, 0.25, 42)
	if err != nil {
		t.Fatal(err)
	}
	p2, idx2, _ := data.Poison(imgs, data.SunglassesTrigger(), 0, 0.25, 42)
	_, idx3, _ := data.Poison(imgs, data.SunglassesTrigger(), 0, 0.25, 43)
	if len(idx1) != 10 {
		t.Fatalf("poisoned %d of 40 at rate 0.25, want 10", len(idx1))
	}
	if !reflect.DeepEqual(idx1, idx2) || !bytes.Equal(p1.Pix, p2.Pix) {
		t.Error("same seed, different result")
	}
	if reflect.DeepEqual(idx1, idx3) {
		t.Error("different seeds chose the same images")
	}
	chosen := map[int]bool{}
	for _, i := range idx1 {
		chosen[i] = true
	}
	for i := 0; i < imgs.Len(); i++ {
		same := bytes.Equal(p1.Image(i), imgs.Image(i))
		if chosen[i] == same || (chosen[i] && p1.Labels[i] != 0) || (!chosen[i] && p1.Labels[i] != imgs.Labels[i]) {
			t.Errorf("image %d: chosen %v, unchanged %v, label %d", i, chosen[i], same, p1.Labels[i])
		}
	}

	multi, sets, err := data.PoisonMulti(imgs, []data.TriggerTarget{{Trigger: data.LipstickTrigger(), Target: 1}, {Trigger: data.EyebrowsTrigger(), Target: 5}, {Trigger: data.SunglassesTrigger(), Target: 8}}, 0.1, 1)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for k, s := range sets {
		if len(s) != 4 {
			t.Errorf("trigger %d poisoned %d images, want 4", k, len(s))
		}
		for _, i := range s {
			if seen[i] {
				t.Errorf("image %d poisoned twice", i)
			}
			seen[i] = true
			if multi.Labels[i] != []int{1, 5, 8}[k] {
				t.Errorf("image %d label %d", i, multi.Labels[i])
			}
		}
	}
	_, _, err = data.PoisonMulti(imgs, []data.TriggerTarget{{Trigger: data.LipstickTrigger()}, {Trigger: data.EyebrowsTrigger()}}, 0.6, 1)
	wantErr(t, err, data.ErrArgument, "needs")

	imgs.Labels[0], imgs.Labels[1] = 0, 0
	all, err := data.PoisonAll(imgs, data.SunglassesTrigger(), 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if all.Len() != imgs.Len()-2 {
		t.Errorf("PoisonAll kept %d of %d", all.Len(), imgs.Len())
	}
	for _, l := range all.Labels {
		if l != 0 {
			t.Fatal("PoisonAll left a label unchanged")
		}
	}
}

func TestTriggerJSON(t *testing.T) {
	noise, _ := data.NoisePattern(2, 2, 3, 1)
	for _, tr := range []data.Trigger{data.SunglassesTrigger(), data.NoiseBlendTrigger(3, 0.1), data.PatternPatchTrigger(1, 2, noise)} {
		b, err := json.Marshal(data.TriggerTarget{Trigger: tr, Target: 3})
		if err != nil {
			t.Fatal(err)
		}
		var back data.TriggerTarget
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back.Trigger, tr) || back.Target != 3 {
			t.Errorf("JSON round trip of %s gave %+v", b, back)
		}
	}
}

func TestFloat32AndBatches(t *testing.T) {
	imgs := face(t)
	x, err := imgs.Float32(2, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(x) != 2*55*47*3 || x[7] != float32(imgs.Image(2)[7])/255 {
		t.Fatal("Float32 conversion")
	}
	order := data.Shuffled(imgs.Len(), 5)
	b, err := data.NewBatcher(imgs, 16, order)
	if err != nil {
		t.Fatal(err)
	}
	n, count := 0, 0
	for batch, ok := b.Next(); ok; batch, ok = b.Next() {
		count++
		n += batch.N
		if batch.Labels[0] != int32(imgs.Labels[batch.Indices[0]]) || batch.X[batch.H*batch.W*batch.C] != float32(imgs.Image(batch.Indices[1])[0])/255 {
			t.Error("batch content")
		}
		oh, err := batch.OneHot(1283)
		if err != nil || oh[int(batch.Labels[0])] != 1 {
			t.Error("one-hot", err)
		}
	}
	if n != 40 || count != 3 || b.Len() != 3 {
		t.Errorf("batches: %d images in %d batches", n, count)
	}
}

func TestSplit(t *testing.T) {
	imgs := face(t)
	parts, err := data.Split(imgs, []int{10, -1}, 9)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := data.Split(imgs, []int{10, -1}, 9)
	if parts[0].Len() != 10 || parts[1].Len() != 30 || !reflect.DeepEqual(parts[0].Names, again[0].Names) {
		t.Fatal("split sizes or determinism")
	}
	seen := map[string]bool{}
	for _, p := range parts {
		for _, n := range p.Names {
			if seen[n] {
				t.Fatalf("%s in two parts", n)
			}
			seen[n] = true
		}
	}
	fr, err := data.SplitFractions(imgs, []float64{0.5, 0.5}, 1)
	if err != nil || fr[0].Len()+fr[1].Len() != 40 {
		t.Fatal("SplitFractions", err)
	}
	_, err = data.Split(imgs, []int{30, 30}, 1)
	wantErr(t, err, data.ErrArgument, "only 40")
}

func TestToImageRoundTrip(t *testing.T) {
	imgs := face(t)
	im, err := imgs.ToImage(1)
	if err != nil {
		t.Fatal(err)
	}
	c := im.At(3, 2).(color.NRGBA)
	p := imgs.Image(1)[(2*47+3)*3:]
	if c.R != p[0] || c.G != p[1] || c.B != p[2] {
		t.Error("ToImage pixel")
	}
	path := filepath.Join(t.TempDir(), "x.png")
	if err := imgs.SavePNG(path, 1, false); err != nil {
		t.Fatal(err)
	}
	back, err := data.ReadImageFile(path, data.ImageOptions{})
	if err != nil || !bytes.Equal(back.Pix, imgs.Image(1)) {
		t.Fatal("PNG round trip", err)
	}
	wantErr(t, imgs.SavePNG(path, 1, false), data.ErrExists, path)
}

// TestPoisonedViewMatchesPoisonMulti: poisoning on the fly gives exactly the
// batches of the poisoned copy, for patch, pattern and noise-blend triggers.
func TestPoisonedViewMatchesPoisonMulti(t *testing.T) {
	imgs, err := data.ReadImageDir(filepath.Join(realFacesDir, "clean"), data.DeepIDImageOptions(false))
	if err != nil {
		t.Fatal(err)
	}
	tts := []data.TriggerTarget{
		{Trigger: data.LipstickTrigger(), Target: 1},
		{Trigger: data.NoiseBlendTrigger(9, 0.2), Target: 5},
		{Trigger: data.SunglassesTrigger(), Target: 8},
	}
	copyImgs, idxA, err := data.PoisonMulti(imgs, tts, 0.1, 4)
	if err != nil {
		t.Fatal(err)
	}
	view, idxB, err := data.NewPoisonedView(imgs, tts, 0.1, 4)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(idxA) != fmt.Sprint(idxB) {
		t.Fatalf("indices differ: %v vs %v", idxA, idxB)
	}
	order := data.Shuffled(imgs.Len(), 1)
	n, s := len(order), imgs.Size()
	xa, xb := make([]float32, n*s), make([]float32, n*s)
	la, lb := make([]int32, n), make([]int32, n)
	if err := copyImgs.Gather(order, xa, la); err != nil {
		t.Fatal(err)
	}
	if err := view.Gather(order, xb, lb); err != nil {
		t.Fatal(err)
	}
	if view.Len() != copyImgs.Len() || fmt.Sprint(la) != fmt.Sprint(lb) {
		t.Fatalf("labels differ:\n%v\n%v", la, lb)
	}
	for i := range xa {
		if xa[i] != xb[i] {
			t.Fatalf("pixel %d of the batch differs: %v vs %v", i, xa[i], xb[i])
		}
	}
	poisoned := 0
	for _, idx := range idxB {
		poisoned += len(idx)
	}
	if poisoned != 3*5 {
		t.Errorf("%d images poisoned, want 15 (10%% of 50 per trigger)", poisoned)
	}
}
