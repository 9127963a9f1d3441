package defence

import (
	"context"
	"fmt"
	"slices"

	"github.com/bbd-workbench/bbd/tfmodels"
)

// ReconstructConfig configures [Reconstruct]. Zero fields take the defaults
// of [DefaultReconstructConfig].
type ReconstructConfig struct {
	// Train fine-tunes the reconstructed model on the mixed data. Zero
	// fields: Adam (learning rate 1e-3), 10 epochs (the authors' run), batch
	// 64; every layer is trained unless Train.Train/Freeze say otherwise
	// (Train.Train = []string{<output layer>} trains the new head alone).
	Train tfmodels.TrainSettings
	// Seed of the new head's initial weights and of the shuffles.
	Seed uint64
}

// DefaultReconstructConfig returns the defaults, filled in.
func DefaultReconstructConfig() ReconstructConfig {
	c := ReconstructConfig{}
	c.fill()
	return c
}

func (c *ReconstructConfig) fill() {
	if c.Train.Optimizer.Kind == "" {
		c.Train.Optimizer.Kind = tfmodels.Adam
	}
	if c.Train.Epochs == 0 {
		c.Train.Epochs = 10
	}
	if c.Train.BatchSize == 0 {
		c.Train.BatchSize = 64
	}
}

// Validate checks the configuration.
func (c ReconstructConfig) Validate() error {
	if c.Train.Epochs < 0 || c.Train.BatchSize < 0 {
		return configError("reconstruct", "Train", "non-negative epochs and batch size", fmt.Sprint(c.Train.Epochs, "/", c.Train.BatchSize))
	}
	return nil
}

// Reconstruct builds the Bimodel paper's "reconstructed" model (its section
// 2.1): m up to its last hidden layer, followed by a new output layer of N+1
// units (softmax) whose class N means "poisoned", fine-tuned on clean data
// with their labels plus poisoned data labelled N. It needs poisoned data,
// which a defender rarely has; the paper found it falls short of the
// Bimodel defence. m is left unchanged.
func Reconstruct(ctx context.Context, m *tfmodels.Model, clean Examples, poisoned []Examples, cfg ReconstructConfig) (*tfmodels.Model, *tfmodels.History, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	cfg.fill()
	if !m.WhiteBox() || m.Frozen() {
		return nil, nil, fmt.Errorf("reconstruct: the model must be white-box and not frozen")
	}
	if len(poisoned) == 0 {
		return nil, nil, fmt.Errorf("reconstruct: expected poisoned data (labelled N), found none")
	}
	arch := *m.Arch
	arch.Layers = slices.Clone(m.Arch.Layers)
	out := -1
	for i, l := range arch.Layers {
		if l.Name == arch.Output {
			out = i
		}
	}
	if arch.Layers[out].Kind != tfmodels.KindDense {
		return nil, nil, fmt.Errorf("reconstruct: the output layer %q is a %s, not a Dense layer", arch.Output, arch.Layers[out].Kind)
	}
	n := m.NumClasses
	arch.Layers[out].Units = n + 1
	arch.Layers[out].Activation = tfmodels.ActSoftmax
	arch.Name = m.Arch.Name + "_reconstructed"
	w, err := m.GetWeights()
	if err != nil {
		return nil, nil, err
	}
	delete(w, arch.Output+"/kernel")
	delete(w, arch.Output+"/bias")
	masks := m.Masks()
	// Random weights for the new head only: build with random weights, then
	// set every other weight from m.
	r, err := tfmodels.Build(&arch, nil, tfmodels.BuildOptions{Seed: cfg.Seed, BatchSize: m.BatchSize,
		Masks: masks[tfmodels.MaskOutput], ChannelMasks: masks[tfmodels.MaskChannel], KernelMasks: masks[tfmodels.MaskKernel]})
	if err != nil {
		return nil, nil, fmt.Errorf("reconstruct: %w", err)
	}
	if err := r.SetWeights(w); err != nil {
		r.Close()
		return nil, nil, fmt.Errorf("reconstruct: %w", err)
	}
	parts := []Examples{clean}
	for _, p := range poisoned {
		parts = append(parts, relabelled{p, int32(n)})
	}
	train := cfg.Train
	train.Seed = cfg.Seed
	userAfter := train.AfterBatch
	train.AfterBatch = func(step int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if userAfter != nil {
			return userAfter(step)
		}
		return nil
	}
	h, err := r.Train(concatExamples(parts), train)
	if err != nil {
		r.Close()
		return nil, nil, fmt.Errorf("reconstruct: %w", err)
	}
	return r, h, nil
}

// relabelled gives every example of ex the label label.
type relabelled struct {
	ex    Examples
	label int32
}

func (r relabelled) Len() int { return r.ex.Len() }

func (r relabelled) Gather(idx []int, x []float32, labels []int32) error {
	if err := r.ex.Gather(idx, x, labels); err != nil {
		return err
	}
	for i := range labels {
		labels[i] = r.label
	}
	return nil
}

// concatExamples is parts one after the other.
type concatExamples []Examples

func (c concatExamples) Len() int {
	n := 0
	for _, p := range c {
		n += p.Len()
	}
	return n
}

func (c concatExamples) Gather(idx []int, x []float32, labels []int32) error {
	per := len(x) / max(len(idx), 1)
	for k, i := range idx {
		for _, p := range c {
			if i < p.Len() {
				if err := p.Gather([]int{i}, x[k*per:(k+1)*per], labels[k:k+1]); err != nil {
					return err
				}
				break
			}
			i -= p.Len()
		}
	}
	return nil
}
