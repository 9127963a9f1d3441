// Package tfmodels turns neural networks into TensorFlow graphs that Go fully
// controls, and runs them.
//
// Every model bbd works on is a flat TensorFlow graph with stable names:
//
//   - the input placeholder "input", float32 [-1, H, W, C], pixels in [0, 1];
//   - every layer's output under the layer's (Keras) name, e.g. for the DeepID
//     BadNets "conv_1" ... "conv_4", "pool_1" ... "pool_3", "flatten_1",
//     "flatten_2", "fc_1", "fc_2", "add_1", "activation_1", "output";
//   - "logits" (the pre-softmax output) and "probabilities";
//   - weights as resource variables named after the Keras weights
//     ("conv_1/kernel", "conv_1/bias"), so they round-trip between Keras HDF5,
//     Go and SavedModel by name;
//   - optional multiplicative masks ("<layer>/mask", ones by default) on chosen
//     layers, for pruning defences.
//
// Sources of models:
//
//   - [ImportKerasH5] reads Keras HDF5 files: weights-only files such as the
//     CSAW-HackML BadNets (with the DeepID architecture, [DeepID]) and full-model
//     files carrying a "model_config" (functional models of InputLayer, Conv2D,
//     MaxPooling2D, Dense, Flatten, Add, Activation and Dropout layers).
//   - [Build] builds any [Architecture] with given or seeded random weights.
//   - [LoadSavedModel] loads SavedModels: those written by bbd come back
//     white-box (named layers, variables, masks), any other (e.g. Keras) is used
//     black-box through its "serving_default" signature.
//
// A [Model] owns its graph and session: call Close when done (sessions are not
// left to finalizers, and reloading models leaks memory in libtensorflow, so
// reuse a Model rather than reloading it).
//
// Errors: this package never panics on bad input. The TensorFlow Go bindings and
// tfgo panic on some graph errors; those panics are caught at this package's
// boundary and returned as errors.
package tfmodels
