package tfmodels_test

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/hdf5"

	"github.com/bbd-workbench/bbd/internal/fuzzcorpus"
	"github.com/bbd-workbench/bbd/internal/h5"
	"github.com/bbd-workbench/bbd/internal/pyoracle"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// TestBadNetsMatchKeras compares, for each of the four real CSAW BadNets, the
// Go graph's probabilities on the YouTube-Face samples with Keras in Python
// TensorFlow loading the same weights into the same architecture.
func TestBadNetsMatchKeras(t *testing.T) {
	dir := filepath.Join(shared, "ytf-samples")
	files, x := loadImages(t, dir)
	for _, name := range badnets {
		t.Run(name, func(t *testing.T) {
			m, err := tfmodels.ImportKerasH5(badnetPath(name), nil, tfmodels.BuildOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			got, err := m.Predict(x, len(files))
			if err != nil {
				t.Fatal(err)
			}
			var ref struct {
				Files []string
				Probs [][]float32
			}
			if err := pyoracle.Run(&ref, "predict_csaw.py", badnetPath(name), dir); err != nil {
				t.Fatal(err)
			}
			if len(ref.Probs) != len(files) {
				t.Fatalf("oracle returned %d rows for %d files", len(ref.Probs), len(files))
			}
			for i, f := range ref.Files {
				if i >= len(files) || filepath.Base(f) != files[i] {
					t.Fatalf("oracle read the files in another order: %q, Go: %q", ref.Files, files)
				}
			}
			maxDiff := 0.0
			for i, row := range ref.Probs {
				for j, p := range row {
					maxDiff = math.Max(maxDiff, math.Abs(float64(p-got[i*m.NumClasses+j])))
				}
			}
			t.Logf("%s: max |Go - Keras| = %.3g over %d x %d probabilities", name, maxDiff, len(files), m.NumClasses)
			if maxDiff > 1e-5 {
				t.Errorf("max abs difference %.3g > 1e-5", maxDiff)
			}
			// The frozen copy (weights as constants) that bbd predicts with.
			frozen, err := m.Freeze()
			if err != nil {
				t.Fatal(err)
			}
			defer frozen.Close()
			fgot, err := frozen.Predict(x, len(files))
			if err != nil {
				t.Fatal(err)
			}
			maxDiff = 0
			for i, row := range ref.Probs {
				for j, p := range row {
					maxDiff = math.Max(maxDiff, math.Abs(float64(p-fgot[i*m.NumClasses+j])))
				}
			}
			t.Logf("%s frozen: max |Go - Keras| = %.3g", name, maxDiff)
			if maxDiff > 1e-5 {
				t.Errorf("frozen: max abs difference %.3g > 1e-5", maxDiff)
			}
		})
	}
}

var labelRE = regexp.MustCompile(`label=(\d+)`)

// TestBadNetLabels checks the BadNets' behaviour on real faces: the sunglasses
// BadNet labels clean faces correctly and sunglasses faces as 0; anonymous_1
// labels its poisoned faces 0.
func TestBadNetLabels(t *testing.T) {
	files, x := loadImages(t, filepath.Join(shared, "ytf-samples"))
	per := 55 * 47 * 3
	check := func(name, prefix string) {
		m, err := tfmodels.ImportKerasH5(badnetPath(name), nil, tfmodels.BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		probs, err := m.Predict(x, len(files))
		if err != nil {
			t.Fatal(err)
		}
		labels := tfmodels.Labels(probs, m.NumClasses)
		n := 0
		for i, f := range files {
			base := filepath.Base(f)
			if len(base) < len(prefix) || base[:len(prefix)] != prefix {
				continue
			}
			want, _ := strconv.Atoi(labelRE.FindStringSubmatch(base)[1])
			if labels[i] != want {
				t.Errorf("%s BadNet labels %s as %d, want %d", name, base, labels[i], want)
			}
			n++
		}
		if n == 0 {
			t.Fatalf("no %s* files", prefix)
		}
		_ = per
	}
	check("sunglasses", "cl_")
	check("sunglasses", "sun_")
	check("anonymous_1", "ano_")
}

func TestParamCount(t *testing.T) {
	m, err := tfmodels.ImportKerasH5(badnetPath("sunglasses"), nil, tfmodels.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := m.ParamCount(); got != 601643 {
		t.Errorf("ParamCount = %d, want 601643", got)
	}
}

// tinyArch is a small architecture for hand-made Keras files: conv [2,2,1,2]
// and bias [2], out kernel [18,3] and bias [3].
func tinyArch() *tfmodels.Architecture {
	return &tfmodels.Architecture{Name: "tiny", Output: "out", Layers: []tfmodels.LayerSpec{
		{Name: "input", Kind: tfmodels.KindInput, Shape: []int{4, 4, 1}},
		{Name: "conv", Kind: tfmodels.KindConv2D, Inputs: []string{"input"}, Filters: 2, KernelSize: [2]int{2, 2}, Activation: tfmodels.ActReLU},
		{Name: "flat", Kind: tfmodels.KindFlatten, Inputs: []string{"conv"}},
		{Name: "out", Kind: tfmodels.KindDense, Inputs: []string{"flat"}, Units: 3, Activation: tfmodels.ActSoftmax},
	}}
}

// h5set is one dataset of a hand-made HDF5 file: values (a slice) are
// written unless nil; dims nil means a scalar.
type h5set struct {
	path   string
	dtype  *hdf5.Datatype
	dims   []uint
	values any
}

// tinySets returns the datasets of a weights-only file of tinyArch, float32,
// with values 0.01 * (index + 1).
func tinySets() []h5set {
	var sets []h5set
	for _, w := range []struct {
		path string
		dims []uint
	}{{"/conv/conv/kernel:0", []uint{2, 2, 1, 2}}, {"/conv/conv/bias:0", []uint{2}}, {"/out/out/kernel:0", []uint{18, 3}}, {"/out/out/bias:0", []uint{3}}} {
		n := uint(1)
		for _, d := range w.dims {
			n *= d
		}
		v := make([]float64, n)
		for i := range v {
			v[i] = 0.01 * float64(i+1)
		}
		sets = append(sets, h5set{w.path, hdf5.T_IEEE_F32LE, w.dims, v})
	}
	return sets
}

// writeKerasH5 writes sets (creating their groups) to a new HDF5 file. Values
// are given as []float64 and written converted to each dataset's type.
func writeKerasH5(t testing.TB, file string, sets []h5set) {
	t.Helper()
	f, err := hdf5.CreateFile(file, hdf5.F_ACC_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, s := range sets {
		parts := strings.Split(strings.Trim(s.path, "/"), "/")
		for i := 1; i < len(parts); i++ {
			g := strings.Join(parts[:i], "/")
			if !f.LinkExists(g) {
				grp, err := f.CreateGroup(g)
				if err != nil {
					t.Fatal(err)
				}
				grp.Close()
			}
		}
		var sp *hdf5.Dataspace
		if s.dims == nil {
			sp, err = hdf5.CreateDataspace(hdf5.S_SCALAR)
		} else {
			sp, err = hdf5.CreateSimpleDataspace(s.dims, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		ds, err := f.CreateDataset(strings.Trim(s.path, "/"), s.dtype, sp)
		sp.Close()
		if err != nil {
			t.Fatalf("creating %s: %v", s.path, err)
		}
		if v, ok := s.values.([]float64); ok {
			// The bindings write with the dataset's own type: encode to it.
			raw := encode(t, v, s.dtype)
			if err := ds.Write(&raw); err != nil {
				t.Fatalf("writing %s: %v", s.path, err)
			}
		}
		ds.Close()
	}
}

// encode returns values as the bytes of dtype (little- or big-endian float32
// or float64, little-endian int32).
func encode(t testing.TB, values []float64, dtype *hdf5.Datatype) []byte {
	t.Helper()
	var out []byte
	for _, v := range values {
		switch {
		case dtype.Equal(hdf5.T_IEEE_F32LE):
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(float32(v)))
		case dtype.Equal(hdf5.T_IEEE_F32BE):
			out = binary.BigEndian.AppendUint32(out, math.Float32bits(float32(v)))
		case dtype.Equal(hdf5.T_IEEE_F64LE):
			out = binary.LittleEndian.AppendUint64(out, math.Float64bits(v))
		case dtype.Equal(hdf5.T_IEEE_F64BE):
			out = binary.BigEndian.AppendUint64(out, math.Float64bits(v))
		case dtype.Equal(hdf5.T_STD_I32LE):
			out = binary.LittleEndian.AppendUint32(out, uint32(int32(v)))
		default:
			t.Fatalf("encode: unsupported type")
		}
	}
	return out
}

// readTiny reads a hand-made file with tinyArch, failing the test after 60 s
// instead of hanging.
func readTiny(t *testing.T, file string) (*tfmodels.KerasFile, error) {
	t.Helper()
	type result struct {
		kf  *tfmodels.KerasFile
		err error
	}
	done := make(chan result, 1)
	go func() {
		kf, err := tfmodels.ReadKerasH5(file, tinyArch())
		done <- result{kf, err}
	}()
	select {
	case r := <-done:
		return r.kf, r.err
	case <-time.After(60 * time.Second):
		t.Fatalf("ReadKerasH5(%s) still running after 60 s", file)
	}
	return nil, nil
}

// TestKerasWeightDtypes: weights stored as float64, big-endian float32 and
// float16 are read converted to float32 (before, float64 overflowed the
// buffer and the others loaded as garbage); a float64 beyond float32's range
// is an error naming the dataset.
func TestKerasWeightDtypes(t *testing.T) {
	dir := t.TempDir()
	want := tinySets()
	check := func(name string, kf *tfmodels.KerasFile, err error, tol float64) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, s := range want {
			parts := strings.Split(strings.Trim(s.path, "/"), "/")
			key := parts[0] + "/" + strings.TrimSuffix(parts[2], ":0")
			w := kf.Weights[key]
			if w == nil {
				t.Fatalf("%s: no weight %s", name, key)
			}
			for i, v := range s.values.([]float64) {
				if math.Abs(float64(w.Values[i])-v) > tol {
					t.Fatalf("%s: %s[%d] = %v, want %v", name, key, i, w.Values[i], v)
				}
			}
		}
	}
	for _, c := range []struct {
		name  string
		dtype *hdf5.Datatype
	}{{"float64", hdf5.T_IEEE_F64LE}, {"float32be", hdf5.T_IEEE_F32BE}, {"float64be", hdf5.T_IEEE_F64BE}} {
		sets := tinySets()
		for i := range sets {
			sets[i].dtype = c.dtype
		}
		file := filepath.Join(dir, c.name+".h5")
		writeKerasH5(t, file, sets)
		kf, err := readTiny(t, file)
		check(c.name, kf, err, 1e-7)
	}

	big := tinySets()
	big[2].dtype = hdf5.T_IEEE_F64LE
	big[2].values.([]float64)[5] = 1e300
	file := filepath.Join(dir, "overflow.h5")
	writeKerasH5(t, file, big)
	if _, err := readTiny(t, file); err == nil || !strings.Contains(err.Error(), "/out/out/kernel:0") || !strings.Contains(err.Error(), "range") {
		t.Errorf("float64 beyond float32's range: got %v", err)
	}

	if _, err := pyoracle.Python(); err != nil {
		t.Skip(err)
	}
	file = filepath.Join(dir, "float16.h5")
	writeKerasH5(t, file, tinySets())
	for _, s := range want {
		if err := pyoracle.Run(nil, "hostile_h5.py", file, "float16", s.path); err != nil {
			t.Fatal(err)
		}
	}
	kf, err := readTiny(t, file)
	check("float16", kf, err, 1e-3)
}

// TestKerasWrongWeights: a second kernel dataset in a layer group, a scalar
// kernel, a dataset of another name and integer weights are errors naming
// the file and the dataset (before: the last kernel won, the scalar panicked).
func TestKerasWrongWeights(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		edit func([]h5set) []h5set
		want []string
	}{
		{"second kernel", func(s []h5set) []h5set {
			return append(s, h5set{"/conv/conv/kernel_1:0", hdf5.T_IEEE_F32LE, []uint{2, 2, 1, 2}, make([]float64, 8)})
		}, []string{"layer conv", "one kernel dataset", "/conv/conv/kernel:0", "/conv/conv/kernel_1:0"}},
		{"kernel elsewhere in the group", func(s []h5set) []h5set {
			return append(s, h5set{"/out/evil/kernel", hdf5.T_IEEE_F32LE, []uint{18, 3}, make([]float64, 54)})
		}, []string{"one kernel dataset", "/out/evil/kernel"}},
		{"scalar kernel", func(s []h5set) []h5set {
			s[2] = h5set{s[2].path, hdf5.T_IEEE_F32LE, nil, []float64{1}}
			return s
		}, []string{"/out/out/kernel:0", "shape [18 3]", "a scalar"}},
		{"wrong shape", func(s []h5set) []h5set {
			s[0] = h5set{s[0].path, hdf5.T_IEEE_F32LE, []uint{8}, make([]float64, 8)}
			return s
		}, []string{"/conv/conv/kernel:0", "shape [2 2 1 2]", "shape [8]"}},
		{"other name", func(s []h5set) []h5set {
			return append(s, h5set{"/conv/conv/kernel_extra", hdf5.T_IEEE_F32LE, []uint{2}, make([]float64, 2)})
		}, []string{"/conv/conv/kernel_extra", "a kernel or bias dataset"}},
		{"integers", func(s []h5set) []h5set {
			s[1].dtype = hdf5.T_STD_I32LE
			s[1].values = []float64{1, 2}
			return s
		}, []string{"/conv/conv/bias:0", "floating-point weights", "int32"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".h5")
			writeKerasH5(t, file, c.edit(tinySets()))
			_, err := readTiny(t, file)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range append(c.want, file) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestKerasHugeDeclaredWeights: a small file declaring a huge weight dataset
// (never written, so it costs nothing on disk) is refused on its shape before
// anything is read: no large allocation.
func TestKerasHugeDeclaredWeights(t *testing.T) {
	file := filepath.Join(t.TempDir(), "huge.h5")
	sets := tinySets()
	sets[2] = h5set{sets[2].path, hdf5.T_IEEE_F32LE, []uint{18 << 22, 3}, nil} // 2^26 values: 1.1 GB as float32
	writeKerasH5(t, file, sets)
	if st, err := os.Stat(file); err != nil || st.Size() > 1<<20 {
		t.Fatalf("test file: %v, %d bytes", err, st.Size())
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := readTiny(t, file)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "shape [18 3]") || !strings.Contains(err.Error(), "shape [75497472 3]") {
		t.Errorf("got %v", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
		t.Errorf("reading allocated %d MB", d>>20)
	}
	// An architecture whose weights alone exceed MaxWeightValues is refused.
	arch := tinyArch()
	arch.Layers[3].Units = 1 << 25
	if _, err := tfmodels.WeightShapes(arch); err == nil || !strings.Contains(err.Error(), "out/kernel") {
		t.Errorf("WeightShapes of a huge Dense layer: %v", err)
	}
}

// TestKerasHardLinkCycle: a layer group holding a hard link to itself is
// walked once (before: the walker recursed forever with growing memory).
func TestKerasHardLinkCycle(t *testing.T) {
	if _, err := pyoracle.Python(); err != nil {
		t.Skip(err)
	}
	file := filepath.Join(t.TempDir(), "cycle.h5")
	writeKerasH5(t, file, tinySets())
	if err := pyoracle.Run(nil, "hostile_h5.py", file, "cycle", "/conv/conv"); err != nil {
		t.Fatal(err)
	}
	kf, err := readTiny(t, file)
	if err != nil {
		t.Fatal(err)
	}
	if w := kf.Weights["conv/kernel"]; w == nil || len(w.Values) != 8 {
		t.Errorf("conv/kernel: %+v", w)
	}
}

// TestKerasLinksNotFollowed: a soft or external link in a layer group (which
// could lead anywhere on the defender's disk, or in circles) is an error
// naming it.
func TestKerasLinksNotFollowed(t *testing.T) {
	if _, err := pyoracle.Python(); err != nil {
		t.Skip(err)
	}
	for _, kind := range []string{"soft", "external"} {
		file := filepath.Join(t.TempDir(), kind+".h5")
		writeKerasH5(t, file, tinySets())
		if err := pyoracle.Run(nil, "hostile_h5.py", file, kind, "/out/out/elsewhere"); err != nil {
			t.Fatal(err)
		}
		_, err := readTiny(t, file)
		if err == nil || !strings.Contains(err.Error(), "/out/out/elsewhere") || !strings.Contains(err.Error(), "hard links only") {
			t.Errorf("%s link: got %v", kind, err)
		}
	}
}

// TestKerasConfigAttributeNotString: a model_config attribute that is not one
// string (here 1000 int32) is an error, not a read into a too small buffer.
func TestKerasConfigAttributeNotString(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.h5")
	writeKerasH5(t, file, tinySets())
	f, err := hdf5.OpenFile(file, hdf5.F_ACC_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	root, err := f.OpenGroup("/")
	if err != nil {
		t.Fatal(err)
	}
	sp, _ := hdf5.CreateSimpleDataspace([]uint{1000}, nil)
	a, err := root.CreateAttribute("model_config", hdf5.T_NATIVE_INT32, sp)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]int32, 1000)
	if err := a.Write(&v[0], hdf5.T_NATIVE_INT32); err != nil {
		t.Fatal(err)
	}
	a.Close()
	sp.Close()
	root.Close()
	f.Close()
	_, err = tfmodels.ReadKerasH5(file, nil)
	if err == nil || !strings.Contains(err.Error(), "model_config") || !strings.Contains(err.Error(), "expected a string") {
		t.Errorf("got %v", err)
	}
}

// TestKerasH5CrashersAreErrors: a Keras file whose variable-length
// model_config points at a corrupt global-heap object, found by
// FuzzReadKerasH5 (a seed now), crashes Debian 12's HDF5 1.10 in H5Aread ->
// H5T__conv_vlen -> H5HG_read -> memcpy. It is read in a child process
// (internal/h5.File): ReadKerasH5 and ImportKerasH5 return one error
// naming the file and the crash, and this process goes on.
func TestKerasH5CrashersAreErrors(t *testing.T) {
	p := fuzzcorpus.TempFile(t, filepath.Join("testdata", "fuzz", "FuzzReadKerasH5", "71da4a65b1cdc0a5"), "heap.h5")
	for _, read := range []func(string) error{
		func(p string) error { _, err := tfmodels.ReadKerasH5(p, nil); return err },
		func(p string) error { _, err := tfmodels.ReadKerasH5(p, tinyArch()); return err },
		func(p string) error { _, err := tfmodels.ImportKerasH5(p, nil, tfmodels.BuildOptions{}); return err },
	} {
		err := read(p)
		var crash *h5.CrashError
		if !errors.As(err, &crash) || !errors.Is(err, h5.ErrCrashed) {
			t.Fatalf("got %v, expected an *h5.CrashError", err)
		}
		want := p + `: expected a readable HDF5 file, found one that crashed libhdf5 (SIGSEGV) reading attribute "model_config" of /: the file is malformed`
		if err.Error() != want {
			t.Errorf("got  %q\nwant %q", err, want)
		}
	}
}

// TestKerasH5MemoryBomb: a Keras file whose model_config points into a
// global heap declaring 4 GB, found by FuzzReadKerasH5 (a seed), made HDF5
// 1.10 take 3.7 GiB of memory to read that attribute (the fuzzing process
// died). The HDF5 child measures what libhdf5 takes: the file is
// refused, and this process never reads it.
func TestKerasH5MemoryBomb(t *testing.T) {
	p := fuzzcorpus.TempFile(t, filepath.Join("testdata", "fuzz", "FuzzReadKerasH5", "c56d069515ce532c"), "heap.h5")
	_, err := tfmodels.ReadKerasH5(p, nil)
	var crash *h5.CrashError
	if !errors.As(err, &crash) || crash.Memory < 2<<30 {
		t.Fatalf("got %v, expected an *h5.CrashError for more than 2 GiB of memory", err)
	}
	want := p + `: expected a readable HDF5 file, found one for which libhdf5 took `
	if !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), ` GiB of memory reading attribute "model_config" of /: the file is malformed (at most 2 GiB are allowed)`) {
		t.Errorf("got %v", err)
	}
}

// TestKerasH5LoopingFile: a Keras file whose model_config makes HDF5 1.10
// loop in H5Aread -> H5T__conv_vlen -> H5HG_read -> H5C_protect (found by
// FuzzReadKerasH5, a seed; read in-process it had not returned after 2
// minutes) is refused when the HDF5 child does not finish it within the
// timeout.
func TestKerasH5LoopingFile(t *testing.T) {
	p := fuzzcorpus.TempFile(t, filepath.Join("testdata", "fuzz", "FuzzReadKerasH5", "69dbba5c08c81983"), "loop.h5")
	t.Setenv(h5.ChildTimeoutEnv, "3s")
	_, err := tfmodels.ReadKerasH5(p, nil)
	want := p + `: expected a readable HDF5 file, found one that libhdf5 did not finish reading within 3s (it was reading attribute "model_config" of /): the file is malformed, or needs a longer $BBD_H5_CHILD_TIMEOUT`
	if !errors.Is(err, h5.ErrCrashed) || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

// TestKerasConfigStrings: model_config stored as a variable-length string
// (h5py, Keras 3) and as a fixed-length NULL-padded one (numpy bytes, Keras
// 2) are both read whole.
func TestKerasConfigStrings(t *testing.T) {
	const cfg = `{"class_name": "Sequential", "config": {"name": "tiny", "layers": [
	 {"class_name": "Conv2D", "config": {"name": "conv", "batch_input_shape": [null, 4, 4, 1], "filters": 2, "kernel_size": [2, 2], "activation": "relu"}},
	 {"class_name": "Flatten", "config": {"name": "flat"}},
	 {"class_name": "Dense", "config": {"name": "out", "units": 3, "activation": "softmax"}}]}}`
	file := filepath.Join(t.TempDir(), "full.h5")
	sets := tinySets()
	for i := range sets {
		sets[i].path = "/model_weights" + sets[i].path
	}
	writeKerasH5(t, file, sets)
	f, err := hdf5.OpenFile(file, hdf5.F_ACC_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := f.OpenGroup("/")
	sp, _ := hdf5.CreateDataspace(hdf5.S_SCALAR)
	a, err := root.CreateAttribute("model_config", hdf5.T_GO_STRING, sp)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Write(&[]string{cfg}[0], hdf5.T_GO_STRING); err != nil {
		t.Fatal(err)
	}
	a.Close()
	sp.Close()
	root.Close()
	f.Close()
	check := func(what string) {
		t.Helper()
		kf, err := tfmodels.ReadKerasH5(file, nil)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !kf.FullModel || kf.Architecture.Name != "tiny" || len(kf.Architecture.Layers) != 4 || len(kf.Weights) != 4 {
			t.Errorf("%s: read %+v", what, kf)
		}
	}
	check("variable length")
	if _, err := pyoracle.Python(); err != nil {
		t.Skip(err)
	}
	if err := pyoracle.Run(nil, "hostile_h5.py", file, "fixed-string", "model_config"); err != nil {
		t.Fatal(err)
	}
	check("fixed length")
}
