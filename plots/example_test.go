package plots_test

import (
	"bytes"
	"fmt"
	"image/png"
	"log"

	"github.com/bbd-workbench/bbd/plots"
)

func size(f *plots.Figure) string {
	b, err := f.PNG()
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		log.Fatal(err)
	}
	return fmt.Sprintf("%dx%d", cfg.Width, cfg.Height)
}

// Two panels of training curves side by side, one legend below for both.
func ExampleLines() {
	epochs := []float64{1, 2, 3}
	f, err := plots.Lines("Training", []plots.LinePanel{
		{Title: "loss", XLabel: "epoch", Series: []plots.Series{
			{Name: "BadNet", X: epochs, Y: []float64{0.9, 0.5, 0.3}},
			{Name: "repaired", X: epochs, Y: []float64{1.1, 0.7, 0.4}},
		}},
		{Title: "accuracy", XLabel: "epoch", YMin: 0, YMax: 1, Series: []plots.Series{
			{Name: "BadNet", X: epochs, Y: []float64{0.7, 0.85, 0.9}},
			{Name: "repaired", X: epochs, Y: []float64{0.6, 0.8, 0.88}},
		}},
	}, 2)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(f.Title(), size(f))
	// Output: Training 768x356
}

// STRIP's figure: the entropies of clean and poisoned inputs and the threshold.
func ExampleHistograms() {
	f, err := plots.Histograms(plots.HistogramOptions{
		Title: "STRIP", XLabel: "entropy", Bins: 10, Threshold: 0.5, Mark: true},
		plots.Distribution{Name: "clean", Values: []float64{1.1, 1.3, 0.9, 1.2, 1.0}},
		plots.Distribution{Name: "poisoned", Values: []float64{0.1, 0.05, 0.2, 0.15}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(f.Title(), size(f))
	// Output: STRIP 480x366
}
