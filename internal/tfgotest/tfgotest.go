// Package tfgotest loads SavedModels with tfgo (github.com/galeone/tfgo), the
// loader bbd's design card names, for the tests that prove every SavedModel
// bbd writes loads there too. Only tests use it.
package tfgotest

import (
	"fmt"

	tf "github.com/galeone/tensorflow/tensorflow/go"
	tfgo "github.com/galeone/tfgo"
)

// Run loads dir with tfgo.LoadModel(dir, {"serve"}, nil), as a user would,
// feeds the n images x (float32, channels-last, shape [n, h, w, c]) to the
// tensor "input" and fetches the named outputs (op names, output 0). tfgo
// panics on errors: the panic comes back as an error. Its session cannot be
// closed (tfgo leaves that to a finalizer).
func Run(dir string, x []float32, shape [4]int64, outputs ...string) (res []*tf.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("tfgo: %v", r)
		}
	}()
	model := tfgo.LoadModel(dir, []string{"serve"}, nil)
	xt, err := tf.NewTensor(x)
	if err != nil {
		return nil, err
	}
	if err := xt.Reshape(shape[:]); err != nil {
		return nil, err
	}
	var fetches []tf.Output
	for _, name := range outputs {
		fetches = append(fetches, model.Op(name, 0))
	}
	return model.Exec(fetches, map[tf.Output]*tf.Tensor{model.Op("input", 0): xt}), nil
}
