package defence

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

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
	// With the selection rule (MaxEpochs > Epochs) Epochs is where the
	// selection starts.
	Epochs       int     `json:"epochs"`
	BatchSize    int     `json:"batch_size"`
	LearningRate float64 `json:"learning_rate"`
	// Dilation: UnlearnAugmented grows the thresholded mask by this many
	// pixels (2; negative: none).
	Dilation int `json:"dilation"`
	// Recipe is UnlearnAugmented (default) or UnlearnPaper (see the
	// constants).
	Recipe string `json:"recipe,omitempty"`
	// The selection rule. The defender has no poisoned data, only clean
	// images and the reversed triggers, so the rule watches what it can:
	// HoldOut (0.1) of the clean images (at least 20) are kept out of the
	// fine-tuning; after every epoch they are stamped with each flagged
	// label's reversed trigger in five fixed check forms (the trigger at
	// strength 1 and 1.5, its thresholded mask grown by Dilation with the
	// reversed pattern and with one fixed uniform noise, the grown mask's
	// bounding box with that noise: the forms the augmented recipe trains
	// on, at their strongest), and each form's attack success (the fraction
	// of the held-out images of other labels classified as the flagged
	// label) is measured, with the held-out clean accuracy. Fine-tuning runs
	// Epochs (15) epochs, then goes on up to MaxEpochs (30) and returns the
	// weights of the epoch from Epochs on whose check (the sum of the forms'
	// attack success over the flagged labels) is lowest, the later epoch on
	// a tie; it stops as soon as a check is 0. Epochs whose held-out clean
	// accuracy is significantly below the model's before fine-tuning (a
	// drop above MaxDrop, 0.03, plus two binomial standard errors of the
	// held-out accuracy) are not chosen. MaxEpochs < 0 (or <= Epochs) is
	// the fixed schedule: Epochs epochs, no hold-out.
	// Why: after about 15 epochs the real trigger's attack success no
	// longer falls but moves from epoch to epoch, around 0.05 (zoo
	// anonymous_2, 40 epochs, seeds 1-4: 0.02 to 0.13 at epochs 15-40; the
	// same with a tenth of the learning rate or twice the stamped
	// fraction), so a fixed epoch count ends wherever the draw leaves it
	// (0.035 to 0.098 after 15 epochs). The held-out check follows it
	// (correlation 0.73 over those epochs): choosing the epoch on it is
	// model selection on a validation set, with the backdoor's only
	// observable the defender has.
	MaxEpochs int     `json:"max_epochs"`
	HoldOut   float64 `json:"hold_out"`
	MaxDrop   float64 `json:"max_drop"`
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
	return UnlearnConfig{Fraction: 0.2, Epochs: 15, BatchSize: 32, LearningRate: 1e-3,
		MaxEpochs: 30, HoldOut: 0.1, MaxDrop: 0.03}
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
	if c.HoldOut < 0 || c.HoldOut >= 1 || math.IsNaN(c.HoldOut) {
		return configError(m, "HoldOut", "in [0, 1) (0: default)", c.HoldOut)
	}
	if c.MaxDrop < 0 || c.MaxDrop > 1 || math.IsNaN(c.MaxDrop) {
		return configError(m, "MaxDrop", "in [0, 1] (0: default)", c.MaxDrop)
	}
	return nil
}

func (c UnlearnConfig) withDefaults() UnlearnConfig {
	d := DefaultUnlearnConfig()
	d.Recipe, d.Dilation = UnlearnAugmented, 2
	orDefault(&c.Fraction, d.Fraction)
	orDefault(&c.Epochs, d.Epochs)
	orDefault(&c.BatchSize, d.BatchSize)
	orDefault(&c.LearningRate, d.LearningRate)
	orDefault(&c.Recipe, d.Recipe)
	orDefault(&c.Dilation, d.Dilation)
	orDefault(&c.MaxEpochs, d.MaxEpochs)
	orDefault(&c.HoldOut, d.HoldOut)
	orDefault(&c.MaxDrop, d.MaxDrop)
	return c
}

// orDefault sets *v to def when it is the zero value.
func orDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Unlearn is the unlearning mitigator ([Mitigator]) for the triggers of a
// Neural Cleanse report.
type Unlearn struct {
	Config UnlearnConfig
	Report *CleanseReport
	// afterEpoch, if set, sees the model after each check (tests).
	afterEpoch func(epoch int, m *tfmodels.Model)
}

// UnlearnReport says what unlearning did.
type UnlearnReport struct {
	Labels []int `json:"labels"`
	// Stamped: images stamped (UnlearnPaper), or stamps drawn over all the
	// epochs (UnlearnAugmented).
	Stamped int `json:"stamped"`
	// Images: clean images fine-tuned on; HeldOut: kept for the stopping
	// rule's checks (Checks, one per epoch from 0, before fine-tuning).
	Images  int            `json:"images"`
	HeldOut int            `json:"held_out,omitempty"`
	Checks  []UnlearnCheck `json:"checks,omitempty"`
	// Epochs: the epoch whose weights are returned; Stop, why fine-tuning
	// stopped: "zero" (a check at 0), "cap" (MaxEpochs reached; the best
	// epoch's weights returned), "cap, no eligible epoch" (every epoch's
	// held-out accuracy too low: the last weights returned), "" (fixed
	// schedule).
	Epochs  int               `json:"epochs"`
	Stop    string            `json:"stop,omitempty"`
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
	cm := u.Report.MaskChannels
	ur := &UnlearnReport{Labels: labels, Images: n, Config: cfg}
	// The selection rule's held-out images (see UnlearnConfig.MaxEpochs).
	var check *unlearnCheck
	if held := max(20, int(math.Round(cfg.HoldOut*float64(n)))); cfg.MaxEpochs > cfg.Epochs && len(trig) > 0 && n >= 2*held {
		perm := rand.New(rand.NewPCG(cfg.Seed, 0x686f6c64)).Perm(n)
		check = newUnlearnCheck(x, y, perm[:held], trig, cfg, h, w, c, cm)
		kept := perm[held:]
		slices.Sort(kept)
		xt, yt := make([]float32, len(kept)*per), make([]int32, len(kept))
		for j, i := range kept {
			copy(xt[j*per:(j+1)*per], x[i*per:(i+1)*per])
			yt[j] = y[i]
		}
		x, y, n = xt, yt, len(kept)
		ur.HeldOut = held
	} else {
		cfg.MaxEpochs = cfg.Epochs
	}
	ur.Images, ur.Config = n, cfg
	var train tfmodels.Examples = &floatExamples{x: x, y: y, per: per}
	switch {
	case len(trig) == 0:
	case cfg.Recipe == UnlearnPaper:
		rng := rand.New(rand.NewPCG(cfg.Seed, 0x756e6c6561726e))
		k := int(math.Round(cfg.Fraction * float64(n)))
		for j, i := range rng.Perm(n)[:k] {
			t := trig[j%len(trig)]
			stampInto(x[i*per:(i+1)*per], t.Mask, t.Pattern, 1, h*w, c, cm)
			ur.Stamped++
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
		defer func() { ur.Stamped = ae.stamped }()
	}
	rm, err := tfmodels.Build(m.Arch, weights, tfmodels.BuildOptions{BatchSize: m.BatchSize})
	if err != nil {
		return nil, nil, fmt.Errorf("unlearn: copying the model: %w", err)
	}
	if err := ctx.Err(); err != nil {
		rm.Close()
		return nil, nil, err
	}
	settings := tfmodels.TrainSettings{
		Optimizer: tfmodels.OptimizerSettings{Kind: tfmodels.Adam, LearningRate: cfg.LearningRate},
		Epochs:    cfg.MaxEpochs, BatchSize: cfg.BatchSize, Seed: cfg.Seed, Progress: cfg.Progress}
	var keep tfmodels.Weights // the chosen epoch's weights
	if check != nil {
		c0, err := check.run(rm, 0, u.afterEpoch)
		if err != nil {
			rm.Close()
			return nil, nil, fmt.Errorf("unlearn: %w", err)
		}
		ur.Checks = append(ur.Checks, c0)
		// the lowest eligible held-out accuracy (see UnlearnConfig.MaxEpochs)
		se := math.Sqrt(c0.CleanAccuracy * (1 - c0.CleanAccuracy) / float64(ur.HeldOut))
		floor := c0.CleanAccuracy - cfg.MaxDrop - 2*se
		batches := (n + cfg.BatchSize - 1) / cfg.BatchSize
		best := math.Inf(1)
		settings.AfterBatch = func(step int) error {
			if step%batches != 0 {
				return ctx.Err()
			}
			e := step / batches
			ce, err := check.run(rm, e, u.afterEpoch)
			if err != nil {
				return err
			}
			ur.Checks = append(ur.Checks, ce)
			if e < cfg.Epochs || ce.CleanAccuracy < floor || ce.Score > best {
				return ctx.Err()
			}
			best, ur.Epochs = ce.Score, e
			if keep, err = rm.GetWeights(); err != nil {
				return err
			}
			if ce.Score == 0 {
				return errUnlearnStop
			}
			return ctx.Err()
		}
	}
	ur.History, err = rm.Train(train, settings)
	switch {
	case errors.Is(err, errUnlearnStop):
		err, ur.Stop = nil, "zero"
	case err == nil && check != nil && keep == nil:
		ur.Stop, ur.Epochs = "cap, no eligible epoch", cfg.MaxEpochs
	case err == nil && check != nil:
		ur.Stop = "cap"
		err = rm.SetWeights(keep)
	case err == nil:
		ur.Epochs = cfg.Epochs
	}
	if err != nil {
		rm.Close()
		return nil, nil, fmt.Errorf("unlearn: fine-tuning: %w", err)
	}
	return rm, ur, nil
}

// errUnlearnStop ends the fine-tuning when a check is 0.
var errUnlearnStop = errors.New("unlearning stopped")

// UnlearnCheck is one epoch's check of the selection rule on the held-out
// clean images (epoch 0: before fine-tuning).
type UnlearnCheck struct {
	Epoch         int     `json:"epoch"`
	CleanAccuracy float64 `json:"clean_accuracy"`
	// Forms: the attack success of each flagged label's check forms, label
	// by label, form by form; Score: their sum (the rule's criterion).
	Score float64   `json:"score"`
	Forms []float64 `json:"forms"`
}

// unlearnCheck holds the held-out images, clean and stamped.
type unlearnCheck struct {
	clean   *floatExamples
	stamped []*floatExamples
}

// newUnlearnCheck builds the check sets of the held-out images idx of x, y:
// for each trigger and form, the held-out images of other labels stamped and
// labelled with the trigger's label.
func newUnlearnCheck(x []float32, y []int32, idx []int, trig []*CleanseLabel, cfg UnlearnConfig, h, w, c, cm int) *unlearnCheck {
	per := h * w * c
	uc := &unlearnCheck{clean: &floatExamples{x: make([]float32, len(idx)*per), y: make([]int32, len(idx)), per: per}}
	if err := (&floatExamples{x: x, y: y, per: per}).Gather(idx, uc.clean.x, uc.clean.y); err != nil {
		panic(err) // idx are in range
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x636865636b))
	noise := make([]float32, per)
	for i := range noise {
		noise[i] = rng.Float32()
	}
	for _, t := range trig {
		grown := dilate(thresholded(t.Mask), h, w, cm, cfg.Dilation)
		box := dilate(boxOf(thresholded(t.Mask), h, w, cm), h, w, cm, cfg.Dilation)
		for _, f := range []struct {
			m, p []float32
			a    float32
		}{{t.Mask, t.Pattern, 1}, {t.Mask, t.Pattern, 1.5}, {grown, t.Pattern, 1}, {grown, noise, 1}, {box, noise, 1}} {
			s := &floatExamples{per: per}
			for j, l := range uc.clean.y {
				if int(l) == t.Label {
					continue
				}
				img := slices.Clone(uc.clean.x[j*per : (j+1)*per])
				stampInto(img, f.m, f.p, f.a, h*w, c, cm)
				s.x = append(s.x, img...)
				s.y = append(s.y, int32(t.Label))
			}
			uc.stamped = append(uc.stamped, s)
		}
	}
	return uc
}

func (uc *unlearnCheck) run(m *tfmodels.Model, epoch int, hook func(int, *tfmodels.Model)) (UnlearnCheck, error) {
	ce := UnlearnCheck{Epoch: epoch}
	var err error
	if _, ce.CleanAccuracy, err = m.Evaluate(uc.clean); err != nil {
		return ce, err
	}
	for _, s := range uc.stamped {
		a := 0.0
		if s.Len() > 0 {
			if _, a, err = m.Evaluate(s); err != nil {
				return ce, err
			}
		}
		ce.Forms = append(ce.Forms, a)
		ce.Score += a
	}
	if hook != nil {
		hook(epoch, m)
	}
	return ce, nil
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
