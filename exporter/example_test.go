package exporter_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/bbd-workbench/bbd/exporter"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// Convert a Keras BadNet to a SavedModel and load it back white-box.
func ExampleWriteModel() {
	m, err := tfmodels.ImportKerasH5(filepath.Join("..", "..", "shared", "badnets", "anonymous_1_bd_weights.h5"), nil, tfmodels.BuildOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	tmp, _ := os.MkdirTemp("", "bbd-example-")
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "anonymous_1")
	if err := exporter.WriteModel(dir, m, exporter.Options{}); err != nil {
		fmt.Println(err)
		return
	}
	back, err := tfmodels.LoadSavedModel(dir, tfmodels.LoadOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer back.Close()
	fmt.Println("white-box:", back.WhiteBox(), "parameters:", back.ParamCount())
	// A second write to the same place is refused.
	err = exporter.WriteModel(dir, m, exporter.Options{})
	fmt.Println(err != nil)
	// Output:
	// white-box: true parameters: 601643
	// true
}
