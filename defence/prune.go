package defence

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bbd-workbench/bbd/tfmodels"
)

// Fine-pruning methods.
const (
	// PruneUnit masks single units of the flattened activations feeding the
	// dense heads (for DeepID the 1200 units of flatten_1 and the 960 of
	// flatten_2, the inputs of fc_1 and fc_2), scored by their summed
	// activation on the defender's clean data: what the Bimodel paper's
	// authors ran.
	PruneUnit = "unit"
	// PruneChannel masks whole channels of the last convolutional layer of
	// every branch into the dense heads (for DeepID conv_3, read by fc_1
	// through pool_3, and conv_4, read by fc_2), scored by their mean
	// activation on clean data: the Fine-Pruning paper's method, generalised
	// to networks whose heads read several conv layers.
	PruneChannel = "channel"
	// PruneWeight zeroes the smallest-magnitude weights of every conv and
	// dense kernel during fine-tuning, with TensorFlow Model Optimization's
	// polynomial sparsity schedule (initial to final sparsity): the
	// Bimodel paper's "W-based" pruning.
	PruneWeight = "weight"
)

// FinePruneConfig configures [FinePrune]. Zero fields take the defaults of
// [DefaultFinePruneConfig].
type FinePruneConfig struct {
	// Method is PruneUnit (default), PruneChannel or PruneWeight.
	Method string
	// Layers to prune: for PruneUnit, layers whose outputs are masked unit by
	// unit (zero: every Flatten layer read by a Dense layer); for
	// PruneChannel, layers whose output channels are masked (zero: the last
	// Conv2D before each such Flatten); for PruneWeight, the Conv2D and Dense
	// layers whose kernels are pruned (zero: all of them).
	Layers []string
	// Fractions to sweep (PruneUnit, PruneChannel): the share of each layer's
	// units or channels pruned. Zero: 0.50, 0.55, ..., 0.95.
	Fractions []float64
	// Fraction, when positive, prunes that fraction only: no sweep, no
	// automatic choice.
	Fraction float64
	// HoldOut is the share of the clean data kept out of fine-tuning, on
	// which the fraction is chosen (accuracy on the fine-tuning data itself
	// is optimistic). Zero: 0.2.
	HoldOut float64
	// MaxAccuracyDrop is the automatic rule's budget: the largest fraction
	// whose fine-tuned accuracy on the held-out clean data is at most this
	// far below the unpruned model's is chosen (more pruning removes more of
	// the backdoor, and a defender has no poisoned data to measure it).
	// Zero: 0.02. bbd accepts a repair that costs at most 3 points of clean
	// accuracy; the rule keeps a point of margin because its estimate, on
	// a few hundred to a thousand held-out images, is off by up to 2 points
	// either way on the zoo's clean files. With occluded fine-tuning
	// (Occlude) the zoo's attack success hardly depends on the fraction
	// from 0.5 on, so the margin costs no removal there (README,
	// "Fine-pruning"). The authors' recipe as reproduce runs it keeps 0.03.
	MaxAccuracyDrop float64
	// FineTune trains the pruned model on the clean data (minus the held-out
	// part). Zero fields: SGD, learning rate 1e-3, momentum 0.9, 20 epochs,
	// batch 64 (the authors' settings); for PruneWeight Adam (learning rate
	// 1e-3), 10 epochs, batch 128 (TensorFlow Model Optimization's recipe
	// as the authors ran it). A larger learning rate (0.01) removed the
	// zoo's small triggers at lower fractions but left more of its large
	// sunglasses band (README, "Fine-pruning"): which suits a BadNet shows
	// only on poisoned data, so the default stays the authors'.
	FineTune tfmodels.TrainSettings
	// Distill, when positive, fine-tunes on soft targets: each clean
	// example's one-hot label mixed with the unpruned model's predicted
	// probabilities, (1-Distill)*label + Distill*prediction (knowledge
	// distillation from the model being repaired, on clean data only). The
	// predictions carry what the model learnt from its full training set,
	// which a few thousand clean images alone do not, and, although the
	// trigger is never in them, part of the backdoor too: on the zoo it
	// kept up to 0.7 points more accuracy but left more attack success at
	// the same fraction (README, "Fine-pruning"). Zero: plain labels.
	Distill float64
	// Occlude is the probability that a fine-tuning image is drawn with one
	// rectangle of one random colour painted over it, at a random place and
	// afresh each time (random erasing: Zhong et al., "Random Erasing Data
	// Augmentation", AAAI 2020, with its default shapes, 2-40 % of the
	// image). Fine-tuning then teaches the pruned model that a patch does
	// not decide an image's label, which is what a patch trigger relies on
	// (strong augmentation against backdoors: Borgnia et al., ICASSP 2021).
	// It assumes nothing about the trigger's place, size or colour. On the
	// zoo it removed every trigger at lower fractions and for less
	// accuracy than plain fine-tuning, and it brought the large sunglasses
	// band below the rate at which a clean model already gives its target
	// (README, "Fine-pruning"). Zero: DefaultOcclude (0.5, Random Erasing's
	// probability); NoOcclusion (any negative value): the plain images, the
	// authors' fine-tuning.
	Occlude float64
	// Refit, after the fraction is chosen, fine-tunes that fraction once
	// more from the BadNet on all the clean data, the held-out part
	// included, and returns that model (PruneUnit, PruneChannel): the
	// held-out images chose the fraction, and then teach the repair too.
	// The report keeps the sweep's figures and adds the refit model's.
	Refit bool
	// InitialSparsity and FinalSparsity bound PruneWeight's schedule. Zero:
	// 0.5 and 0.8.
	InitialSparsity, FinalSparsity float64
	// PruneEvery is how often (in steps) PruneWeight updates its masks.
	// Zero: 100, TensorFlow Model Optimization's default frequency.
	PruneEvery int
	// Seed of the held-out split and of the fine-tuning shuffles.
	Seed uint64
	// Progress, if set, is told what the sweep is doing.
	Progress func(PruneProgress)
}

// PruneProgress reports where a fine-pruning run is.
type PruneProgress struct {
	Stage    string  // "scoring", "pruned", "fine-tuning", "fine-tuned"; with Refit then "refitting", "refitted"
	Fraction float64 // the fraction being worked on
	Index    int     // 1-based index of the fraction in the sweep
	Count    int     // fractions in the sweep
	Train    tfmodels.TrainProgress
}

// DefaultFinePruneConfig returns the defaults, filled in, for a method.
func DefaultFinePruneConfig(method string) FinePruneConfig {
	return FinePruneConfig{Method: method}.WithDefaults()
}

// WithDefaults returns c with its zero fields set to the defaults.
func (c FinePruneConfig) WithDefaults() FinePruneConfig {
	c.fill()
	return c
}

// HeldOut is the number of n clean examples held out of fine-tuning; the
// other n - HeldOut(n) are fine-tuned on.
func (c FinePruneConfig) HeldOut(n int) int {
	return int(math.Round(c.WithDefaults().HoldOut * float64(n)))
}

func (c *FinePruneConfig) fill() {
	if c.Method == "" {
		c.Method = PruneUnit
	}
	if len(c.Fractions) == 0 {
		for i := 0; i < 10; i++ {
			c.Fractions = append(c.Fractions, math.Round((0.5+0.05*float64(i))*100)/100)
		}
	}
	if c.HoldOut == 0 {
		c.HoldOut = 0.2
	}
	if c.MaxAccuracyDrop == 0 {
		c.MaxAccuracyDrop = 0.02
	}
	if c.Occlude == 0 {
		c.Occlude = DefaultOcclude
	}
	ft := &c.FineTune
	if c.Method == PruneWeight {
		if ft.Optimizer.Kind == "" {
			ft.Optimizer.Kind = tfmodels.Adam
		}
		if ft.Epochs == 0 {
			ft.Epochs = 10
		}
		if ft.BatchSize == 0 {
			ft.BatchSize = 128
		}
	} else {
		if ft.Optimizer.Kind == "" {
			ft.Optimizer.Kind = tfmodels.SGD
			if ft.Optimizer.Momentum == 0 {
				ft.Optimizer.Momentum = 0.9
			}
		}
		if ft.Epochs == 0 {
			ft.Epochs = 20
		}
		if ft.BatchSize == 0 {
			ft.BatchSize = 64
		}
	}
	if ft.Optimizer.LearningRate == 0 {
		ft.Optimizer.LearningRate = 1e-3
	}
	if c.InitialSparsity == 0 {
		c.InitialSparsity = 0.5
	}
	if c.FinalSparsity == 0 {
		c.FinalSparsity = 0.8
	}
	if c.PruneEvery == 0 {
		c.PruneEvery = 100
	}
}

// Validate checks the configuration (zero fields are valid: they take the
// defaults).
func (c FinePruneConfig) Validate() error {
	const m = "fine-pruning"
	switch c.Method {
	case "", PruneUnit, PruneChannel, PruneWeight:
	default:
		return configError(m, "Method", fmt.Sprintf("%q, %q or %q", PruneUnit, PruneChannel, PruneWeight), fmt.Sprintf("%q", c.Method))
	}
	for _, f := range c.Fractions {
		if !(f > 0 && f < 1) {
			return configError(m, "Fractions", "values in (0, 1)", f)
		}
	}
	if c.Fraction < 0 || c.Fraction >= 1 {
		return configError(m, "Fraction", "a value in [0, 1)", c.Fraction)
	}
	if c.HoldOut < 0 || c.HoldOut >= 1 {
		return configError(m, "HoldOut", "a share in [0, 1)", c.HoldOut)
	}
	if c.MaxAccuracyDrop < 0 || c.MaxAccuracyDrop >= 1 {
		return configError(m, "MaxAccuracyDrop", "a value in [0, 1)", c.MaxAccuracyDrop)
	}
	if c.InitialSparsity < 0 || c.InitialSparsity >= 1 || c.FinalSparsity < 0 || c.FinalSparsity >= 1 {
		return configError(m, "InitialSparsity/FinalSparsity", "values in [0, 1)", fmt.Sprint(c.InitialSparsity, "/", c.FinalSparsity))
	}
	if c.Occlude > 1 || math.IsNaN(c.Occlude) {
		return configError(m, "Occlude", "a probability in [0, 1] (or NoOcclusion)", c.Occlude)
	}
	if c.Distill < 0 || c.Distill > 1 {
		return configError(m, "Distill", "a weight in [0, 1]", c.Distill)
	}
	if c.PruneEvery < 0 {
		return configError(m, "PruneEvery", "a positive number of steps", c.PruneEvery)
	}
	if c.FineTune.Epochs < 0 || c.FineTune.BatchSize < 0 {
		return configError(m, "FineTune", "non-negative epochs and batch size", fmt.Sprint(c.FineTune.Epochs, " epochs, batch ", c.FineTune.BatchSize))
	}
	return nil
}

// EvalSet is labelled data a defence's effect is measured on: clean data
// (accuracy against the true labels) or poisoned data labelled with the
// attacker's target (attack success: the share classified as the target).
type EvalSet struct {
	Name     string // what the report calls it: a file name, "clean test"...
	Data     Examples
	Poisoned bool
}

// PruneScores are a model's figures at one point of a fine-pruning run.
type PruneScores struct {
	// HoldOutAccuracy is the accuracy on the clean data held out from
	// fine-tuning (what the automatic choice reads).
	HoldOutAccuracy float64 `json:"holdout_accuracy"`
	// CleanAccuracy and AttackSuccess are by EvalSet name.
	CleanAccuracy map[string]float64 `json:"clean_accuracy"`
	AttackSuccess map[string]float64 `json:"attack_success"`
}

// SweepPoint is one fraction of a sweep, before and after fine-tuning.
type SweepPoint struct {
	Fraction  float64     `json:"fraction"`
	Pruned    PruneScores `json:"pruned"`
	FineTuned PruneScores `json:"fine_tuned"`
	// Seconds spent fine-tuning and evaluating this fraction.
	Seconds float64 `json:"seconds"`
}

// FinePruneReport is what [FinePrune] did.
type FinePruneReport struct {
	PruneMethod string   `json:"method"`
	Layers      []string `json:"layers"`
	// Fraction is the chosen fraction (the final sparsity for PruneWeight).
	Fraction float64 `json:"fraction"`
	// Rule says how Fraction was chosen; WithinBudget is false when no
	// fraction kept the held-out accuracy within MaxAccuracyDrop (the one
	// with the best held-out accuracy was taken).
	Rule         string      `json:"rule"`
	WithinBudget bool        `json:"within_budget"`
	Original     PruneScores `json:"original"`
	Chosen       PruneScores `json:"chosen"`
	// Refit, with FinePruneConfig.Refit, are the figures of the returned
	// model, fine-tuned on all the clean data at the chosen fraction (its
	// HoldOutAccuracy is on data it was fine-tuned on, so not reported).
	Refit    *PruneScores `json:"refit,omitempty"`
	Sweep    []SweepPoint `json:"sweep"`
	FineTune struct {
		Optimizer    string  `json:"optimizer"`
		LearningRate float64 `json:"learning_rate"`
		Momentum     float64 `json:"momentum,omitempty"`
		Epochs       int     `json:"epochs"`
		BatchSize    int     `json:"batch_size"`
		Distill      float64 `json:"distill,omitempty"`
		Occlude      float64 `json:"occlude"`
		Examples     int     `json:"examples"`
		HoldOut      int     `json:"holdout"`
	} `json:"fine_tune"`
	Seconds float64 `json:"seconds"`
}

// Method implements Report.
func (r *FinePruneReport) Method() string { return "fine-pruning/" + r.PruneMethod }

// FinePruner is fine-pruning as a [Mitigator].
type FinePruner struct {
	Config FinePruneConfig
	// Evals are measured before and after pruning and fine-tuning (for the
	// report only: the choice of fraction reads clean data alone).
	Evals []EvalSet
}

// Name implements Mitigator.
func (p FinePruner) Name() string { return "fine-pruning" }

// Mitigate implements Mitigator.
func (p FinePruner) Mitigate(ctx context.Context, m *tfmodels.Model, clean Examples) (*tfmodels.Model, Report, error) {
	r, rep, err := FinePrune(ctx, m, clean, p.Evals, p.Config)
	if err != nil {
		return nil, nil, err
	}
	return r, rep, nil
}

// FinePrune repairs the white-box model m (Liu, Dolan-Gavitt and Garg,
// "Fine-Pruning", RAID 2018; the Bimodel paper's section 2): it prunes the
// units or channels that clean data leaves least active (or the smallest
// weights), then fine-tunes on clean data, so that neurons only the trigger
// used are gone and the rest recover the clean accuracy.
//
// For PruneUnit and PruneChannel, each fraction of cfg.Fractions is tried
// from m's weights, and the largest whose fine-tuned accuracy on held-out
// clean data stays within cfg.MaxAccuracyDrop of m's is chosen (cfg.Fraction
// skips the sweep). The returned model is a new model with the chosen masks
// and weights (the pruned weights are also zeroed in the weights, so the
// masks are baked in); m is left unchanged. evals (clean test and poisoned
// sets) are measured for the report at every step.
func FinePrune(ctx context.Context, m *tfmodels.Model, clean Examples, evals []EvalSet, cfg FinePruneConfig) (repaired *tfmodels.Model, rep *FinePruneReport, err error) {
	start := time.Now()
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	cfg.fill()
	if !m.WhiteBox() {
		return nil, nil, fmt.Errorf("fine-pruning: %w", tfmodels.ErrNotWhiteBox)
	}
	if m.Frozen() {
		return nil, nil, fmt.Errorf("fine-pruning: %w", tfmodels.ErrFrozen)
	}
	layers, err := pruneLayers(m.Arch, cfg.Method, cfg.Layers)
	if err != nil {
		return nil, nil, err
	}
	tune, hold, err := splitExamples(clean, cfg.HeldOut(clean.Len()), cfg.Seed)
	if err != nil {
		return nil, nil, err
	}
	w0, err := m.GetWeights()
	if err != nil {
		return nil, nil, err
	}
	rep = &FinePruneReport{PruneMethod: cfg.Method, Layers: layers}
	rep.FineTune.Optimizer, rep.FineTune.LearningRate, rep.FineTune.Momentum = cfg.FineTune.Optimizer.Kind, cfg.FineTune.Optimizer.LearningRate, cfg.FineTune.Optimizer.Momentum
	rep.FineTune.Epochs, rep.FineTune.BatchSize, rep.FineTune.Examples, rep.FineTune.HoldOut = cfg.FineTune.Epochs, cfg.FineTune.BatchSize, tune.Len(), hold.Len()
	rep.FineTune.Distill = cfg.Distill
	rep.FineTune.Occlude = max(cfg.Occlude, 0)
	// tuned is what one fine-tuning run draws its batches from: ex, with
	// fresh random occlusion from the same seed for every run, so each
	// fraction is fine-tuned as it would be alone.
	tuned := func(ex Examples) Examples { return occlude(ex, cfg.Occlude, m.InputShape, cfg.Seed) }
	// What the sweep and the refit fine-tune on: the labels, or with
	// Distill soft targets from m itself, before any pruning (its
	// predictions on all the clean data are computed once).
	var tuneSet, allSet Examples = tune, clean
	if cfg.Distill > 0 {
		soft, err := distilled(ctx, m, clean, cfg.Distill)
		if err != nil {
			return nil, nil, fmt.Errorf("fine-pruning: distillation targets: %w", err)
		}
		tuneSet, allSet = soft.pick(tune.idx), soft
	}

	// The working model: m's architecture and weights with the pruning masks
	// (and any masks m already had).
	opts := tfmodels.BuildOptions{BatchSize: m.BatchSize, Source: "fine-pruning"}
	have := m.Masks()
	opts.Masks, opts.ChannelMasks, opts.KernelMasks = have[tfmodels.MaskOutput], have[tfmodels.MaskChannel], have[tfmodels.MaskKernel]
	kind := map[string]string{PruneUnit: tfmodels.MaskOutput, PruneChannel: tfmodels.MaskChannel, PruneWeight: tfmodels.MaskKernel}[cfg.Method]
	for _, l := range layers {
		switch kind {
		case tfmodels.MaskOutput:
			opts.Masks = appendNew(opts.Masks, l)
		case tfmodels.MaskChannel:
			opts.ChannelMasks = appendNew(opts.ChannelMasks, l)
		default:
			opts.KernelMasks = appendNew(opts.KernelMasks, l)
		}
	}
	work, err := tfmodels.Build(m.Arch, w0, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("fine-pruning: %w", err)
	}
	defer work.Close()
	base, err := work.GetWeights() // w0 plus the new masks (ones)
	if err != nil {
		return nil, nil, err
	}
	if rep.Original, err = pruneScores(ctx, work, hold, evals); err != nil {
		return nil, nil, err
	}
	progress := func(p PruneProgress) {
		if cfg.Progress != nil {
			cfg.Progress(p)
		}
	}
	train := cfg.FineTune
	train.Seed = cfg.Seed
	train.AfterBatch = func(int) error { return ctx.Err() }
	userProgress := train.Progress
	// during is a TrainSettings.Progress that reports each batch as part of
	// a stage of the run, and to the caller's own training progress.
	during := func(stage string, f float64, i, n int) func(tfmodels.TrainProgress) {
		return func(tp tfmodels.TrainProgress) {
			progress(PruneProgress{Stage: stage, Fraction: f, Index: i, Count: n, Train: tp})
			if userProgress != nil {
				userProgress(tp)
			}
		}
	}
	var best tfmodels.Weights
	if cfg.Method == PruneWeight {
		f := cfg.FinalSparsity
		progress(PruneProgress{Stage: "fine-tuning", Fraction: f, Index: 1, Count: 1})
		t0 := time.Now()
		if err := work.SetWeights(base); err != nil {
			return nil, nil, err
		}
		pt := SweepPoint{Fraction: f}
		if best, err = weightPrune(ctx, work, tuned(tuneSet), layers, cfg, train, during("fine-tuning", f, 1, 1)); err != nil {
			return nil, nil, err
		}
		if pt.FineTuned, err = pruneScores(ctx, work, hold, evals); err != nil {
			return nil, nil, err
		}
		pt.Pruned = pt.FineTuned // pruning and fine-tuning are one schedule
		pt.Seconds = time.Since(t0).Seconds()
		rep.Sweep = []SweepPoint{pt}
		rep.Fraction, rep.Chosen, rep.Rule = f, pt.FineTuned, fmt.Sprintf("final sparsity %.2f (polynomial schedule from %.2f)", f, cfg.InitialSparsity)
		rep.WithinBudget = pt.FineTuned.HoldOutAccuracy >= rep.Original.HoldOutAccuracy-cfg.MaxAccuracyDrop
	} else {
		progress(PruneProgress{Stage: "scoring"})
		scores, err := activationScores(ctx, work, clean, layers, cfg.Method)
		if err != nil {
			return nil, nil, err
		}
		fractions := cfg.Fractions
		if cfg.Fraction > 0 {
			fractions = []float64{cfg.Fraction}
		}
		// maskedAt is the BadNet's weights with fraction f pruned.
		maskedAt := func(f float64) tfmodels.Weights {
			w := cloneWeights(base)
			for _, l := range layers {
				w[l+"/"+kind].Values = lowestMask(scores[l], f)
			}
			return w
		}
		weights := make([]tfmodels.Weights, len(fractions))
		for i, f := range fractions {
			t0 := time.Now()
			if err := work.SetWeights(maskedAt(f)); err != nil {
				return nil, nil, err
			}
			pt := SweepPoint{Fraction: f}
			if pt.Pruned, err = pruneScores(ctx, work, hold, evals); err != nil {
				return nil, nil, err
			}
			progress(PruneProgress{Stage: "pruned", Fraction: f, Index: i + 1, Count: len(fractions)})
			train.Progress = during("fine-tuning", f, i+1, len(fractions))
			if _, err := work.Train(tuned(tuneSet), train); err != nil {
				return nil, nil, fmt.Errorf("fine-pruning at fraction %.2f: %w", f, err)
			}
			if pt.FineTuned, err = pruneScores(ctx, work, hold, evals); err != nil {
				return nil, nil, err
			}
			if weights[i], err = work.GetWeights(); err != nil {
				return nil, nil, err
			}
			pt.Seconds = time.Since(t0).Seconds()
			rep.Sweep = append(rep.Sweep, pt)
			progress(PruneProgress{Stage: "fine-tuned", Fraction: f, Index: i + 1, Count: len(fractions)})
		}
		chosen := chooseFraction(rep, cfg)
		best = weights[chosen]
		rep.Fraction, rep.Chosen = rep.Sweep[chosen].Fraction, rep.Sweep[chosen].FineTuned
		if cfg.Refit {
			f := rep.Fraction
			train.Progress = during("refitting", f, 1, 1)
			if best, rep.Refit, err = refit(ctx, work, tuned(allSet), f, maskedAt(f), evals, train); err != nil {
				return nil, nil, err
			}
			progress(PruneProgress{Stage: "refitted", Fraction: f, Index: 1, Count: 1})
		}
	}
	bakeMasks(m.Arch, best)
	repaired, err = tfmodels.Build(m.Arch, best, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("fine-pruning: building the repaired model: %w", err)
	}
	rep.Seconds = time.Since(start).Seconds()
	return repaired, rep, nil
}

// refit fine-tunes work from w, the weights pruned at fraction f, on all
// the clean data and returns the weights and their figures on evals.
func refit(ctx context.Context, work *tfmodels.Model, all Examples, f float64, w tfmodels.Weights, evals []EvalSet, train tfmodels.TrainSettings) (tfmodels.Weights, *PruneScores, error) {
	if err := work.SetWeights(w); err != nil {
		return nil, nil, err
	}
	if _, err := work.Train(all, train); err != nil {
		return nil, nil, fmt.Errorf("fine-pruning: refitting fraction %.2f on all the clean data: %w", f, err)
	}
	sc, err := pruneScores(ctx, work, &subset{}, evals) // nothing held out
	if err != nil {
		return nil, nil, err
	}
	best, err := work.GetWeights()
	if err != nil {
		return nil, nil, err
	}
	return best, &sc, nil
}

// chooseFraction applies the automatic rule to a sweep and records it.
func chooseFraction(rep *FinePruneReport, cfg FinePruneConfig) int {
	if cfg.Fraction > 0 {
		rep.Rule = fmt.Sprintf("fraction %.2f as given", cfg.Fraction)
		rep.WithinBudget = rep.Sweep[0].FineTuned.HoldOutAccuracy >= rep.Original.HoldOutAccuracy-cfg.MaxAccuracyDrop
		return 0
	}
	floor := rep.Original.HoldOutAccuracy - cfg.MaxAccuracyDrop
	chosen, bestAcc := -1, -1.0
	for i, p := range rep.Sweep {
		if p.FineTuned.HoldOutAccuracy >= floor && (chosen < 0 || p.Fraction > rep.Sweep[chosen].Fraction) {
			chosen = i
		}
	}
	rep.Rule = fmt.Sprintf("largest fraction whose fine-tuned accuracy on %d held-out clean images is at least %.4f (the unpruned %.4f minus %.2f)",
		rep.FineTune.HoldOut, floor, rep.Original.HoldOutAccuracy, cfg.MaxAccuracyDrop)
	if chosen >= 0 {
		rep.WithinBudget = true
		return chosen
	}
	for i, p := range rep.Sweep {
		if p.FineTuned.HoldOutAccuracy > bestAcc {
			chosen, bestAcc = i, p.FineTuned.HoldOutAccuracy
		}
	}
	rep.Rule += "; no fraction met it, so the one with the best held-out accuracy"
	return chosen
}

// pruneLayers resolves the layers a method prunes (see FinePruneConfig.Layers).
func pruneLayers(arch *tfmodels.Architecture, method string, given []string) ([]string, error) {
	for _, name := range given {
		l, ok := arch.Layer(name)
		if !ok {
			return nil, fmt.Errorf("%w: fine-pruning layer %q: no such layer in %s (layers: %s)", ErrConfig, name, arch.Name, strings.Join(arch.LayerNames(), ", "))
		}
		if method == PruneWeight && !l.HasWeights() {
			return nil, fmt.Errorf("%w: fine-pruning layer %q: a %s layer has no kernel to prune", ErrConfig, name, l.Kind)
		}
		if method == PruneChannel && l.Kind == tfmodels.KindInput {
			return nil, fmt.Errorf("%w: fine-pruning layer %q: the input has no channels to prune", ErrConfig, name)
		}
	}
	if len(given) > 0 {
		return given, nil
	}
	var out []string
	switch method {
	case PruneWeight:
		for _, l := range arch.Layers {
			if l.HasWeights() {
				out = append(out, l.Name)
			}
		}
	default:
		for _, f := range denseHeadInputs(arch) {
			if method == PruneUnit {
				out = appendNew(out, f)
			} else if c := lastConvBefore(arch, f); c != "" {
				out = appendNew(out, c)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: fine-pruning %s: %s has no layer to prune by default: name them", ErrConfig, method, arch.Name)
	}
	return out, nil
}

// denseHeadInputs lists the Flatten layers read by a Dense layer.
func denseHeadInputs(arch *tfmodels.Architecture) []string {
	var out []string
	for _, l := range arch.Layers {
		if l.Kind != tfmodels.KindDense {
			continue
		}
		for _, in := range l.Inputs {
			if s, ok := arch.Layer(in); ok && s.Kind == tfmodels.KindFlatten {
				out = appendNew(out, in)
			}
		}
	}
	return out
}

// lastConvBefore walks up single-input layers (pools, flattens, activations)
// from name to the nearest Conv2D.
func lastConvBefore(arch *tfmodels.Architecture, name string) string {
	for {
		l, ok := arch.Layer(name)
		if !ok || len(l.Inputs) != 1 {
			return ""
		}
		in, _ := arch.Layer(l.Inputs[0])
		if in.Kind == tfmodels.KindConv2D {
			return in.Name
		}
		name = in.Name
	}
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// activationScores sums each layer's activations over clean data: per unit
// of the output (PruneUnit), or per channel (PruneChannel, summed over the
// positions too).
func activationScores(ctx context.Context, m *tfmodels.Model, clean Examples, layers []string, method string) (map[string][]float64, error) {
	outs := make([]tfOutput, len(layers))
	for i, l := range layers {
		o, err := m.Layer(l)
		if err != nil {
			return nil, err
		}
		outs[i] = o
	}
	scores := map[string][]float64{}
	err := eachBatch(ctx, m, clean, func(x []float32, y []int32) error {
		n := len(y)
		res, err := m.Run(x, n, outs...)
		if err != nil {
			return err
		}
		for i, l := range layers {
			per := len(res[i]) / n
			width := per
			if method == PruneChannel {
				dims, _ := outs[i].Shape().ToSlice()
				width = int(dims[len(dims)-1])
			}
			if scores[l] == nil {
				scores[l] = make([]float64, width)
			}
			s := scores[l]
			for j, v := range res[i] {
				s[j%per%width] += float64(v)
			}
		}
		return nil
	})
	return scores, err
}

// lowestMask returns a mask of ones with zeros on the int(f * len) units of
// lowest score (ties broken by index, as a stable sort does).
func lowestMask(scores []float64, f float64) []float32 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	mask := make([]float32, len(scores))
	for i := range mask {
		mask[i] = 1
	}
	for _, i := range idx[:int(f*float64(len(scores))+1e-9)] {
		mask[i] = 0
	}
	return mask
}

// weightPrune fine-tunes m on tune while zeroing the smallest-magnitude
// weights of layers' kernels on a polynomial schedule (TensorFlow Model
// Optimization's PolynomialDecay, power 3, from the first step to the last,
// masks updated every cfg.PruneEvery steps and at the last step). It returns
// the final weights.
func weightPrune(ctx context.Context, m *tfmodels.Model, tune Examples, layers []string, cfg FinePruneConfig, train tfmodels.TrainSettings, progress func(tfmodels.TrainProgress)) (tfmodels.Weights, error) {
	steps := train.Epochs * ((tune.Len() + train.BatchSize - 1) / train.BatchSize)
	sparsity := func(step int) float64 {
		t := math.Min(1, float64(step)/float64(max(steps, 1)))
		return cfg.FinalSparsity + (cfg.InitialSparsity-cfg.FinalSparsity)*math.Pow(1-t, 3)
	}
	prune := func(step int) error {
		w, err := m.GetWeights()
		if err != nil {
			return err
		}
		upd := tfmodels.Weights{}
		s := sparsity(step)
		for _, l := range layers {
			k, mask := w[l+"/kernel"], w[l+"/"+tfmodels.MaskKernel]
			mag := make([]float64, len(k.Values))
			for i := range mag {
				mag[i] = math.Abs(float64(k.Values[i] * mask.Values[i]))
			}
			upd[l+"/"+tfmodels.MaskKernel] = &tfmodels.WeightTensor{Shape: mask.Shape, Values: lowestMask(mag, s)}
		}
		return m.SetWeights(upd)
	}
	if err := prune(0); err != nil {
		return nil, err
	}
	train.Progress = progress
	train.AfterBatch = func(step int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if step%cfg.PruneEvery == 0 || step == steps {
			return prune(step)
		}
		return nil
	}
	if _, err := m.Train(tune, train); err != nil {
		return nil, fmt.Errorf("weight pruning: %w", err)
	}
	return m.GetWeights()
}

// bakeMasks zeroes in the weights what the masks zero, where that is exact:
// kernel masks multiply their kernels; a channel mask on a Conv2D or Dense
// layer whose activation maps 0 to 0 zeroes that channel's kernel slice and
// bias; a unit mask on a Flatten layer zeroes the rows of the Dense kernels
// reading it. The masks stay, so further training keeps the units pruned.
func bakeMasks(arch *tfmodels.Architecture, w tfmodels.Weights) {
	for _, l := range arch.Layers {
		if km, ok := w[l.Name+"/"+tfmodels.MaskKernel]; ok {
			k := w[l.Name+"/kernel"]
			for i := range k.Values {
				k.Values[i] *= km.Values[i]
			}
		}
		if cm, ok := w[l.Name+"/"+tfmodels.MaskChannel]; ok && l.HasWeights() && (l.Activation == "" || l.Activation == tfmodels.ActLinear || l.Activation == tfmodels.ActReLU) {
			k := w[l.Name+"/kernel"]
			c := len(cm.Values)
			for i := range k.Values {
				k.Values[i] *= cm.Values[i%c]
			}
			if b, ok := w[l.Name+"/bias"]; ok {
				for i := range b.Values {
					b.Values[i] *= cm.Values[i]
				}
			}
		}
		if um, ok := w[l.Name+"/"+tfmodels.MaskOutput]; ok && l.Kind == tfmodels.KindFlatten {
			for _, reader := range arch.Layers {
				if reader.Kind != tfmodels.KindDense || !slices.Contains(reader.Inputs, l.Name) {
					continue
				}
				k := w[reader.Name+"/kernel"]
				cols := reader.Units
				for i := range k.Values {
					k.Values[i] *= um.Values[i/cols]
				}
			}
		}
	}
}

func cloneWeights(w tfmodels.Weights) tfmodels.Weights {
	out := tfmodels.Weights{}
	for k, v := range w {
		out[k] = &tfmodels.WeightTensor{Shape: slices.Clone(v.Shape), Values: slices.Clone(v.Values)}
	}
	return out
}

// pruneScores measures m on the held-out clean data and the eval sets.
func pruneScores(ctx context.Context, m *tfmodels.Model, hold Examples, evals []EvalSet) (PruneScores, error) {
	s := PruneScores{CleanAccuracy: map[string]float64{}, AttackSuccess: map[string]float64{}}
	if err := ctx.Err(); err != nil {
		return s, err
	}
	if hold.Len() > 0 {
		acc, err := accuracy(ctx, m, hold)
		if err != nil {
			return s, err
		}
		s.HoldOutAccuracy = acc
	}
	for _, e := range evals {
		acc, err := accuracy(ctx, m, e.Data)
		if err != nil {
			return s, fmt.Errorf("evaluating on %s: %w", e.Name, err)
		}
		if e.Poisoned {
			s.AttackSuccess[e.Name] = acc
		} else {
			s.CleanAccuracy[e.Name] = acc
		}
	}
	return s, nil
}

// accuracy is the share of ex that m labels as labelled (for poisoned data
// labelled with the target: the attack success rate).
func accuracy(ctx context.Context, m *tfmodels.Model, ex Examples) (float64, error) {
	if ex.Len() == 0 {
		return 0, fmt.Errorf("no examples")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	_, acc, err := m.Evaluate(ex)
	return acc, err
}

// splitExamples splits ex into a fine-tuning part and k held-out examples,
// seeded.
func splitExamples(ex Examples, k int, seed uint64) (tune, hold *subset, err error) {
	n := ex.Len()
	if n == 0 || k == 0 || k == n {
		return nil, nil, fmt.Errorf("fine-pruning: %d clean examples cannot be split with %d held out", n, k)
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	rand.New(rand.NewPCG(seed, 0x686f6c64)).Shuffle(n, func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	hi, ti := slices.Clone(idx[:k]), slices.Clone(idx[k:])
	slices.Sort(hi)
	slices.Sort(ti)
	return &subset{ex: ex, idx: ti}, &subset{ex: ex, idx: hi}, nil
}

// softExamples are examples with soft targets (tfmodels.SoftExamples):
// each label's one-hot mixed with a teacher's probabilities.
type softExamples struct {
	Examples
	probs   []float32 // teacher probabilities, Len() x classes
	labels  []int32
	classes int
	weight  float64
}

// distilled returns ex with soft targets mixing each label with weight of
// teacher's predicted probabilities.
func distilled(ctx context.Context, teacher *tfmodels.Model, ex Examples, weight float64) (*softExamples, error) {
	n, k := ex.Len(), teacher.NumClasses
	probs, labels := make([]float32, 0, n*k), make([]int32, 0, n)
	err := eachBatch(ctx, teacher, ex, func(x []float32, l []int32) error {
		p, err := teacher.Predict(x, len(l))
		probs, labels = append(probs, p...), append(labels, l...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &softExamples{Examples: ex, probs: probs, labels: labels, classes: k, weight: weight}, nil
}

// pick returns the examples idx of s, with their soft targets.
func (s *softExamples) pick(idx []int) *softExamples {
	k := s.classes
	out := &softExamples{Examples: &subset{ex: s.Examples, idx: idx}, probs: make([]float32, 0, len(idx)*k), labels: make([]int32, 0, len(idx)), classes: k, weight: s.weight}
	for _, i := range idx {
		out.probs = append(out.probs, s.probs[i*k:(i+1)*k]...)
		out.labels = append(out.labels, s.labels[i])
	}
	return out
}

// Targets implements tfmodels.SoftExamples.
func (s *softExamples) Targets(idx []int, classes int, t []float32) error {
	if classes != s.classes {
		return fmt.Errorf("soft targets: %d classes asked, the teacher has %d", classes, s.classes)
	}
	a := float32(s.weight)
	for r, i := range idx {
		if l := s.labels[i]; l < 0 || int(l) >= classes {
			return &tfmodels.InputError{Input: fmt.Sprintf("label of example %d", i), Expected: fmt.Sprintf("a class in [0, %d)", classes), Found: fmt.Sprint(l)}
		}
		row := t[r*classes : (r+1)*classes]
		var sum float32
		for j := range row {
			row[j] = a * s.probs[i*classes+j]
			sum += row[j]
		}
		// The teacher's row may not sum to exactly 1 in float32: the
		// label takes the rest, so the target is a distribution.
		row[s.labels[i]] += 1 - sum
	}
	return nil
}

// subset is a view of some examples of another Examples.
type subset struct {
	ex  Examples
	idx []int
}

func (s *subset) Len() int { return len(s.idx) }

func (s *subset) Gather(idx []int, x []float32, labels []int32) error {
	mapped := make([]int, len(idx))
	for i, j := range idx {
		mapped[i] = s.idx[j]
	}
	return s.ex.Gather(mapped, x, labels)
}
