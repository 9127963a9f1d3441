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
	// Epochs of fine-tuning (15), BatchSize (32), Adam's LearningRate (1e-3).
	Epochs       int     `json:"epochs"`
	BatchSize    int     `json:"batch_size"`
	LearningRate float64 `json:"learning_rate"`
	// Dilation: UnlearnAugmented grows the thresholded mask by this many
	// pixels (2; negative: none).
	Dilation int `json:"dilation"`
	// Recipe is UnlearnAugmented (default) or UnlearnPaper (see the
	// constants).
	Recipe string `json:"recipe,omitempty"`
	// Labels whose triggers are unlearnt (nil: the report's flagged labels).
	Labels []int `json:"labels,omitempty"`
	// Seed of the choice of stamped images and of the shuffling.
	Seed uint64 `json:"seed"`
	// Progress, if set, receives the fine-tuning progress.
	Progress func(tfmodels.TrainProgress) `json:"-"`
}

// Unlearning recipes.
const (
	// UnlearnPaper is Wang et al.'s recipe: a fixed Fraction of the clean
	// images stamped once with the reversed triggers, keeping their labels.
	UnlearnPaper = "paper"
	// UnlearnAugmented stamps afresh at every batch: each image is stamped
	// with probability Fraction, with one of the reversed triggers in one of
	// four forms drawn evenly: the reversed trigger at a random strength a
	// in [0.5, 1.5] (x' = (1 - a m) x + a m p, a m clipped to 1); its mask
	// thresholded (m > max m / 2 set to 1) and grown by Dilation pixels,
	// with the reversed pattern; the same mask with uniform noise instead of
	// the pattern; the thresholded mask's bounding box, grown the same, with
	// uniform noise.
	// The reversed trigger is only the smallest sufficient part of the real
	// one (zoo anonymous_2: 21 scattered pixels of a 7x7 noise square);
	// unlearning it alone leaves the rest of the real trigger working
	// (measured: attack success 0.29 with UnlearnPaper); the grown masks
	// and the noise make the model ignore the whole region.
	UnlearnAugmented = "augmented"
)

// DefaultUnlearnConfig returns the defaults.
func DefaultUnlearnConfig() UnlearnConfig {
	return UnlearnConfig{Fraction: 0.2, Epochs: 15, BatchSize: 32, LearningRate: 1e-3}
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
	if c.Recipe != "" && c.Recipe != UnlearnPaper && c.Recipe != UnlearnAugmented {
		return configError(m, "Recipe", `"augmented" or "paper"`, fmt.Sprintf("%q", c.Recipe))
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
	if c.Recipe == "" {
		c.Recipe = UnlearnAugmented
	}
	if c.Dilation == 0 {
		c.Dilation = 2
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
	Labels []int `json:"labels"`
	// Stamped: images stamped (UnlearnPaper), or stamps drawn over all the
	// epochs (UnlearnAugmented).
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
func (u *Unlearn) Mitigate(ctx context.Context, m *tfmodels.Model, clean Examples) (_ *tfmodels.Model, rep Report, _ error) {
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
	cm := u.Report.MaskChannels
	var train tfmodels.Examples = &floatExamples{x: x, y: y, per: per}
	switch {
	case len(trig) == 0:
	case cfg.Recipe == UnlearnPaper:
		rng := rand.New(rand.NewPCG(cfg.Seed, 0x756e6c6561726e))
		k := int(math.Round(cfg.Fraction * float64(n)))
		for j, i := range rng.Perm(n)[:k] {
			t := trig[j%len(trig)]
			stampInto(x[i*per:(i+1)*per], t.Mask, t.Pattern, 1, h*w, c, cm)
			stamped++
		}
	default:
		ae := &augmentedExamples{floatExamples: floatExamples{x: x, y: y, per: per}, frac: cfg.Fraction,
			rng: rand.New(rand.NewPCG(cfg.Seed, 0x6175676d)), hw: h * w, c: c, cm: cm}
		for _, t := range trig {
			th := thresholded(t.Mask)
			ae.masks = append(ae.masks, t.Mask, dilate(th, h, w, cm, cfg.Dilation), dilate(boxOf(th, h, w, cm), h, w, cm, cfg.Dilation))
			ae.pats = append(ae.pats, t.Pattern)
		}
		train = ae
		defer func() {
			if rep != nil {
				rep.(*UnlearnReport).Stamped = ae.stamped
			}
		}()
	}
	ur := &UnlearnReport{Labels: labels, Stamped: stamped, Images: n, Config: cfg}
	rm, err := tfmodels.Build(m.Arch, weights, tfmodels.BuildOptions{BatchSize: m.BatchSize})
	if err != nil {
		return nil, nil, fmt.Errorf("unlearn: copying the model: %w", err)
	}
	if err := ctx.Err(); err != nil {
		rm.Close()
		return nil, nil, err
	}
	ur.History, err = rm.Train(train, tfmodels.TrainSettings{
		Optimizer: tfmodels.OptimizerSettings{Kind: tfmodels.Adam, LearningRate: cfg.LearningRate},
		Epochs:    cfg.Epochs, BatchSize: cfg.BatchSize, Seed: cfg.Seed, Progress: cfg.Progress})
	if err != nil {
		rm.Close()
		return nil, nil, fmt.Errorf("unlearn: fine-tuning: %w", err)
	}
	return rm, ur, nil
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

// stampInto stamps img [H*W, C] with mask m [H*W, cm] at strength a and
// pattern p: x' = (1 - a m) x + a m p, a m clipped to 1.
func stampInto(img, m, p []float32, a float32, hw, c, cm int) {
	for px := 0; px < hw; px++ {
		for ch := 0; ch < c; ch++ {
			mv := min(a*m[px*cm+min(ch, cm-1)], 1)
			img[px*c+ch] = (1-mv)*img[px*c+ch] + mv*p[px*c+ch]
		}
	}
}

// thresholded is the mask with the values above half its maximum set to 1
// and the others to 0.
func thresholded(m []float32) []float32 {
	var hi float32
	for _, v := range m {
		hi = max(hi, v)
	}
	out := make([]float32, len(m))
	for i, v := range m {
		if v > hi/2 {
			out[i] = 1
		}
	}
	return out
}

// augmentedExamples stamps afresh at every Gather (the UnlearnAugmented
// recipe); masks holds each trigger's mask and its thresholded form.
type augmentedExamples struct {
	floatExamples
	frac    float64
	rng     *rand.Rand
	masks   [][]float32
	pats    [][]float32
	hw, c   int
	cm      int
	stamped int
	noise   []float32
}

// boxOf is the bounding box of the set pixels of a 0/1 mask [H, W, cm],
// filled (on every mask channel).
func boxOf(m []float32, h, w, cm int) []float32 {
	y0, y1, x0, x1 := h, -1, w, -1
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for ch := 0; ch < cm; ch++ {
				if m[(y*w+x)*cm+ch] != 0 {
					y0, y1, x0, x1 = min(y0, y), max(y1, y), min(x0, x), max(x1, x)
				}
			}
		}
	}
	out := make([]float32, len(m))
	for y := y0; y <= y1; y++ {
		for x := x0; x <= x1; x++ {
			for ch := 0; ch < cm; ch++ {
				out[(y*w+x)*cm+ch] = 1
			}
		}
	}
	return out
}

// dilate grows the set pixels of a 0/1 mask [H, W, cm] by r pixels (a
// square neighbourhood).
func dilate(m []float32, h, w, cm, r int) []float32 {
	out := make([]float32, len(m))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for ch := 0; ch < cm; ch++ {
				if m[(y*w+x)*cm+ch] == 0 {
					continue
				}
				for yy := max(0, y-r); yy <= min(h-1, y+r); yy++ {
					for xx := max(0, x-r); xx <= min(w-1, x+r); xx++ {
						out[(yy*w+xx)*cm+ch] = 1
					}
				}
			}
		}
	}
	return out
}

func (a *augmentedExamples) Gather(idx []int, x []float32, labels []int32) error {
	if err := a.floatExamples.Gather(idx, x, labels); err != nil {
		return err
	}
	for j := range idx {
		if a.rng.Float64() >= a.frac {
			continue
		}
		t := a.rng.IntN(len(a.pats))
		m, p, s := a.masks[3*t], a.pats[t], float32(0.5+a.rng.Float64())
		switch v := a.rng.IntN(4); v {
		case 1:
			m, s = a.masks[3*t+1], 1
		case 2, 3:
			m, s = a.masks[3*t+v-1], 1
			if len(a.noise) < len(p) {
				a.noise = make([]float32, len(p))
			}
			for i := range p {
				a.noise[i] = a.rng.Float32()
			}
			p = a.noise[:len(p)]
		}
		stampInto(x[j*a.per:(j+1)*a.per], m, p, s, a.hw, a.c, a.cm)
		a.stamped++
	}
	return nil
}
