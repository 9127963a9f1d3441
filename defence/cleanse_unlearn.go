package defence

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/bbd-workbench/bbd/tfmodels"
)

// UnlearnConfig configures Neural Cleanse's unlearning (Wang et al. 2019,
// section VI-C): fine-tuning on the defender's clean images, a fraction of
// them stamped with the reversed trigger of a flagged label and keeping
// their true label, so that the model learns to ignore the trigger.
type UnlearnConfig struct {
	// Fraction of the clean images stamped (0.2, the paper's 20 %), spread
	// evenly over the flagged labels' triggers.
	Fraction float64 `json:"fraction"`
	// Epochs of fine-tuning (5), BatchSize (32), Adam's LearningRate (1e-3).
	Epochs       int     `json:"epochs"`
	BatchSize    int     `json:"batch_size"`
	LearningRate float64 `json:"learning_rate"`
	// Labels whose triggers are unlearnt (nil: the report's flagged labels).
	Labels []int `json:"labels,omitempty"`
	// Seed of the choice of stamped images and of the shuffling.
	Seed uint64 `json:"seed"`
	// Progress, if set, receives the fine-tuning progress.
	Progress func(tfmodels.TrainProgress) `json:"-"`
}

// DefaultUnlearnConfig returns the defaults.
func DefaultUnlearnConfig() UnlearnConfig {
	return UnlearnConfig{Fraction: 0.2, Epochs: 5, BatchSize: 32, LearningRate: 1e-3}
}

// Validate checks the configuration (zero fields count as defaults).
func (c UnlearnConfig) Validate() error {
	const m = "unlearn"
	if c.Fraction < 0 || c.Fraction > 1 || math.IsNaN(c.Fraction) {
		return configError(m, "Fraction", "in [0, 1] (0: default)", c.Fraction)
	}
	if c.Epochs < 0 || c.BatchSize < 0 {
		return configError(m, "Epochs/BatchSize", "non-negative (0: default)", fmt.Sprint(c.Epochs, c.BatchSize))
	}
	if c.LearningRate < 0 || math.IsNaN(c.LearningRate) || math.IsInf(c.LearningRate, 0) {
		return configError(m, "LearningRate", "finite, non-negative (0: default)", c.LearningRate)
	}
	return nil
}

func (c UnlearnConfig) withDefaults() UnlearnConfig {
	d := DefaultUnlearnConfig()
	if c.Fraction == 0 {
		c.Fraction = d.Fraction
	}
	if c.Epochs == 0 {
		c.Epochs = d.Epochs
	}
	if c.BatchSize == 0 {
		c.BatchSize = d.BatchSize
	}
	if c.LearningRate == 0 {
		c.LearningRate = d.LearningRate
	}
	return c
}

// Unlearn is the unlearning mitigator ([Mitigator]) for the triggers of a
// Neural Cleanse report.
type Unlearn struct {
	Config UnlearnConfig
	Report *CleanseReport
}

// UnlearnReport says what unlearning did.
type UnlearnReport struct {
	Labels  []int             `json:"labels"`
	Stamped int               `json:"stamped"`
	Images  int               `json:"images"`
	Config  UnlearnConfig     `json:"config"`
	History *tfmodels.History `json:"history"`
}

// Method is "neural-cleanse-unlearning".
func (*UnlearnReport) Method() string { return "neural-cleanse-unlearning" }

// Name is "neural-cleanse-unlearning".
func (*Unlearn) Name() string { return "neural-cleanse-unlearning" }

// Mitigate returns a fine-tuned copy of m (white-box, with variables: it can
// be exported and used by the Bimodel defence); m is unchanged.
func (u *Unlearn) Mitigate(ctx context.Context, m *tfmodels.Model, clean Examples) (*tfmodels.Model, Report, error) {
	if err := u.Config.Validate(); err != nil {
		return nil, nil, err
	}
	cfg := u.Config.withDefaults()
	if u.Report == nil {
		return nil, nil, errors.New("unlearn: no Neural Cleanse report")
	}
	if m == nil || m.Arch == nil {
		return nil, nil, fmt.Errorf("unlearn: %w", tfmodels.ErrNotWhiteBox)
	}
	labels := cfg.Labels
	if labels == nil {
		labels = u.Report.Flagged
	}
	h, w, c := m.InputShape[0], m.InputShape[1], m.InputShape[2]
	if u.Report.InputShape != [3]int{h, w, c} {
		return nil, nil, fmt.Errorf("unlearn: the report's input shape %v is not the model's %v", u.Report.InputShape, m.InputShape)
	}
	var trig []*CleanseLabel
	for _, l := range labels {
		f, ok := u.Report.Label(l)
		if !ok || f.Mask == nil || f.Pattern == nil {
			return nil, nil, fmt.Errorf("unlearn: the report has no trigger for label %d", l)
		}
		trig = append(trig, f)
	}
	weights, err := m.GetWeights()
	if err != nil {
		return nil, nil, fmt.Errorf("unlearn: %w", err)
	}
	n := clean.Len()
	if n == 0 {
		return nil, nil, errors.New("unlearn: no clean images")
	}
	per := h * w * c
	x := make([]float32, n*per)
	y := make([]int32, n)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	if err := clean.Gather(idx, x, y); err != nil {
		return nil, nil, fmt.Errorf("unlearn: reading the clean images: %w", err)
	}
	for i, l := range y {
		if l < 0 || int(l) >= m.NumClasses {
			return nil, nil, fmt.Errorf("unlearn: clean image %d has label %d: unlearning needs true labels", i, l)
		}
	}
	stamped := 0
	if len(trig) > 0 {
		rng := rand.New(rand.NewPCG(cfg.Seed, 0x756e6c6561726e))
		k := int(math.Round(cfg.Fraction * float64(n)))
		cm := u.Report.MaskChannels
		for j, i := range rng.Perm(n)[:k] {
			t := trig[j%len(trig)]
			img := x[i*per : (i+1)*per]
			for p := 0; p < h*w; p++ {
				for ch := 0; ch < c; ch++ {
					mv := t.Mask[p*cm+min(ch, cm-1)]
					img[p*c+ch] = (1-mv)*img[p*c+ch] + mv*t.Pattern[p*c+ch]
				}
			}
			stamped++
		}
	}
	rep := &UnlearnReport{Labels: labels, Stamped: stamped, Images: n, Config: cfg}
	rm, err := tfmodels.Build(m.Arch, weights, tfmodels.BuildOptions{BatchSize: m.BatchSize})
	if err != nil {
		return nil, nil, fmt.Errorf("unlearn: copying the model: %w", err)
	}
	if err := ctx.Err(); err != nil {
		rm.Close()
		return nil, nil, err
	}
	rep.History, err = rm.Train(&floatExamples{x: x, y: y, per: per}, tfmodels.TrainSettings{
		Optimizer: tfmodels.OptimizerSettings{Kind: tfmodels.Adam, LearningRate: cfg.LearningRate},
		Epochs:    cfg.Epochs, BatchSize: cfg.BatchSize, Seed: cfg.Seed, Progress: cfg.Progress})
	if err != nil {
		rm.Close()
		return nil, nil, fmt.Errorf("unlearn: fine-tuning: %w", err)
	}
	return rm, rep, nil
}

// floatExamples is labelled float32 images in memory.
type floatExamples struct {
	x   []float32
	y   []int32
	per int
}

func (f *floatExamples) Len() int { return len(f.y) }

func (f *floatExamples) Gather(idx []int, x []float32, labels []int32) error {
	for j, i := range idx {
		if i < 0 || i >= len(f.y) {
			return fmt.Errorf("example %d out of range", i)
		}
		copy(x[j*f.per:(j+1)*f.per], f.x[i*f.per:(i+1)*f.per])
		labels[j] = f.y[i]
	}
	return nil
}
