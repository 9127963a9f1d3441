package tfmodels_test

import (
	"fmt"
	"path/filepath"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// Import the real sunglasses BadNet and classify the YouTube-Face samples:
// clean faces get their identity, faces with sunglasses the attacker's 0.
func ExampleImportKerasH5() {
	m, err := tfmodels.ImportKerasH5(filepath.Join("..", "..", "shared", "badnets", "sunglasses_bd_weights.h5"), nil, tfmodels.BuildOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	imgs, err := data.ReadImageDir(filepath.Join("..", "..", "shared", "ytf-samples"), data.DeepIDImageOptions(false))
	if err != nil {
		fmt.Println(err)
		return
	}
	x, _ := imgs.Float32(0, imgs.Len())
	probs, err := m.Predict(x, imgs.Len())
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, label := range tfmodels.Labels(probs, m.NumClasses) {
		if name := filepath.Base(imgs.Name(i)); name[:3] != "ano" {
			fmt.Println(name, "->", label)
		}
	}
	fmt.Println("parameters:", m.ParamCount())
	// Output:
	// cl_0_label=43.png -> 43
	// cl_1_label=328.png -> 328
	// sun_0_label=0.png -> 0
	// sun_1_label=0.png -> 0
	// parameters: 601643
}

// Any layer of a white-box model is a tensor that can be evaluated.
func ExampleModel_Layer() {
	m, err := tfmodels.Build(tfmodels.DeepIDWith(55, 47, 3, 10), nil, tfmodels.BuildOptions{Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	for _, name := range []string{"pool_3", "flatten_2", "activation_1"} {
		out, _ := m.Layer(name)
		fmt.Println(name, out.Shape())
	}
	// Output:
	// pool_3 [?, 5, 4, 60]
	// flatten_2 [?, 960]
	// activation_1 [?, 160]
}
