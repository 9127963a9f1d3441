package defence

import (
	"context"
	"fmt"
	"math"

	tf "github.com/galeone/tensorflow/tensorflow/go"

	"github.com/bbd-workbench/bbd/metrics"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// ScaleUpConfig configures SCALE-UP. Zero fields take the defaults noted.
type ScaleUpConfig struct {
	// Scales multiply the pixel values (then clipped to [0, 1]); zero: 3, 5,
	// 7, 9, 11 (the paper's).
	Scales []float64 `json:"scales"`
	// Threshold chooses the threshold; zero: ThresholdEmpirical at FRR 0.05
	// (the scores take only len(Scales)+1 values).
	Threshold ThresholdConfig `json:"threshold"`
	// BatchSize is the number of images per Session.Run; zero:
	// tfmodels.DefaultBatchSize.
	BatchSize int `json:"batch_size"`
	// Progress, if set, is called after each Session.Run.
	Progress func(done, total int) `json:"-"`
}

// DefaultScaleUpConfig returns the configuration the zero value stands for.
func DefaultScaleUpConfig() ScaleUpConfig { return ScaleUpConfig{}.withDefaults() }

func (c ScaleUpConfig) withDefaults() ScaleUpConfig {
	if len(c.Scales) == 0 {
		c.Scales = []float64{3, 5, 7, 9, 11}
	}
	c.Threshold = c.Threshold.withDefaults(ThresholdEmpirical)
	if c.BatchSize == 0 {
		c.BatchSize = tfmodels.DefaultBatchSize
	}
	return c
}

// Validate checks the configuration; its errors wrap ErrConfig.
func (c ScaleUpConfig) Validate() error {
	for _, s := range c.Scales {
		if !(s > 0) || math.IsInf(s, 0) {
			return configError("scaleup", "Scales", "positive finite factors", c.Scales)
		}
	}
	if c.BatchSize < 0 {
		return configError("scaleup", "BatchSize", "a positive count (zero: 128)", c.BatchSize)
	}
	return c.Threshold.validate("scaleup")
}

// ScaleUp is the SCALE-UP input detector (Guo et al., "SCALE-UP: An
// Efficient Black-box Input-level Backdoor Detection via Analyzing Scaled
// Prediction Consistency", ICLR 2023), in its data-free form: each input's
// pixel values are multiplied by each scale and clipped to [0, 1]; the score
// is the share of scaled copies the model gives the input's own label (the
// scaled prediction consistency). A trigger survives amplification, so
// poisoned inputs keep their label: a score above the threshold flags
// (metrics.HigherPoisoned). The copies are made in the graph, batched, as
// for STRIP. Kept gives the per-scale data behind a score.
//
// The premise holds for triggers whose pixel values are 0 or 1 (the
// paper's BadNets patches), which scaling with clipping leaves as they are,
// and for images whose content scaling destroys (CIFAR, ImageNet). Neither
// holds on bbd's zoo, where SCALE-UP barely separates inputs and ranks two
// trigger sets the wrong way round (AUROC 0.08-0.62 on the full zoo, README
// "Input filtering"): the triggers are
// mid-range colours that scaling turns into other colours (the sunglasses
// trigger's (10, 40, 150) is cyan by x5: 1.00, 1.00, 1.00, 0.80, 0.24 of
// the full zoo's poisoned inputs keep the label at x3..x11), while 0.81-0.91
// of the clean inputs keep theirs (a gray Fashion-MNIST item on a black
// background becomes its own white silhouette). The direction is right:
// TestDetectorsDirection trains a DeepID with two checkerboards of the same
// shape, 0/255 (AUROC 0.59) and 60/180 (AUROC 0.28). The reference code
// (JunfengGo/SCALE-UP) scales by 1..11 and adds uniform noise of 0.02 first;
// bbd keeps the paper's five odd scales and no noise.
type ScaleUp struct {
	*detector
	cfg ScaleUpConfig
}

// NewScaleUp builds SCALE-UP for model m. Calibrate (or a fixed threshold)
// before Detect; Close when done.
func NewScaleUp(m *tfmodels.Model, cfg ScaleUpConfig) (*ScaleUp, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	scales := make([]float32, len(cfg.Scales))
	for i, s := range cfg.Scales {
		scales[i] = float32(s)
	}
	cg, err := newCopyGraph("scaleup", m, cfg.BatchSize, true, func(o *tfmodels.Ops, x tf.Output) tf.Output {
		k := o.Op("Reshape", nil, o.Const(scales), o.Const([]int32{int32(len(scales)), 1, 1, 1}))
		return broadcastCopies(o, x, k, func(xb, kb tf.Output) tf.Output {
			return o.Op("ClipByValue", nil, o.Op("Mul", nil, xb, kb), o.Const(float32(0)), o.Const(float32(1)))
		})
	})
	if err != nil {
		return nil, fmt.Errorf("scaleup: %w", err)
	}
	if err := cg.open(); err != nil {
		cg.Close()
		return nil, fmt.Errorf("scaleup: %w", err)
	}
	d := &ScaleUp{cfg: cfg}
	d.detector = &detector{name: "scaleup", cg: cg, dir: metrics.HigherPoisoned, th: cfg.Threshold, copies: 1 + len(scales), progress: cfg.Progress}
	d.scoreFn = func(x []float32, n int) ([]float64, []int, error) {
		return labelScores(cg, x, n, func(l []int32) float64 {
			same := 0
			for _, v := range l[1:] {
				if v == l[0] {
					same++
				}
			}
			return float64(same) / float64(len(l)-1)
		})
	}
	if cfg.Threshold.Rule == ThresholdFixed {
		if err := d.SetThreshold(cfg.Threshold.Value); err != nil {
			cg.Close()
			return nil, err
		}
	}
	return d, nil
}

// Config returns the configuration, defaults filled in.
func (d *ScaleUp) Config() ScaleUpConfig { return d.cfg }

// Kept says, for each of n inputs x (channels-last, pixels in [0, 1]), whether
// each scaled copy, in the order of Config().Scales, keeps the label the
// model gives the input itself: the score is the share of true. (What
// explains a score: on the zoo, README "Input filtering".)
func (d *ScaleUp) Kept(ctx context.Context, x []float32, n int) ([][]bool, error) {
	labels, err := d.copyLabels(ctx, x, n)
	if err != nil {
		return nil, err
	}
	out := make([][]bool, len(labels))
	for i, l := range labels {
		out[i] = make([]bool, len(l)-1)
		for k, v := range l[1:] {
			out[i][k] = v == l[0]
		}
	}
	return out, nil
}

// labelScores runs the copy graph on n inputs and scores each input from the
// labels of its copies (copy 0 the input itself).
func labelScores(cg *copyGraph, x []float32, n int, score func(labels []int32) float64) ([]float64, []int, error) {
	res, err := cg.run(x, n, nil, cg.labels)
	if err != nil {
		return nil, nil, err
	}
	rows, err := tensorInt32Rows(res[0]) // [1+K, B]
	if err != nil {
		return nil, nil, err
	}
	scores, labels := make([]float64, n), make([]int, n)
	l := make([]int32, len(rows))
	for i := 0; i < n; i++ {
		for c := range rows {
			l[c] = rows[c][i]
		}
		scores[i], labels[i] = score(l), int(l[0])
	}
	return scores, labels, nil
}
