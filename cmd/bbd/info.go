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

func runInfo(c *cmdEnv, args []string) error {
	arch := c.flags.String("arch", "", "architecture of a weights-only Keras file (deepid); default: the file's own, DeepID for weights-only files")
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
	w := c.stdout
	if kind == kindSavedModel {
		sigs, err := readSignatures(path)
		if err != nil {
			return err
		}
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
	if !m.WhiteBox() {
		fmt.Fprintln(w, "layers: not available (black-box model: only its serving_default signature can be used)")
		return nil
	}
	layers, err := m.Layers()
	if err != nil {
		if errors.Is(err, tfmodels.ErrNotWhiteBox) {
			fmt.Fprintln(w, "layers: not available (black-box model)")
			return nil
		}
		return fmt.Errorf("model %s: %w", path, err)
	}
	printLayers(w, layers)
	fmt.Fprintf(w, "parameters: %s\n", thousands(m.ParamCount()))
	return nil
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
			dt := strings.ToLower(strings.TrimPrefix(ti.GetDtype().String(), "DT_"))
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t(tensor %s)\n", io.what, k, dt, fmtShapeProto(ti), ti.GetName())
		}
	}
	tw.Flush()
}

func fmtShapeProto(ti *pb.TensorInfo) string {
	s := ti.GetTensorShape()
	if s == nil || s.UnknownRank {
		return "[?]"
	}
	dims := make([]int64, len(s.Dim))
	for i, d := range s.Dim {
		dims[i] = d.Size
	}
	return fmtShape(dims)
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
