package tfmodels

import (
	"errors"
	"fmt"
)

// ErrNotWhiteBox is returned by operations that need a bbd-built graph (named
// layers, variables) on a model loaded black-box from a foreign SavedModel.
var ErrNotWhiteBox = errors.New("model is black-box (a SavedModel not written by bbd): only its serving_default signature can be used")

// ErrFrozen is returned by operations that change weights (SetWeights, Train)
// or write them (export) on a frozen model (BuildOptions.Frozen, Model.Freeze).
var ErrFrozen = errors.New("model is frozen (weights are constants, for inference only)")

// InputError reports a bad model input: a model file (Keras HDF5, SavedModel)
// or a part of one (an architecture, a weight), or a tensor given to a model
// (a batch of the wrong shape, a non-finite value, a label out of range). It
// names the input, what was expected and what was found, and reads
// "<input>: expected <expected>, found <found>".
//
// It is distinct from data.InputError on purpose: that one reports bad data
// files (images, competition HDF5, IDX) and carries a Kind (data.ErrFormat,
// data.ErrSize...) for errors.Is; tfmodels does not depend on the data
// package. Test for either with errors.As.
type InputError struct {
	Input    string // the file, tensor or argument at fault
	Expected string
	Found    string
}

func (e *InputError) Error() string {
	return fmt.Sprintf("%s: expected %s, found %s", e.Input, e.Expected, e.Found)
}

// recoverTF turns a panic raised inside the TensorFlow bindings or tfgo into an
// error. Use as: defer recoverTF(&err, "what was being done").
func recoverTF(err *error, what string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: tensorflow: %v", what, r)
	}
}
