package tfmodels_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bbd-workbench/bbd/exporter"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// rssMB is the process's resident set size in MB (Linux /proc), or -1.
func rssMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return -1
}

// BenchmarkSoakPredict10000 makes 10,000 Predict calls (8 real faces each)
// on the real sunglasses BadNet and reports the resident memory after a
// warm-up of 1,000 calls and at the end: it should stay flat.
//
//	go test -run '^$' -bench Soak -benchtime 1x ./tfmodels/
func BenchmarkSoakPredict10000(b *testing.B) {
	m, err := tfmodels.ImportKerasH5(badnetPath("sunglasses"), nil, tfmodels.BuildOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	_, x := loadImages(b, filepath.Join(shared, "ytf-samples"))
	x = x[:min(len(x), 8*55*47*3)]
	n := len(x) / (55 * 47 * 3)
	for range b.N {
		var warm float64
		for i := range 10000 {
			if i == 1000 {
				warm = rssMB()
			}
			if _, err := m.Predict(x, n); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(warm, "MB-RSS-after-1000")
		b.ReportMetric(rssMB(), "MB-RSS-after-10000")
	}
}

// BenchmarkSoakLoadClose1000 loads and closes a bbd SavedModel 1,000 times
// and reports the resident memory after 100 cycles and at the end.
func BenchmarkSoakLoadClose1000(b *testing.B) {
	m, err := tfmodels.ImportKerasH5(badnetPath("sunglasses"), nil, tfmodels.BuildOptions{})
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(b.TempDir(), "model")
	err = exporter.WriteModel(dir, m, exporter.Options{})
	m.Close()
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		var warm float64
		for i := range 1000 {
			if i == 100 {
				warm = rssMB()
			}
			l, err := tfmodels.LoadSavedModel(dir, tfmodels.LoadOptions{})
			if err != nil {
				b.Fatal(err)
			}
			l.Close()
		}
		b.ReportMetric(warm, "MB-RSS-after-100")
		b.ReportMetric(rssMB(), "MB-RSS-after-1000")
	}
}
