package tfmodels_test

import (
	"fmt"
	"path/filepath"

	tf "github.com/galeone/tensorflow/tensorflow/go"

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

// Two networks in one graph, under two scopes, reading one input: each keeps
// its own variables, and Model.View runs either.
func ExampleAddNet() {
	arch := tfmodels.DeepIDWith(55, 47, 3, 10)
	g := tf.NewGraph()
	in, _ := tfmodels.AddInput(g, "input", [3]int{55, 47, 3})
	a, _ := tfmodels.AddNet(g, arch, in, tfmodels.NetOptions{Scope: "a", Seed: 1})
	b, _ := tfmodels.AddNet(g, arch, in, tfmodels.NetOptions{Scope: "b", Seed: 2, ChannelMasks: []string{"conv_4"}})
	m, err := tfmodels.NewModel(g, in, []*tfmodels.Net{a, b}, tfmodels.ModelOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	vb, _ := m.View("b")
	k, _ := vb.Variable("conv_1/kernel")
	fmt.Println(a.Probabilities.Op.Name(), b.Probabilities.Op.Name())
	fmt.Println(k.Name, "->", k.GraphName)
	fmt.Println(vb.Masks())
	// Output:
	// a/probabilities b/probabilities
	// conv_1/kernel -> b/conv_1/kernel
	// map[channel_mask:[conv_4]]
}
