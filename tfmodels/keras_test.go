package tfmodels_test

import (
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

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
