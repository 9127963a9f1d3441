package main

import (
	"fmt"
	"io"
	"os"

	tf "github.com/galeone/tensorflow/tensorflow/go"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/internal/pyrun"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// benchTrain times one epoch of training (SGD, lr 1e-3, momentum 0.9, batches
// in order) of the DeepID BadNet on n images in Go and with Keras fit in
// Python TensorFlow, same weights, images, labels and batch size.
func benchTrain(w io.Writer, model string, imgs *data.Images, n, batch, runs, rounds int, sess *tf.SessionOptions, noPython bool) error {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i % imgs.Len()
	}
	ex, err := imgs.Subset(idx)
	if err != nil {
		return err
	}
	for i := range ex.Labels {
		if ex.Labels[i] < 0 {
			return fmt.Errorf("%s: image %s has no label (label=L in its name); training needs labels", model, ex.Name(i))
		}
	}
	m, err := tfmodels.ImportKerasH5(model, tfmodels.DeepID(), tfmodels.BuildOptions{Source: model, BatchSize: batch, Session: sess})
	if err != nil {
		return modelError(model, err)
	}
	defer m.Close()
	fmt.Fprintf(w, "bbd bench --train: %s (DeepID, %s parameters), %d labelled images (%d real faces repeated), batch %d, SGD lr 1e-3 momentum 0.9, %d rounds of Go then Python, each path best of %d epochs after a warm-up epoch; medians over rounds\n",
		model, thousands(m.ParamCount()), n, imgs.Len(), batch, rounds, runs)
	settings := tfmodels.TrainSettings{BatchSize: batch, NoShuffle: true,
		Optimizer: tfmodels.OptimizerSettings{Kind: tfmodels.SGD, LearningRate: 1e-3, Momentum: 0.9}}
	var xf, yf string
	if !noPython {
		if _, err := pyrun.Python(); err != nil {
			return fmt.Errorf("%v (or use --no-python)", err)
		}
		x, err := ex.Float32(0, n)
		if err != nil {
			return err
		}
		labels := make([]float32, n)
		for i := range labels {
			labels[i] = float32(ex.Labels[i])
		}
		if xf, err = tempNpy(x, []int{n, ex.H, ex.W, ex.C}); err != nil {
			return err
		}
		defer os.Remove(xf)
		if yf, err = tempNpy(labels, []int{n}); err != nil {
			return err
		}
		defer os.Remove(yf)
	}
	var goRates, pyRates, ratios []float64
	tfVersion := ""
	for range rounds {
		goRate, err := bestRate(n, runs, func() error {
			_, err := m.Train(ex, settings)
			return err
		})
		if err != nil {
			return err
		}
		goRates = append(goRates, goRate)
		if noPython {
			continue
		}
		var py struct {
			TFVersion string  `json:"tf_version"`
			KerasFit  float64 `json:"keras_fit"`
		}
		if err := pyrun.RunEmbedded(&py, "bench_train.py", model, xf, yf, fmt.Sprint(batch), fmt.Sprint(runs)); err != nil {
			return fmt.Errorf("python benchmark: %w", err)
		}
		tfVersion = py.TFVersion
		pyRates = append(pyRates, py.KerasFit)
		ratios = append(ratios, goRate/py.KerasFit)
	}
	t := benchTable{base: median(goRates)}
	t.row(fmt.Sprintf("Go: tfmodels Train (libtensorflow %s)", tf.Version()), median(goRates))
	if !noPython {
		t.row(fmt.Sprintf("Python: Keras model.fit (TF %s)", tfVersion), median(pyRates))
	}
	t.write(w)
	if !noPython {
		fmt.Fprintf(w, "Go / Keras fit, per round: %s; median %.2f\n", fmtRatios(ratios), median(ratios))
	}
	return nil
}

// tempNpy writes x to a temporary .npy file and returns its path.
func tempNpy(x []float32, shape []int) (string, error) {
	f, err := os.CreateTemp("", "bbd-bench-*.npy")
	if err != nil {
		return "", err
	}
	err = writeNpy(f, x, shape)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}
