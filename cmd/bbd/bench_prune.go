package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	tf "github.com/galeone/tensorflow/tensorflow/go"

	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/internal/pyrun"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// benchPrune times a whole default fine-pruning sweep (unit pruning, 10
// fractions, 20 epochs of SGD on 80 % of the clean data each, evaluations
// included) in Go, then Keras fit on the work of one fraction of it (the
// same pruned model, data, epochs, batch and optimizer), and compares images
// per second of fine-tuning.
func benchPrune(w io.Writer, modelDir, clean string, noPython bool) error {
	if clean == "" {
		clean = filepath.Join(filepath.Dir(filepath.Clean(modelDir)), "data", "clean_validation_data.h5")
	}
	m, _, err := loadModel(modelDir, modelOptions{})
	if err != nil {
		return err
	}
	defer m.Close()
	if !m.WhiteBox() {
		return fmt.Errorf("%s: the prune benchmark needs a white-box model", modelDir)
	}
	val, err := loadImages([]string{clean}, m.InputShape)
	if err != nil {
		return err
	}
	// Plain images: the same work as Keras fit on the same data.
	cfg := defence.FinePruneConfig{Method: defence.PruneUnit, Occlude: defence.NoOcclusion}.WithDefaults()
	tune := val.Len() - cfg.HeldOut(val.Len())
	fmt.Fprintf(w, "bbd bench --prune: %s, %d clean images (%d fine-tuned on, %d held out), unit pruning, %d fractions x %d epochs of SGD lr %g momentum %g, batch %d\n",
		modelDir, val.Len(), tune, val.Len()-tune, len(cfg.Fractions), cfg.FineTune.Epochs,
		cfg.FineTune.Optimizer.LearningRate, cfg.FineTune.Optimizer.Momentum, cfg.FineTune.BatchSize)
	var trainTime time.Duration
	var lastStart time.Time
	cfg.Progress = func(p defence.PruneProgress) {
		switch p.Stage {
		case "pruned":
			lastStart = time.Now()
		case "fine-tuned":
			trainTime += time.Since(lastStart) // fine-tuning plus the fine-tuned evaluation
		}
	}
	start := time.Now()
	repaired, rep, err := defence.FinePrune(context.Background(), m, val, nil, cfg)
	if err != nil {
		return err
	}
	wall := time.Since(start)
	defer repaired.Close()
	images := float64(len(cfg.Fractions) * cfg.FineTune.Epochs * tune)
	goRate := images / trainTime.Seconds()
	fmt.Fprintf(w, "Go sweep of %s: %.1f s wall (%.1f min), %.0f fine-tuning images/s over the sweep's wall time, %.0f images/s while fine-tuning; chose %.2f\n",
		strings.Join(rep.Layers, ", "), wall.Seconds(), wall.Minutes(), images/wall.Seconds(), goRate, rep.Fraction)
	if noPython {
		return nil
	}
	// Keras on one fraction's work: the chosen fraction's masks on the BadNet's weights.
	rw, err := repaired.GetWeights()
	if err != nil {
		return err
	}
	w0, err := m.GetWeights()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bbd-bench-prune-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for name, v := range w0 {
		if err := writeNpyFile(filepath.Join(dir, strings.ReplaceAll(name, "/", "__")+".npy"), v.Values, v.Shape); err != nil {
			return err
		}
	}
	for _, l := range rep.Layers {
		v := rw[l+"/"+tfmodels.MaskOutput]
		if err := writeNpyFile(filepath.Join(dir, l+"__mask.npy"), v.Values, v.Shape); err != nil {
			return err
		}
	}
	x, err := val.Float32(0, tune)
	if err != nil {
		return err
	}
	y := make([]float32, tune)
	for i := range y {
		y[i] = float32(val.Labels[i])
	}
	xf, yf := filepath.Join(dir, "x.npy"), filepath.Join(dir, "y.npy")
	if err := writeNpyFile(xf, x, []int64{int64(tune), int64(val.H), int64(val.W), int64(val.C)}); err != nil {
		return err
	}
	if err := writeNpyFile(yf, y, []int64{int64(tune)}); err != nil {
		return err
	}
	var py struct {
		TFVersion string  `json:"tf_version"`
		KerasFit  float64 `json:"keras_fit"`
		Seconds   float64 `json:"seconds"`
	}
	if err := pyrun.RunEmbedded(&py, "bench_finetune.py", dir, xf, yf, fmt.Sprint(cfg.FineTune.Epochs), fmt.Sprint(cfg.FineTune.BatchSize), strings.Join(rep.Layers, ",")); err != nil {
		return fmt.Errorf("python benchmark: %w (or use --no-python)", err)
	}
	t := benchTable{base: goRate}
	t.row(fmt.Sprintf("Go: fine-tuning in the sweep (libtensorflow %s)", tf.Version()), goRate)
	t.row(fmt.Sprintf("Python: Keras fit, one fraction's fine-tuning (TF %s)", py.TFVersion), py.KerasFit)
	t.write(w)
	fmt.Fprintf(w, "a Keras sweep at that rate: about %.1f min of fine-tuning alone\n", images/py.KerasFit/60)
	return nil
}

func writeNpyFile(path string, x []float32, shape []int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	dims := make([]int, len(shape))
	for i, d := range shape {
		dims[i] = int(d)
	}
	if err := writeNpy(f, x, dims); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
