package defence_test

import (
	"fmt"
	"path/filepath"

	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// The data-free last-layer check on the real anonymous_2 BadNet, whose
// trigger and target were never published: no data, a millisecond of
// arithmetic over the final dense layer's 160 x 1283 weights and 1283 biases.
func ExampleLastLayer() {
	m, err := tfmodels.ImportKerasH5(filepath.Join("..", "..", "shared", "badnets", "anonymous_2_bd_weights.h5"), nil, tfmodels.BuildOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	ll, err := defence.NewLastLayer(defence.LastLayerConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := ll.Run(m)
	if err != nil {
		fmt.Println(err)
		return
	}
	top := r.Labels[r.Ranked()[0]]
	fmt.Printf("layer %s, %d labels, threshold %.2f\n", r.Layer, len(r.Labels), r.Threshold)
	fmt.Printf("flagged %v; label %d: bias index %.1f, mean weight index %.1f\n", r.Flagged, top.Label, top.BiasIndex, top.MeanIndex)
	// Output:
	// layer output, 1283 labels, threshold 4.11
	// flagged [4]; label 4: bias index 5.8, mean weight index 10.7
}
