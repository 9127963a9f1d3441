package exporter

import (
	"encoding/json"
	"fmt"

	tf "github.com/galeone/tensorflow/tensorflow/go"

	"github.com/bbd-workbench/bbd/tfmodels"
)

// WriteModel writes a white-box bbd model, with every net of its graph, as a
// SavedModel in dir (see [ModelSpec] for its signatures). The nets are
// recorded in the MetaGraphDef (collection tfmodels.NetsCollection), so
// tfmodels.LoadSavedModel gives back a white-box model with the same nets,
// scopes, named layers, variables and masks.
func WriteModel(dir string, m *tfmodels.Model, opts Options) error {
	spec, err := ModelSpec(m)
	if err != nil {
		return fmt.Errorf("writing SavedModel %s: %w", dir, err)
	}
	return Write(dir, spec, opts)
}

// ModelSpec returns what [WriteModel] writes, for callers that add signatures
// or outputs of their own (the Bimodel defence adds its decision):
//
//   - signature "serving_default": input "input" (the model's input, float32
//     [-1, H, W, C], pixels in [0, 1]) to "probabilities" and "logits" of the
//     model's own net and, for each other net, "<scope>/probabilities" and
//     "<scope>/logits";
//   - signature "layers": the same input to every named layer's output, keyed
//     by layer name, "<scope>/<layer>" for nets with a scope;
//   - every net's variables, saved under their graph names;
//   - the nets' records (collection tfmodels.NetsCollection).
func ModelSpec(m *tfmodels.Model) (Spec, error) {
	if !m.WhiteBox() {
		return Spec{}, tfmodels.ErrNotWhiteBox
	}
	serving := Signature{Inputs: map[string]tf.Output{"input": m.Input}, Outputs: map[string]tf.Output{}}
	layers := Signature{Inputs: map[string]tf.Output{"input": m.Input}, Outputs: map[string]tf.Output{}}
	spec := Spec{Graph: m.Graph, Session: m.Session, Signatures: map[string]Signature{DefaultSignature: serving, "layers": layers},
		Collections: map[string][][]byte{}}
	for i, n := range m.Nets() {
		if !n.WhiteBox() {
			return Spec{}, fmt.Errorf("net %q: %w", n.Scope, tfmodels.ErrNotWhiteBox)
		}
		if n.Frozen() {
			return Spec{}, fmt.Errorf("net %q: %w: export the model it was frozen from", n.Scope, tfmodels.ErrFrozen)
		}
		key := func(name string) string {
			if n.Scope == "" {
				return name
			}
			return n.Scope + "/" + name
		}
		if i == 0 {
			serving.Outputs["probabilities"], serving.Outputs["logits"] = n.Probabilities, n.Logits
		}
		if n.Scope != "" {
			serving.Outputs[key("probabilities")], serving.Outputs[key("logits")] = n.Probabilities, n.Logits
		}
		for _, name := range n.LayerNames() {
			if out, err := n.Layer(name); err == nil && out != m.Input {
				layers.Outputs[key(name)] = out
			}
		}
		for _, v := range n.Variables() {
			spec.Variables = append(spec.Variables, Variable{Name: v.GraphName, Handle: v.Handle, Value: v.Value, Initializer: v.Assign, Trainable: v.Trainable})
		}
		rec, err := json.Marshal(n.Record())
		if err != nil {
			return Spec{}, err
		}
		spec.Collections[tfmodels.NetsCollection] = append(spec.Collections[tfmodels.NetsCollection], rec)
	}
	return spec, nil
}
