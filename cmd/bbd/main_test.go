package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	pb "github.com/galeone/tensorflow/tensorflow/go/core/protobuf/for_core_protos_go_proto"
	"google.golang.org/protobuf/proto"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/internal/pyoracle"
)

// shared is the project's read-only shared material, seen from cmd/bbd.
var shared = filepath.Join("..", "..", "..", "shared")

func sharedPath(t *testing.T, elem ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{shared}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared material not available: %v", err)
	}
	return p
}

// bbd runs the command in-process and returns its stdout, stderr and status.
func bbd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return out.String(), errb.String(), code
}

// mustBBD runs the command and fails the test unless it succeeds.
func mustBBD(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := bbd(t, args...)
	if code != 0 {
		t.Fatalf("bbd %s: exit %d\nstderr: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// convertSunglasses converts the sunglasses BadNet into dir/sm.
func convertSunglasses(t *testing.T, dir string) string {
	t.Helper()
	sm := filepath.Join(dir, "sm")
	out := mustBBD(t, "convert", sharedPath(t, "badnets", "sunglasses_bd_weights.h5"), sm)
	for _, want := range []string{"wrote " + sm, "parameters: 601,643", "conv_4"} {
		if !strings.Contains(out, want) {
			t.Errorf("convert output lacks %q:\n%s", want, out)
		}
	}
	return sm
}

func TestConvertInfoPredict(t *testing.T) {
	sm := convertSunglasses(t, t.TempDir())
	weights := sharedPath(t, "badnets", "sunglasses_bd_weights.h5")

	for _, model := range []string{sm, weights} {
		out := mustBBD(t, "info", model)
		for _, want := range []string{"signature serving_default", "input", "[-1, 55, 47, 3]", "probabilities", "[-1, 1283]", "fc_2", "153,760"} {
			if !strings.Contains(out, want) {
				t.Errorf("info %s lacks %q:\n%s", model, want, out)
			}
		}
		if !regexp.MustCompile(`(?m)^parameters: 601,643$`).MatchString(out) {
			t.Errorf("info %s: no line 'parameters: 601,643':\n%s", model, out)
		}
	}

	ytf := sharedPath(t, "ytf-samples")
	var inputs []string
	for _, pat := range []string{"cl_*", "sun_*"} {
		m, _ := filepath.Glob(filepath.Join(ytf, pat))
		inputs = append(inputs, m...)
	}
	if len(inputs) != 4 {
		t.Fatalf("ytf-samples: %d cl_/sun_ images, want 4", len(inputs))
	}
	// Each argument is a source with an accuracy line of its own.
	for _, model := range []string{sm, weights} {
		out := mustBBD(t, append([]string{"predict", "--model", model}, inputs...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 8 {
			t.Fatalf("predict: %d lines, want 4 + 4 accuracy lines:\n%s", len(lines), out)
		}
		for i, in := range inputs {
			f := strings.Split(lines[i], "\t")
			want := "0"
			if strings.HasPrefix(filepath.Base(in), "cl_") {
				l, _ := data.ParseLabel(in)
				want = fmt.Sprint(l)
			}
			if len(f) != 3 || f[0] != in || f[1] != want {
				t.Errorf("line %q: want %s\t%s\t<probability>", lines[i], in, want)
			}
		}
		for i, in := range inputs {
			if want := "accuracy " + in + ": 1.0000 (1/1)"; lines[4+i] != want {
				t.Errorf("line %q, want %q", lines[4+i], want)
			}
		}
	}

	// A folder, flags after the arguments, --quiet.
	out := mustBBD(t, "predict", ytf, "--model", sm, "--quiet")
	if out != "accuracy: 0.6667 (4/6)\n" { // the anonymous_1 poisoned faces are not sunglasses' target
		t.Errorf("predict --quiet on the folder: %q", out)
	}
}

func TestPredictH5Streams(t *testing.T) {
	dir := t.TempDir()
	faces := sharedPath(t, "real-faces", "clean")
	imgs, err := data.ReadImageDir(faces, data.DeepIDImageOptions(false))
	if err != nil {
		t.Fatal(err)
	}
	h5 := filepath.Join(dir, "faces.h5")
	if err := data.WriteH5(h5, imgs, data.H5WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	weights := sharedPath(t, "badnets", "sunglasses_bd_weights.h5")
	want := mustBBD(t, "predict", "--quiet", "--model", weights, faces)
	if !strings.HasPrefix(want, "accuracy: 0.9") || !strings.HasSuffix(want, fmt.Sprintf("/%d)\n", imgs.Len())) {
		t.Fatalf("accuracy on the clean faces: %q", want)
	}
	// A batch size that does not divide the file: the last batch is partial.
	out := mustBBD(t, "predict", "--batch", "7", "--model", weights, h5)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != imgs.Len()+1 {
		t.Fatalf("%d lines for %d images", len(lines), imgs.Len())
	}
	for i, l := range lines[:imgs.Len()] {
		if !strings.HasPrefix(l, fmt.Sprintf("%s[%d]\t", h5, i)) {
			t.Fatalf("line %d: %q", i, l)
		}
	}
	if got := lines[len(lines)-1] + "\n"; got != want {
		t.Errorf("HDF5 accuracy %q, folder accuracy %q", got, want)
	}
	// JSON output agrees.
	js := mustBBD(t, "predict", "--json", "--quiet", "--model", weights, h5)
	if !strings.Contains(js, fmt.Sprintf(`{"images":%d,"sources":[{"source":%q,"images":%[1]d,"labelled":%[1]d,`, imgs.Len(), h5)) {
		t.Errorf("--json summary: %s", js)
	}
}

// snapshot records every file under dir (relative path, mode, content hash).
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		if !d.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		rel, _ := filepath.Rel(dir, p)
		snap[rel] = v + " " + fi.ModTime().String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// withoutServingDefault copies the SavedModel sm to dst with its
// serving_default signature renamed.
func withoutServingDefault(t *testing.T, sm, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(sm)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dst, "saved_model.pb")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m pb.SavedModel
	if err := proto.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, mg := range m.MetaGraphs {
		mg.SignatureDef["predict"] = mg.SignatureDef["serving_default"]
		delete(mg.SignatureDef, "serving_default")
	}
	if raw, err = proto.Marshal(&m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	sm := convertSunglasses(t, dir)
	weights := sharedPath(t, "badnets", "sunglasses_bd_weights.h5")
	faces := sharedPath(t, "real-faces", "clean")
	p := func(name string) string { return filepath.Join(dir, name) }

	// Fixtures.
	if err := os.WriteFile(p("text.h5"), []byte("not HDF5 at all\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	imgs, err := data.ReadImageDir(faces, data.DeepIDImageOptions(false))
	if err != nil {
		t.Fatal(err)
	}
	few, _ := imgs.Slice(0, 3)
	if err := data.WriteH5(p("data.h5"), few, data.H5WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	small, err := data.Resize(few, 30, 40, data.Bilinear)
	if err != nil {
		t.Fatal(err)
	}
	if err := small.SavePNG(p("small_label=3.png"), 0, false); err != nil {
		t.Fatal(err)
	}
	if err := data.WriteH5(p("small.h5"), small, data.H5WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	withoutServingDefault(t, sm, p("nosig"))
	if err := os.MkdirAll(p("existing"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("existing/keep.txt"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		args []string
		want []string // substrings of the one stderr line
	}{
		{"convert not HDF5", []string{"convert", p("text.h5"), p("out")}, []string{p("text.h5"), "not an HDF5 file"}},
		{"convert HDF5 without weights", []string{"convert", p("data.h5"), p("out")}, []string{p("data.h5"), "conv_1", "found groups [data, label]"}},
		{"convert missing model", []string{"convert", p("missing.h5"), p("out")}, []string{p("missing.h5"), "no such file"}},
		{"convert destination exists", []string{"convert", weights, p("existing")}, []string{p("existing"), "exists", "nothing written"}},
		{"convert over a SavedModel", []string{"convert", weights, sm}, []string{sm, "exists"}},
		{"info not HDF5", []string{"info", p("text.h5")}, []string{p("text.h5"), "not an HDF5 file"}},
		{"info missing", []string{"info", p("nothing")}, []string{p("nothing"), "no such file"}},
		{"info no serving_default", []string{"info", p("nosig")}, []string{p("nosig"), "serving_default", "predict"}},
		{"predict no serving_default", []string{"predict", "--model", p("nosig"), faces}, []string{p("nosig"), "serving_default"}},
		{"predict missing model", []string{"predict", "--model", p("nomodel"), faces}, []string{p("nomodel"), "no such file"}},
		{"predict folder without SavedModel", []string{"predict", "--model", dir, faces}, []string{dir, "saved_model.pb"}},
		{"predict model not HDF5", []string{"predict", "--model", p("text.h5"), faces}, []string{p("text.h5"), "not an HDF5 file"}},
		{"predict model without weights", []string{"predict", "--model", p("data.h5"), faces}, []string{p("data.h5"), "conv_1"}},
		{"predict wrong image size", []string{"predict", "--model", sm, p("small_label=3.png")}, []string{p("small_label=3.png"), "55x47", "--resize"}},
		{"predict wrong HDF5 image size", []string{"predict", "--model", sm, p("small.h5")}, []string{p("small.h5"), "55x47", "--resize"}},
		{"predict input not HDF5", []string{"predict", "--model", sm, p("text.h5")}, []string{p("text.h5"), "not an image"}},
		{"predict HDF5 without data", []string{"predict", "--model", sm, weights}, []string{weights, `"data"`}},
		{"predict missing input", []string{"predict", "--model", sm, faces, p("gone.png")}, []string{p("gone.png"), "no such file"}},
		{"predict arch on SavedModel", []string{"predict", "--model", sm, "--arch", "deepid", faces}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := snapshot(t, dir)
			out, errs, code := bbd(t, c.args...)
			if c.want == nil { // a usage error
				if code != 2 || !strings.Contains(errs, "usage: bbd") {
					t.Errorf("exit %d, want 2 with usage; stderr:\n%s", code, errs)
				}
				return
			}
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if out != "" {
				t.Errorf("stdout not empty: %q", out)
			}
			if !strings.HasPrefix(errs, "bbd: ") || strings.Count(errs, "\n") != 1 || !strings.HasSuffix(errs, "\n") {
				t.Errorf("stderr is not one 'bbd: ' line: %q", errs)
			}
			for _, w := range c.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %q lacks %q", errs, w)
				}
			}
			after := snapshot(t, dir)
			if fmt.Sprint(before) != fmt.Sprint(after) {
				t.Errorf("files changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}

	// --resize accepts the small image and the small HDF5 file.
	out := mustBBD(t, "predict", "--resize", "--model", sm, p("small_label=3.png"), p("small.h5"))
	if n := strings.Count(out, "\n"); n != 6 || !strings.Contains(out, "\naccuracy "+p("small.h5")+": ") {
		t.Errorf("--resize: %d lines, want 4 + an accuracy line per source:\n%s", n, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"convert", "only-one.h5"},
		{"convert", "--no-such-flag", "a", "b"},
		{"info"},
		{"predict", "x.png"},
		{"predict", "--model", "m"},
		{"predict", "--model", "m", "--batch", "0", "x.png"},
		{"convert", "--arch", "resnet", sharedPath(t, "badnets", "sunglasses_bd_weights.h5"), filepath.Join(t.TempDir(), "o")},
		{"bench", "extra"},
	} {
		out, errs, code := bbd(t, args...)
		if code != 2 || out != "" || !strings.Contains(errs, "usage: bbd") {
			t.Errorf("bbd %q: exit %d, stdout %q, stderr:\n%s", args, code, out, errs)
		}
	}
	out, _, code := bbd(t, "predict", "-h")
	if code != 0 || !strings.Contains(out, "usage: bbd predict") || !strings.Contains(out, "-resize") {
		t.Errorf("predict -h: exit %d\n%s", code, out)
	}
	out, _, code = bbd(t, "--help")
	if code != 0 || !strings.Contains(out, "bench") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
}

// TestZooUsage: bbd zoo without the build subcommand or without --out is a
// usage error listing the flags (as are "bbd zoo -h" and "bbd zoo build -h",
// on stdout with status 0); an existing destination is an error naming
// it that changes nothing. None of these trains anything.
func TestZooUsage(t *testing.T) {
	for _, args := range [][]string{
		{"zoo"},
		{"zoo", "train"},
		{"zoo", "build"},
		{"zoo", "build", "extra"},
	} {
		out, errs, code := bbd(t, args...)
		if code != 2 || out != "" || !strings.Contains(errs, "usage: bbd zoo") || !strings.Contains(errs, "\nflags:\n") || !strings.Contains(errs, "-out string") {
			t.Errorf("bbd %q: exit %d, stdout %q, stderr:\n%s", args, code, out, errs)
		}
	}
	for _, args := range [][]string{{"zoo", "-h"}, {"zoo", "build", "-h"}} {
		out, _, code := bbd(t, args...)
		if code != 0 || !strings.Contains(out, "usage: bbd zoo") || !strings.Contains(out, "\nflags:\n") || !strings.Contains(out, "-out string") || !strings.Contains(out, "-reduced") {
			t.Errorf("bbd %q: exit %d\n%s", args, code, out)
		}
	}

	dir := t.TempDir()
	existing := filepath.Join(dir, "zoo")
	if err := os.MkdirAll(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(existing, "keep.txt"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	// --reduced and a Fashion-MNIST folder that does not exist: should the
	// check ever let this through, it fails fast instead of training.
	out, errs, code := bbd(t, "zoo", "build", "--reduced", "--fashion-mnist", filepath.Join(existing, "no-such-dir"), "--out", existing)
	if code != 1 || out != "" {
		t.Errorf("zoo build over an existing folder: exit %d (want 1), stdout %q", code, out)
	}
	if !strings.HasPrefix(errs, "bbd: ") || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, existing) || !strings.Contains(errs, "nothing written") {
		t.Errorf("stderr is not one 'bbd: ' line naming %s: %q", existing, errs)
	}
	if after := snapshot(t, dir); fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("files changed:\nbefore %v\nafter  %v", before, after)
	}
}

func TestPanicIsOneLine(t *testing.T) {
	commands = append(commands, &command{name: "boom", run: func(*cmdEnv, []string) error {
		panic("kaboom\nsecond line")
	}})
	defer func() { commands = commands[:len(commands)-1] }()
	_, errs, code := bbd(t, "boom")
	if code != 1 || errs != "bbd: internal error: kaboom; second line\n" {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

func TestBenchSmoke(t *testing.T) {
	sharedPath(t, "badnets", "sunglasses_bd_weights.h5")
	out := mustBBD(t, "bench", "--n", "64", "--batch", "32", "--runs", "1", "--no-python")
	if !strings.Contains(out, "Go: tfmodels Predict") || !strings.Contains(out, "64 images") {
		t.Errorf("bench output:\n%s", out)
	}
}

func TestBlackBoxSavedModel(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Python TensorFlow")
	}
	if _, err := pyoracle.Python(); err != nil {
		t.Skip(err)
	}
	weights := sharedPath(t, "badnets", "sunglasses_bd_weights.h5")
	keras := filepath.Join(t.TempDir(), "keras")
	if err := pyoracle.Run(nil, "keras_export.py", weights, keras); err != nil {
		t.Fatal(err)
	}
	out := mustBBD(t, "info", keras)
	if !strings.Contains(out, "black-box") || !strings.Contains(out, "layers: not available") || strings.Contains(out, "parameters:") {
		t.Errorf("info on a Keras SavedModel:\n%s", out)
	}
	out = mustBBD(t, "predict", "--quiet", "--model", keras, sharedPath(t, "real-faces", "sunglasses"))
	if !strings.HasPrefix(out, "accuracy: 1.0000") && !strings.HasPrefix(out, "accuracy: 0.99") {
		t.Errorf("attack success on the Keras SavedModel: %q", out)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 601643: "601,643", 1234567: "1,234,567", -4200: "-4,200"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
