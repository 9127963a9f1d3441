package exporter

import (
	"encoding/json"
	"fmt"

	tf "github.com/galeone/tensorflow/tensorflow/go"

	"github.com/bbd-workbench/bbd/tfmodels"
)

// WriteModel writes a white-box bbd model as a SavedModel in dir. Signatures:
//
//   - "serving_default": input "input" (float32 [-1, H, W, C], pixels in
//     [0, 1]) to outputs "probabilities" and "logits";
//   - "layers": the same input to every named layer's output, for white-box
//     use by other tools.
//
// The architecture is stored in the MetaGraphDef (collection
// tfmodels.ArchitectureCollection), so tfmodels.LoadSavedModel gives back a
// white-box model with the same named layers, variables and masks.
func WriteModel(dir string, m *tfmodels.Model, opts Options) error {
	if !m.WhiteBox() {
		return fmt.Errorf("writing SavedModel %s: %w", dir, tfmodels.ErrNotWhiteBox)
	}
	if m.Frozen() {
		return fmt.Errorf("writing SavedModel %s: %w: export the model it was frozen from", dir, tfmodels.ErrFrozen)
	}
	arch, err := json.Marshal(m.Arch)
	if err != nil {
		return err
	}
	spec := Spec{
		Graph:   m.Graph,
		Session: m.Session,
		Signatures: map[string]Signature{
			DefaultSignature: {
				Inputs:  map[string]tf.Output{"input": m.Input},
				Outputs: map[string]tf.Output{"probabilities": m.Probabilities, "logits": m.Logits},
			},
		},
		Collections: map[string][][]byte{tfmodels.ArchitectureCollection: {arch}},
	}
	layers := Signature{Inputs: map[string]tf.Output{"input": m.Input}, Outputs: map[string]tf.Output{}}
	for _, name := range m.LayerNames() {
		out, err := m.Layer(name)
		if err != nil {
			return err
		}
		if name != "input" {
			layers.Outputs[name] = out
		}
	}
	spec.Signatures["layers"] = layers
	for _, v := range m.Variables() {
		spec.Variables = append(spec.Variables, Variable{Name: v.Name, Handle: v.Handle, Value: v.Value, Initializer: v.Assign, Trainable: v.Trainable})
	}
	return Write(dir, spec, opts)
}
