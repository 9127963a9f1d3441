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
//   - optional multiplicative masks, ones by default, never trained, saved with
//     the model: on a layer's output unit by unit ("<layer>/mask"), on its
//     channels ("<layer>/channel_mask") or on a kernel element by element
//     ("<layer>/kernel_mask"), for pruning defences.
//
// Networks are composable graph pieces, so that defences can put things into a
// model's graph:
//
//   - [AddNet] builds an [Architecture] into any graph, under a scope
//     ("badnet/conv_1", "badnet/probabilities"), on any input tensor: the
//     model's placeholder, or a tensor computed from it (a trigger stamped on
//     the images, a batch of overlays). Variables take their scoped name as
//     shared_name, so two nets in one graph never share weights.
//   - [NewModel] opens a session on such a graph; the first net is the model's
//     own, [Model.View] gives the others. [Build] is AddInput + AddNet +
//     NewModel. A SavedModel holding several nets reloads white-box: each net's
//     architecture, scope and input are recorded (collection [NetsCollection]).
//   - The primitives a defence needs: [AddVariable] / [Model.NewVariable] (a
//     trigger, a batch of masks), [Ops] (a sticky-error op builder with unique
//     names), [Model.Minimize] (any scalar loss over any variables with the
//     SGD or Adam optimizer as graph ops, built once, reused),
//     [Model.Gradients] (of any tensor by any tensors) and [Model.RunWith]
//     (batched runs with extra feeds).
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
// One batch size, [DefaultBatchSize], is used wherever none is given.
//
// A [Model] owns its graph and session: call Close when done (sessions are not
// left to finalizers, and reloading models leaks memory in libtensorflow, so
// reuse a Model rather than reloading it).
//
// Errors: this package never panics on bad input. The TensorFlow Go bindings and
// tfgo panic on some graph errors; those panics are caught at this package's
// boundary and returned as errors.
package tfmodels
