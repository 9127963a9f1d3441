// Package exporter writes TensorFlow SavedModels from graphs built in Go.
//
// The format is the TF1-style SavedModel that TensorFlow's C, C++ and Python
// loaders all read (tfgo / the Go bindings, tensorflow::LoadSavedModel,
// tf.saved_model.load):
//
//   - saved_model.pb: one MetaGraphDef tagged "serve" holding the GraphDef, a
//     SaverDef whose SaveV2/RestoreV2 ops live in the graph (under "save/"),
//     the "variables" and "trainable_variables" collections (VariableDef protos,
//     so Python rebuilds the variables) and the signatures, "serving_default"
//     first (method tensorflow/serving/predict);
//   - variables/variables.index and variables/variables.data-00000-of-00001,
//     written by running the graph's own SaveV2 op in the model's session.
//
// Writes are atomic: everything goes into a temporary sibling directory that is
// renamed into place at the end, so a crash never leaves a half-written model,
// and an existing destination is never replaced unless Options.Overwrite says so.
package exporter
