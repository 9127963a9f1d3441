package data_test

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"gonum.org/v1/hdf5"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/internal/fuzzcorpus"
	"github.com/bbd-workbench/bbd/internal/h5"
	"github.com/bbd-workbench/bbd/internal/pyoracle"
)

// allocated runs f and returns the bytes it allocated.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// pngHeader returns a PNG declaring a w x h gray image whose data stream
// (a little zlib-compressed zero data) ends early.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		body := append([]byte(typ), data...)
		b.Write(body)
		binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(body))
	}
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	chunk("IHDR", append(ihdr, 8, 0, 0, 0, 0)) // 8-bit gray
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(make([]byte, 4096))
	zw.Close()
	chunk("IDAT", z.Bytes())
	chunk("IEND", nil)
	return b.Bytes()
}

// TestPNGHugeDeclaredSize: a small PNG declaring 60000x60000 pixels is
// refused from its header, before any pixel memory is allocated (before: 3.6
// GB allocated, and 14 GB for a file that decodes).
func TestPNGHugeDeclaredSize(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bomb.png")
	os.WriteFile(p, pngHeader(60000, 60000), 0o644)
	for _, opts := range []data.ImageOptions{{}, data.DeepIDImageOptions(true)} {
		var err error
		n := allocated(func() { _, err = data.ReadImageFile(p, opts) })
		wantErr(t, err, data.ErrSize, p, "60000x60000")
		if n > 16<<20 {
			t.Errorf("%+v: allocated %d MB", opts, n>>20)
		}
	}
	// A size that is allowed but not the expected one (no --resize) is
	// refused before decoding too.
	os.WriteFile(p, pngHeader(4000, 4000), 0o644)
	var err error
	n := allocated(func() { _, err = data.ReadImageDir(dir, data.DeepIDImageOptions(false)) })
	wantErr(t, err, data.ErrSize, p, "4000x4000", "55x47")
	if n > 4<<20 {
		t.Errorf("allocated %d MB", n>>20)
	}
}

// TestIDXDeclaredSizes: IDX dimensions whose product overflows are refused
// (before: 2^22 x 2^22 x 2^22 wrapped to 0 and "succeeded"), and a truncated
// file declaring a large (allowed) size costs what the file holds, not what
// it declares.
func TestIDXDeclaredSizes(t *testing.T) {
	dir := t.TempDir()
	header := func(dims ...uint32) []byte {
		b := binary.BigEndian.AppendUint32(nil, data.IDXImagesMagic)
		for _, d := range dims {
			b = binary.BigEndian.AppendUint32(b, d)
		}
		return append(b, 1, 2, 3, 4)
	}
	p := filepath.Join(dir, "overflow-idx3-ubyte")
	os.WriteFile(p, header(1<<22, 1<<22, 1<<22), 0o644)
	_, err := data.ReadIDXImages(p)
	wantErr(t, err, data.ErrFormat, p, "implausible image dimensions")

	p = filepath.Join(dir, "truncated-idx3-ubyte")
	os.WriteFile(p, header(5000, 400, 400), 0o644) // declares 800 MB
	n := allocated(func() { _, err = data.ReadIDXImages(p) })
	wantErr(t, err, data.ErrFormat, p, "truncated")
	if n > 16<<20 {
		t.Errorf("allocated %d MB for a 20-byte file", n>>20)
	}

	lbl := filepath.Join(dir, "labels-idx1-ubyte")
	os.WriteFile(lbl, append(binary.BigEndian.AppendUint32(nil, data.IDXLabelsMagic), 0x7f, 0xff, 0xff, 0xff, 1), 0o644)
	n = allocated(func() { _, err = data.ReadIDXLabels(lbl) })
	wantErr(t, err, data.ErrFormat, lbl, "truncated")
	if n > 16<<20 {
		t.Errorf("labels: allocated %d MB for a 9-byte file", n>>20)
	}
}

// writeTyped writes one dataset of dtype with the given raw bytes (nil: not
// written, so the file stays small whatever the shape declares).
func writeTyped(t *testing.T, f *hdf5.File, name string, dtype *hdf5.Datatype, dims []uint, raw []byte) {
	t.Helper()
	sp, err := hdf5.CreateSimpleDataspace(dims, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	ds, err := f.CreateDataset(name, dtype, sp)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	if raw != nil {
		if err := ds.Write(&raw); err != nil {
			t.Fatal(err)
		}
	}
}

// TestH5HugeDeclaredData: a small competition file declaring a huge "data"
// dataset is refused by ReadH5 before anything is allocated (before: an
// allocation of the declared size, fatal), and streaming it reads bounded
// batches.
func TestH5HugeDeclaredData(t *testing.T) {
	p := filepath.Join(t.TempDir(), "huge.h5")
	f, err := hdf5.CreateFile(p, hdf5.F_ACC_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	writeTyped(t, f, "data", hdf5.T_IEEE_F32LE, []uint{1 << 20, 3, 2048, 2048}, nil)
	writeTyped(t, f, "label", hdf5.T_IEEE_F32LE, []uint{1 << 20}, nil)
	f.Close()
	n := allocated(func() { _, err = data.ReadH5(p) })
	wantErr(t, err, nil, p, "read fewer at a time")
	if n > 16<<20 {
		t.Errorf("allocated %d MB", n>>20)
	}
	r, err := data.OpenH5(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n = allocated(func() { _, err = r.ReadBatch(0, 2) })
	if err != nil {
		t.Fatal(err)
	}
	if n > 200<<20 { // 2 images of 12 MiB as bytes, 4 MiB of float64 at a time
		t.Errorf("a batch of 2 allocated %d MB", n>>20)
	}
}

// TestH5ConvertsTypes: "data" stored as big-endian float32 and "label" as
// big-endian int16 are read converted (before: refused or misread).
func TestH5ConvertsTypes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "be.h5")
	f, err := hdf5.CreateFile(p, hdf5.F_ACC_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	var pix, lbl []byte
	for i := 0; i < 2*3*2*2; i++ {
		pix = binary.BigEndian.AppendUint32(pix, math.Float32bits(float32(i*10)))
	}
	lbl = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 7), 0xffff) // 7, -1
	writeTyped(t, f, "data", hdf5.T_IEEE_F32BE, []uint{2, 3, 2, 2}, pix)
	writeTyped(t, f, "label", hdf5.T_STD_I16BE, []uint{2}, lbl)
	f.Close()
	imgs, err := data.ReadH5(p)
	if err != nil {
		t.Fatal(err)
	}
	// data[n=1, c=2, y=1, x=0] = (12+8+2)*10 -> Pix[((1*2+1)*2+0)*3+2]
	if imgs.Labels[0] != 7 || imgs.Labels[1] != -1 || imgs.Pix[((1*2+1)*2+0)*3+2] != 220 {
		t.Errorf("labels %v, pixel %d", imgs.Labels, imgs.Pix[((1*2+1)*2+0)*3+2])
	}
	r, _ := data.OpenH5(p)
	if r.DataType() != "float32 big-endian" {
		t.Errorf("DataType %q", r.DataType())
	}
	r.Close()
}

// TestWriteH5OverwriteOnlyHDF5: with Overwrite, WriteH5 replaced whatever
// file was at the path; now only an HDF5 file is replaced. Files get the
// umask's mode (they were 0600), and temporary files of killed runs go.
func TestWriteH5OverwriteOnlyHDF5(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	imgs, _ := data.NewImages(2, 3, 4, 3)
	dir := t.TempDir()
	notes := filepath.Join(dir, "notes.txt")
	os.WriteFile(notes, []byte("precious"), 0o644)
	err := data.WriteH5(notes, imgs, data.H5WriteOptions{Overwrite: true})
	wantErr(t, err, data.ErrExists, notes, "not an HDF5 file")
	if b, _ := os.ReadFile(notes); string(b) != "precious" {
		t.Error("the file was replaced")
	}
	p := filepath.Join(dir, "out.h5")
	os.WriteFile(filepath.Join(dir, ".out.h5.tmp-4242424"), []byte("half written"), 0o600) // an older bbd's temporary file
	if err := data.WriteH5(p, imgs, data.H5WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := data.WriteH5(p, imgs, data.H5WriteOptions{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v (%v), want 0644", st.Mode().Perm(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("left in the folder: %v", ents)
	}
}

// TestH5LinksNotFollowed: a "data" dataset that is a soft or external link
// (to anywhere on the defender's disk) is refused, not followed.
func TestH5LinksNotFollowed(t *testing.T) {
	if _, err := pyoracle.Python(); err != nil {
		t.Skip(err)
	}
	imgs, _ := data.NewImages(2, 3, 4, 3)
	for _, kind := range []string{"soft", "external"} {
		p := filepath.Join(t.TempDir(), kind+".h5")
		if err := data.WriteH5(p, imgs, data.H5WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := pyoracle.Run(nil, "hostile_h5.py", p, kind, "data"); err != nil {
			t.Fatal(err)
		}
		_, err := data.OpenH5(p)
		wantErr(t, err, data.ErrFormat, p, `"data" is a soft or external link`)
	}
}

// TestH5CrashersAreErrors: a competition file whose root group's symbol
// table (B-tree node) is corrupt, found by FuzzOpenH5 (a seed now), crashes
// Debian 12's HDF5 1.10 in H5Gget_info -> H5G__stab_count -> H5B_iterate ->
// H5G__node_sumup -> H5F__accum_read -> memcpy. It is read in a child
// process (internal/h5.File): OpenH5 and ReadH5 return one error
// naming the file and the crash, and this process goes on.
func TestH5CrashersAreErrors(t *testing.T) {
	p := fuzzcorpus.TempFile(t, filepath.Join("testdata", "fuzz", "FuzzOpenH5", "a67b1ad18c0dcd31"), "btree.h5")
	for _, read := range []func(string) error{
		func(p string) error { _, err := data.OpenH5(p); return err },
		func(p string) error { _, err := data.ReadH5(p); return err },
	} {
		err := read(p)
		var crash *h5.CrashError
		if !errors.As(err, &crash) || !errors.Is(err, h5.ErrCrashed) || !errors.Is(err, data.ErrFormat) {
			t.Fatalf("got %v, expected an *h5.CrashError of kind ErrFormat", err)
		}
		want := p + ": expected a readable HDF5 file, found one that crashed libhdf5 (SIGSEGV) reading its group structure (/): the file is malformed"
		if err.Error() != want {
			t.Errorf("got  %q\nwant %q", err, want)
		}
	}
}

// TestH5HugeElementType: a file whose "data" declares float values of
// 3640655876 bytes each, found by FuzzOpenH5 (a seed), made HDF5 1.10
// allocate 3.8 GB to convert the first rows (and the fuzzing process die).
// Numbers of more than 16 bytes are refused before anything is read.
func TestH5HugeElementType(t *testing.T) {
	p := fuzzcorpus.TempFile(t, filepath.Join("testdata", "fuzz", "FuzzOpenH5", "d5445ad91fcf4b69"), "huge-type.h5")
	_, err := data.OpenH5(p)
	want := p + `: dataset "data" has element type float of 3640655876 bytes, expected integers or floating-point numbers`
	if !errors.Is(err, data.ErrFormat) || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}
