package data_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bbd-workbench/bbd/data"
)

// Read the YouTube-Face sample images; labels come from the file names.
func ExampleReadImageDir() {
	imgs, err := data.ReadImageDir("../../shared/ytf-samples", data.DeepIDImageOptions(false))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(imgs)
	for i := 0; i < imgs.Len(); i++ {
		fmt.Println(imgs.Names[i], imgs.Labels[i])
	}
	x, _ := imgs.Float32(0, 2) // network input for images 0 and 1
	fmt.Println(len(x))
	// Output:
	// 6 images 55x47x3, labelled
	// ano_0_label=0.png 0
	// ano_1_label=0.png 0
	// cl_0_label=43.png 43
	// cl_1_label=328.png 328
	// sun_0_label=0.png 0
	// sun_1_label=0.png 0
	// 15510
}

// Write a competition HDF5 file and stream it back in batches.
func ExampleOpenH5() {
	imgs, err := data.ReadImageDir("../../shared/real-faces/clean", data.DeepIDImageOptions(false))
	if err != nil {
		fmt.Println(err)
		return
	}
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "clean_test_data.h5")
	if err := data.WriteH5(path, imgs, data.H5WriteOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	r, err := data.OpenH5(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	fmt.Println("shape", r.Shape(), r.DataType())
	for start := 0; start < r.Len(); start += 40 {
		b, err := r.ReadBatch(start, min(40, r.Len()-start))
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(start, b.Len(), b.Labels[0])
	}
	// Output:
	// shape [50 55 47 3] float32
	// 0 40 950
	// 40 10 1039
}

// Poison 10% of a training set with the sunglasses trigger, target label 0.
func ExamplePoison() {
	imgs, err := data.ReadImageDir("../../shared/real-faces/clean", data.DeepIDImageOptions(false))
	if err != nil {
		fmt.Println(err)
		return
	}
	poisoned, idx, err := data.Poison(imgs, data.SunglassesTrigger(), 0, 0.1, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(idx), "poisoned; labels", poisoned.Labels[idx[0]], poisoned.Labels[idx[4]])
	// Output:
	// 5 poisoned; labels 0 0
}

// Triggers are plain data and serialise to JSON for manifests.
func ExampleTrigger() {
	b, _ := json.Marshal(data.TriggerTarget{Trigger: data.LipstickTrigger(), Target: 1})
	fmt.Println(string(b))
	// Output:
	// {"trigger":{"name":"lipstick","kind":"patch","rects":[{"x":19,"y":39,"w":11,"h":6,"color":[140,0,100]}]},"target":1}
}

// Fashion-MNIST mapped to the DeepID input, split into a defender's clean
// validation set and a clean test set.
func ExampleToDeepID() {
	_, test, err := data.LoadFashionMNIST("")
	if err != nil {
		fmt.Println(err)
		return
	}
	parts, err := data.Split(test, []int{5000, -1}, 7)
	if err != nil {
		fmt.Println(err)
		return
	}
	valid, err := data.ToDeepID(parts[0])
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(valid, "|", parts[1])
	// Output:
	// 5000 images 55x47x3, labelled | 5000 images 28x28x1, labelled
}

// A seeded order for one epoch, then batches of float32 inputs.
func ExampleNewBatcher() {
	imgs, err := data.ReadImageDir("../../shared/ytf-samples", data.ImageOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	epoch := 0
	b, err := data.NewBatcher(imgs, 4, data.Shuffled(imgs.Len(), 100+uint64(epoch)))
	if err != nil {
		fmt.Println(err)
		return
	}
	for batch, ok := b.Next(); ok; batch, ok = b.Next() {
		fmt.Println(batch.N, len(batch.X))
	}
	// Output:
	// 4 31020
	// 2 15510
}
