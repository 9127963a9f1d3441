package main

import (
	"fmt"
	"io"
	"os"

	tf "github.com/galeone/tensorflow/tensorflow/go"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/internal/pyoracle"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// benchTrain times one epoch of training (SGD, lr 1e-3, momentum 0.9, batches
// in order) of the DeepID BadNet on n images in Go and with Keras fit in
// Python TensorFlow, same weights, images, labels and batch size.
func benchTrain(w io.Writer, model string, imgs *data.Images, n, batch, runs int, sess *tf.SessionOptions, noPython bool) error {
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
	fmt.Fprintf(w, "bbd bench --train: %s (DeepID, %s parameters), %d labelled images (%d real faces repeated), batch %d, SGD lr 1e-3 momentum 0.9, best of %d epochs after a warm-up epoch\n",
		model, thousands(m.ParamCount()), n, imgs.Len(), batch, runs)
	settings := tfmodels.TrainSettings{BatchSize: batch, NoShuffle: true,
		Optimizer: tfmodels.OptimizerSettings{Kind: tfmodels.SGD, LearningRate: 1e-3, Momentum: 0.9}}
	goRate, err := bestRate(n, runs, func() error {
		_, err := m.Train(ex, settings)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%-44s  %8s  %9s\n", "path", "images/s", "Go / path")
	fmt.Fprintf(w, "%-44s  %8.0f  %9.2f\n", fmt.Sprintf("Go: tfmodels Train (libtensorflow %s)", tf.Version()), goRate, 1.0)
	if noPython {
		return nil
	}
	if _, err := pyoracle.Python(); err != nil {
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
	xf, err := tempNpy(x, []int{n, ex.H, ex.W, ex.C})
	if err != nil {
		return err
	}
	defer os.Remove(xf)
	yf, err := tempNpy(labels, []int{n})
	if err != nil {
		return err
	}
	defer os.Remove(yf)
	var py struct {
		TFVersion string  `json:"tf_version"`
		KerasFit  float64 `json:"keras_fit"`
	}
	if err := pyoracle.Run(&py, "bench_train.py", model, xf, yf, fmt.Sprint(batch), fmt.Sprint(runs)); err != nil {
		return fmt.Errorf("python benchmark: %w", err)
	}
	fmt.Fprintf(w, "%-44s  %8.0f  %9.2f\n", fmt.Sprintf("Python: Keras model.fit (TF %s)", py.TFVersion), py.KerasFit, goRate/py.KerasFit)
	fmt.Fprintf(w, "Go / Keras fit: %.2f\n", goRate/py.KerasFit)
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
