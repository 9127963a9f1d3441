package tfmodels_test

import (
	"path/filepath"
	"testing"

	"github.com/bbd-workbench/bbd/tfmodels"
)

// BenchmarkPredict measures batched inference of a CSAW BadNet on the real
// clean faces repeated to 1024 images (batch 128); images/s is reported.
// (Do not add -cpuprofile: Go's SIGPROF signals crash libtensorflow's own
// threads, with or without bbd's code; profile with perf instead.)
func BenchmarkPredict(b *testing.B) {
	_, faces := loadImages(b, filepath.Join(shared, "real-faces", "clean"))
	const n = 1024
	x := make([]float32, 0, n*55*47*3)
	for len(x) < cap(x) {
		x = append(x, faces[:min(len(faces), cap(x)-len(x))]...)
	}
	m, err := tfmodels.ImportKerasH5(badnetPath("sunglasses"), nil, tfmodels.BuildOptions{BatchSize: 128})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Predict(x, n); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Predict(x, n); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
}
