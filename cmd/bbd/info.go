package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	tf "github.com/galeone/tensorflow/tensorflow/go"
	pb "github.com/galeone/tensorflow/tensorflow/go/core/protobuf/for_core_protos_go_proto"

	"github.com/bbd-workbench/bbd/exporter"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// modelInfo is what bbd info --json prints.
type modelInfo struct {
	Model        string                   `json:"model"`
	Format       string                   `json:"format"` // "savedmodel" or "keras_h5"
	WhiteBox     bool                     `json:"white_box"`
	Architecture string                   `json:"architecture,omitempty"`
	Signatures   map[string]signatureInfo `json:"signatures"` // a Keras file: serving_default as convert writes it
	Input        [3]int                   `json:"input"`      // H, W, C
	Classes      int                      `json:"classes"`
	Layers       []layerInfo              `json:"layers,omitempty"`     // white-box models
	Parameters   *int                     `json:"parameters,omitempty"` // white-box models
}

type signatureInfo struct {
	Method  string       `json:"method"`
	Inputs  []tensorInfo `json:"inputs"`
	Outputs []tensorInfo `json:"outputs"`
}

type tensorInfo struct {
	Key    string  `json:"key"`
	DType  string  `json:"dtype"`
	Shape  []int64 `json:"shape"` // nil: unknown rank
	Tensor string  `json:"tensor,omitempty"`
}

type layerInfo struct {
	Name   string  `json:"name"`
	Kind   string  `json:"kind"`
	Shape  []int64 `json:"shape"`
	Params int     `json:"params"`
}

func runInfo(c *cmdEnv, args []string) error {
	arch := c.flags.String("arch", "", "architecture of a weights-only Keras file (deepid); default: the file's own, DeepID for weights-only files")
	asJSON := c.flags.Bool("json", false, "print the description as one JSON object")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("expected one model (a SavedModel directory or a Keras .h5 file), got %d arguments", len(pos))
	}
	path := pos[0]
	m, kind, err := loadModel(path, modelOptions{Arch: *arch})
	if err != nil {
		return err
	}
	defer m.Close()
	info := modelInfo{Model: path, Format: "savedmodel", WhiteBox: m.WhiteBox(), Input: m.InputShape, Classes: m.NumClasses,
		Signatures: map[string]signatureInfo{}}
	if m.Arch != nil {
		info.Architecture = m.Arch.Name
	}
	var sigs map[string]*pb.SignatureDef
	if kind == kindSavedModel {
		if sigs, err = readSignatures(path); err != nil {
			return err
		}
		for k, sig := range sigs {
			info.Signatures[k] = signatureOf(sig)
		}
	} else {
		info.Format = "keras_h5"
		info.Signatures[exporter.DefaultSignature] = signatureInfo{Method: exporter.PredictMethod,
			Inputs: []tensorInfo{{Key: "input", DType: "float32", Shape: outputShape(m.Input)}},
			Outputs: []tensorInfo{{Key: "logits", DType: "float32", Shape: outputShape(m.Logits)},
				{Key: "probabilities", DType: "float32", Shape: outputShape(m.Probabilities)}}}
	}
	var layers []tfmodels.LayerInfo
	if m.WhiteBox() {
		layers, err = m.Layers()
		if err != nil && !errors.Is(err, tfmodels.ErrNotWhiteBox) {
			return fmt.Errorf("model %s: %w", path, err)
		}
		if err == nil {
			info.Layers = []layerInfo{}
			for _, l := range layers {
				info.Layers = append(info.Layers, layerInfo{Name: l.Name, Kind: l.Kind, Shape: l.Shape, Params: l.Params})
			}
			n := m.ParamCount()
			info.Parameters = &n
		}
	}
	if *asJSON {
		return printJSON(c.stdout, info)
	}

	w := c.stdout
	if kind == kindSavedModel {
		box := "black-box: a SavedModel not written by bbd"
		if m.WhiteBox() {
			box = "white-box: written by bbd"
		}
		fmt.Fprintf(w, "model: %s (SavedModel, %s)\n", path, box)
		printSignature(w, exporter.DefaultSignature, sigs[exporter.DefaultSignature])
		var others []string
		for k := range sigs {
			if k != exporter.DefaultSignature {
				others = append(others, k)
			}
		}
		if len(others) > 0 {
			sort.Strings(others)
			fmt.Fprintf(w, "other signatures: %s\n", strings.Join(others, ", "))
		}
	} else {
		desc := "Keras HDF5"
		if m.Arch != nil {
			desc += ", architecture " + m.Arch.Name
		}
		fmt.Fprintf(w, "model: %s (%s)\n", path, desc)
		fmt.Fprintf(w, "signature %s (as 'bbd convert' writes it, method %s):\n", exporter.DefaultSignature, exporter.PredictMethod)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  input\tinput\t%s\t%s\n", "float32", fmtShape(outputShape(m.Input)))
		fmt.Fprintf(tw, "  output\tlogits\t%s\t%s\n", "float32", fmtShape(outputShape(m.Logits)))
		fmt.Fprintf(tw, "  output\tprobabilities\t%s\t%s\n", "float32", fmtShape(outputShape(m.Probabilities)))
		tw.Flush()
	}
	fmt.Fprintf(w, "input: %dx%dx%d (H x W x C, pixels in [0, 1]), classes: %d\n", m.InputShape[0], m.InputShape[1], m.InputShape[2], m.NumClasses)
	if info.Layers == nil {
		fmt.Fprintln(w, "layers: not available (black-box model: only its serving_default signature can be used)")
		return nil
	}
	printLayers(w, layers)
	fmt.Fprintf(w, "parameters: %s\n", thousands(m.ParamCount()))
	return nil
}

// signatureOf describes a signature for --json, keys sorted.
func signatureOf(sig *pb.SignatureDef) signatureInfo {
	si := signatureInfo{Method: sig.GetMethodName(), Inputs: []tensorInfo{}, Outputs: []tensorInfo{}}
	for _, io := range []struct {
		dst *[]tensorInfo
		m   map[string]*pb.TensorInfo
	}{{&si.Inputs, sig.GetInputs()}, {&si.Outputs, sig.GetOutputs()}} {
		for _, k := range slices.Sorted(maps.Keys(io.m)) {
			ti := io.m[k]
			*io.dst = append(*io.dst, tensorInfo{Key: k, DType: dtypeName(ti), Shape: shapeOf(ti), Tensor: ti.GetName()})
		}
	}
	return si
}

// dtypeName names a tensor's type as numpy does: float32, int32...
func dtypeName(ti *pb.TensorInfo) string {
	n := strings.ToLower(strings.TrimPrefix(ti.GetDtype().String(), "DT_"))
	switch n {
	case "half":
		return "float16"
	case "float":
		return "float32"
	case "double":
		return "float64"
	}
	return n
}

// printLayers writes the table of named layers.
func printLayers(w io.Writer, layers []tfmodels.LayerInfo) {
	fmt.Fprintln(w, "layers:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  name\tkind\toutput shape\tparams\t")
	for _, l := range layers {
		p := ""
		if l.Params > 0 {
			p = thousands(l.Params)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t\n", l.Name, l.Kind, fmtShape(l.Shape), p)
	}
	tw.Flush()
}

func printSignature(w io.Writer, name string, sig *pb.SignatureDef) {
	if sig == nil {
		fmt.Fprintf(w, "signature %s: missing\n", name)
		return
	}
	fmt.Fprintf(w, "signature %s (method %s):\n", name, sig.MethodName)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, io := range []struct {
		what string
		m    map[string]*pb.TensorInfo
	}{{"input", sig.Inputs}, {"output", sig.Outputs}} {
		for _, k := range slices.Sorted(maps.Keys(io.m)) {
			ti := io.m[k]
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t(tensor %s)\n", io.what, k, dtypeName(ti), fmtShape(shapeOf(ti)), ti.GetName())
		}
	}
	tw.Flush()
}

// shapeOf returns a signature tensor's shape, -1 for unknown dimensions, nil
// for an unknown rank.
func shapeOf(ti *pb.TensorInfo) []int64 {
	s := ti.GetTensorShape()
	if s == nil || s.UnknownRank {
		return nil
	}
	dims := make([]int64, len(s.Dim))
	for i, d := range s.Dim {
		dims[i] = d.Size
	}
	return dims
}

func outputShape(o tf.Output) []int64 {
	if o.Op == nil {
		return nil
	}
	sh, err := o.Shape().ToSlice()
	if err != nil {
		return nil
	}
	return sh
}

// fmtShape formats a shape with -1 for unknown dimensions: [-1, 55, 47, 3].
func fmtShape(s []int64) string {
	if s == nil {
		return "[?]"
	}
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
