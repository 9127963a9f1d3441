package tfmodels_test

import (
	"path/filepath"
	"testing"

	"github.com/bbd-workbench/bbd/data"
)

// shared is the read-only shared folder beside the repository.
var shared = filepath.Join("..", "..", "shared")

var badnets = []string{"sunglasses", "anonymous_1", "anonymous_2", "multi_trigger_multi_target"}

func badnetPath(name string) string {
	return filepath.Join(shared, "badnets", name+"_bd_weights.h5")
}

// loadImages reads the 55x47 images of a folder with the data package,
// sorted by file name (as the Python oracle sorts one folder's glob), as
// x/255 channels-last; it returns their file names.
func loadImages(t testing.TB, dir string) ([]string, []float32) {
	t.Helper()
	imgs, err := data.ReadImageDir(dir, data.DeepIDImageOptions(false))
	if err != nil {
		t.Fatalf("reading the images of %s: %v", dir, err)
	}
	x, err := imgs.Float32(0, imgs.Len())
	if err != nil {
		t.Fatal(err)
	}
	return imgs.Names, x
}
