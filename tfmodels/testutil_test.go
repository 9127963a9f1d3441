package tfmodels_test

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// shared is the read-only shared folder beside the repository.
var shared = filepath.Join("..", "..", "shared")

var badnets = []string{"sunglasses", "anonymous_1", "anonymous_2", "multi_trigger_multi_target"}

func badnetPath(name string) string {
	return filepath.Join(shared, "badnets", name+"_bd_weights.h5")
}

// loadPNGs reads the PNGs of a folder, sorted by name, as x/255 channels-last.
func loadPNGs(t testing.TB, dir string) ([]string, []float32) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.png"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no PNGs in %s: %v", dir, err)
	}
	sort.Strings(files)
	var x []float32
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for xx := b.Min.X; xx < b.Max.X; xx++ {
				cr, cg, cb, _ := img.At(xx, y).RGBA()
				x = append(x, float32(cr>>8)/255, float32(cg>>8)/255, float32(cb>>8)/255)
			}
		}
		_ = image.Point{}
	}
	return files, x
}
