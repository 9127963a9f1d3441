package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"

	tf "github.com/galeone/tensorflow/tensorflow/go"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/internal/pyrun"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// benchStrip times STRIP (M overlays per input, bbd's default overlay, in the graph)
// against plain inference on the same model and the same number of images,
// in Go and in Python TensorFlow (bench_strip.py, embedded from internal/pyrun:
// plain inference, STRIP in a tf.function, and STRIP as the notebooks run
// it). The images counted are each input and its M overlaid copies, N * (M +
// 1) per pass, for every path. The faces are the inputs (repeated to
// inputs) and the overlay pool.
func benchStrip(w io.Writer, model string, imgs *data.Images, inputs, overlays, batch, runs, rounds int, sess *tf.SessionOptions, noPython bool) error {
	if inputs <= 0 || overlays <= 0 || inputs*(overlays+1) > maxBenchImages {
		return usagef("--inputs and --overlays must be positive, with inputs * (overlays + 1) at most %d", maxBenchImages)
	}
	idx := make([]int, inputs)
	for i := range idx {
		idx[i] = i % imgs.Len()
	}
	ex, err := imgs.Subset(idx)
	if err != nil {
		return err
	}
	x, err := ex.Float32(0, inputs)
	if err != nil {
		return err
	}
	images := inputs * (overlays + 1)
	flat := make([]float32, images*imgs.Size())
	for i := 0; i < len(flat); i += len(x) {
		copy(flat[i:], x)
	}
	// Plain inference on the frozen model, as bbd predict runs it.
	plain, err := tfmodels.ImportKerasH5(model, tfmodels.DeepID(), tfmodels.BuildOptions{Source: model, BatchSize: batch, Session: sess, Frozen: true})
	if err != nil {
		return modelError(model, err)
	}
	defer plain.Close()
	// STRIP on the white-box model (it builds a frozen net of its own on the
	// overlaid copies), as bbd strip runs it.
	m, err := tfmodels.ImportKerasH5(model, tfmodels.DeepID(), tfmodels.BuildOptions{Source: model, BatchSize: batch, Session: sess})
	if err != nil {
		return modelError(model, err)
	}
	defer m.Close()
	s, err := defence.NewSTRIP(m, imgs, defence.STRIPConfig{Overlays: overlays, Seed: 1, BatchSize: batch})
	if err != nil {
		return err
	}
	defer s.Close()

	overlay := "pixel sum"
	if c := s.Config(); c.Overlay == defence.OverlayBlend {
		overlay = fmt.Sprintf("blend %.2f x + %.2f o", 1-c.Alpha, c.Alpha)
	}
	fmt.Fprintf(w, "bbd bench --strip: %s (DeepID, %s parameters), STRIP with M = %d overlays (%s) drawn from %d faces, %d inputs (faces repeated): %d images per pass (each input and its M copies) for every path, batch %d images per run (%d inputs per STRIP run); %d rounds of Go then Python, each path best of %d runs after a warm-up run; medians over rounds\n",
		model, thousands(m.ParamCount()), overlays, overlay, imgs.Len(), inputs, images, batch, max(1, batch/(overlays+1)), rounds, runs)

	var xf, of string
	if !noPython {
		if _, err := pyrun.Python(); err != nil {
			return fmt.Errorf("%v (or use --no-python)", err)
		}
		ov := make([]float32, 0, overlays*imgs.Size())
		for _, i := range s.OverlayIndices() {
			v, err := imgs.Float32(i, i+1)
			if err != nil {
				return err
			}
			ov = append(ov, v...)
		}
		if xf, err = tempNpy(x, []int{inputs, imgs.H, imgs.W, imgs.C}); err != nil {
			return err
		}
		defer os.Remove(xf)
		if of, err = tempNpy(ov, []int{overlays, imgs.H, imgs.W, imgs.C}); err != nil {
			return err
		}
		defer os.Remove(of)
	}

	var plainRates, stripRates, pyPlain, pyGraph, pyNumpy, ratioPlain, ratioPy []float64
	var goScores []float64
	var py struct {
		TFVersion  string    `json:"tf_version"`
		Plain      float64   `json:"plain"`
		StripGraph float64   `json:"strip_graph"`
		StripNumpy float64   `json:"strip_numpy"`
		Scores     []float64 `json:"scores"`
	}
	ctx := context.Background()
	for range rounds {
		pr, err := bestRate(images, runs, func() error {
			_, err := plain.Predict(flat, images)
			return err
		})
		if err != nil {
			return err
		}
		sr, err := bestRate(images, runs, func() error {
			var err error
			goScores, _, err = s.Scores(ctx, x, inputs)
			return err
		})
		if err != nil {
			return err
		}
		plainRates, stripRates, ratioPlain = append(plainRates, pr), append(stripRates, sr), append(ratioPlain, sr/pr)
		if noPython {
			continue
		}
		if err := pyrun.RunEmbedded(&py, "bench_strip.py", model, xf, of, fmt.Sprint(batch), fmt.Sprint(runs), fmt.Sprint(s.Config().Alpha)); err != nil {
			return fmt.Errorf("python benchmark: %w (or use --no-python)", err)
		}
		pyPlain, pyGraph, pyNumpy = append(pyPlain, py.Plain), append(pyGraph, py.StripGraph), append(pyNumpy, py.StripNumpy)
		ratioPy = append(ratioPy, sr/max(py.StripGraph, py.StripNumpy))
	}
	t := benchTable{base: median(stripRates)}
	lib := tf.Version()
	t.row(fmt.Sprintf("Go: bbd strip, overlays in the graph (libtensorflow %s)", lib), median(stripRates))
	t.row(fmt.Sprintf("Go: plain inference, frozen, as bbd predict (libtensorflow %s)", lib), median(plainRates))
	if !noPython {
		t.row(fmt.Sprintf("Python: STRIP in a tf.function (TF %s)", py.TFVersion), median(pyGraph))
		t.row(fmt.Sprintf("Python: STRIP as the notebooks, numpy + model.predict (TF %s)", py.TFVersion), median(pyNumpy))
		t.row(fmt.Sprintf("Python: plain inference, tf.function (TF %s)", py.TFVersion), median(pyPlain))
	}
	fmt.Fprintln(w, `("Go / path": the Go STRIP rate over the path's)`)
	t.write(w)
	fmt.Fprintf(w, "Go STRIP / Go plain inference, per round: %s; median %.2f\n", fmtRatios(ratioPlain), median(ratioPlain))
	if !noPython {
		fmt.Fprintf(w, "Go STRIP / faster Python STRIP, per round: %s; median %.2f\n", fmtRatios(ratioPy), median(ratioPy))
		diff := 0.0
		for i := range min(len(goScores), len(py.Scores)) {
			diff = math.Max(diff, math.Abs(goScores[i]-py.Scores[i]))
		}
		fmt.Fprintf(w, "STRIP scores, Go vs Python tf.function: max |difference| %.2g over %d inputs\n", diff, min(len(goScores), len(py.Scores)))
	}
	return nil
}
