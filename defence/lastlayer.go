package defence

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/bbd-workbench/bbd/tfmodels"
)

// LastLayerConfig configures the data-free last-layer check. The zero value
// is the default.
type LastLayerConfig struct {
	// Alpha is the family-wise level of the Bonferroni threshold over the
	// 2 x classes one-sided tests (two indicators per label); zero:
	// DefaultMADAlpha (0.05).
	Alpha float64 `json:"alpha,omitempty"`
	// MinThreshold is the smallest threshold, whatever the number of
	// classes; zero: 2 (Neural Cleanse's).
	MinThreshold float64 `json:"min_threshold,omitempty"`
}

// DefaultLastLayerConfig returns the configuration the zero value stands for.
func DefaultLastLayerConfig() LastLayerConfig { return LastLayerConfig{}.withDefaults() }

func (c LastLayerConfig) withDefaults() LastLayerConfig {
	orDefault(&c.Alpha, DefaultMADAlpha)
	orDefault(&c.MinThreshold, 2)
	return c
}

// Validate checks the configuration; its errors wrap ErrConfig.
func (c LastLayerConfig) Validate() error {
	switch {
	case c.Alpha != 0 && !(c.Alpha > 0 && c.Alpha < 1):
		return configError("last-layer", "Alpha", "a level in (0, 1) (zero: 0.05)", c.Alpha)
	case c.MinThreshold < 0 || math.IsNaN(c.MinThreshold):
		return configError("last-layer", "MinThreshold", "an index >= 0 (zero: 2)", c.MinThreshold)
	}
	return nil
}

// LastLayer is bbd's data-free check of a model's final dense layer, after
// the observation of DFBScanner (Yu et al., "Lightweight and Fast Backdoor
// Model Detection", arXiv 2605.18907) that a backdoor leaves anomalous
// parameters in the final classification layer. It needs no data and takes
// milliseconds, even for 1283 classes.
//
// The rule (bbd's; the paper's own indicators were not available to us):
// a BadNet's target must win over every class for any image that carries
// the trigger, whatever the image shows, so poisoned training pushes the
// target's logit up independently of the content: a larger bias and larger
// incoming weights on average. For each label c, with W the kernel
// [features, classes] and b the bias, two indicators:
//
//	bias b_c and mean incoming weight mean_j W[j, c],
//
// each turned into a one-sided robust z-score over all labels, (x -
// median) / (1.4826 MAD), only above the median. A label's index is the
// larger of its two; it is flagged when the index exceeds max(MinThreshold,
// z(1 - Alpha / (2 n))) for n labels (Bonferroni over the 2n tests, see
// [MADBonferroniThreshold]).
//
// What it finds (README, `go test ./defence/ -run TestLastLayer`): on the real
// CSAW BadNets anonymous_1's 0, anonymous_2's 4 and multi-trigger's 1 and 5
// with indices 6-11, far above their 1283 labels' threshold 4.11, and no
// other label (the largest ordinary index, 4.07, is multi-trigger's 528, by
// its bias); it misses multi-trigger's 8 (index 0.5) and the sunglasses
// BadNet's 0 (index 2.5, 13th). On the Fashion-MNIST zoo, whose BadNets were
// trained from scratch on poisoned data, it finds nothing (no index above
// 2.2 of 10 labels, threshold 2.81): the signal is the fine-tuning of a
// trained classifier towards a target, not something every BadNet has. So
// it complements Neural Cleanse and does not replace it: the fast budget
// protects its flagged labels, and a scan's verdict takes them as
// candidates that the reversed triggers must confirm ([CleanseReport.Detect]). These
// indicators were chosen with the real BadNets in view (bias, mean weight,
// sum of positive weights, column norm and largest weight were looked at):
// treat its flags as evidence to confirm, like any scanner's.
type LastLayer struct {
	Config LastLayerConfig
}

// NewLastLayer checks cfg and returns the check.
func NewLastLayer(cfg LastLayerConfig) (*LastLayer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &LastLayer{Config: cfg}, nil
}

// Name is the scanner's name.
func (l *LastLayer) Name() string { return "last-layer" }

// LastLayerReport is the check's outcome.
type LastLayerReport struct {
	Method string `json:"method"`
	// Layer is the final dense layer, Features its inputs.
	Layer    string `json:"layer"`
	Features int    `json:"features"`
	// Threshold is the index a label must exceed.
	Threshold float64 `json:"threshold"`
	// Flagged labels, most anomalous first.
	Flagged []int `json:"flagged"`
	// Labels, one per class, in order.
	Labels []LastLayerLabel `json:"labels"`
	Config LastLayerConfig  `json:"config"`
}

// LastLayerLabel is one label's indicators and indices.
type LastLayerLabel struct {
	Label      int     `json:"label"`
	Bias       float64 `json:"bias"`
	MeanWeight float64 `json:"mean_weight"`
	// BiasIndex and MeanIndex are the one-sided robust z-scores (0 at or
	// below the median); Index the larger.
	BiasIndex float64 `json:"bias_index"`
	MeanIndex float64 `json:"mean_index"`
	Index     float64 `json:"index"`
	Flagged   bool    `json:"flagged"`
}

// ErrNoDenseOutput: the model's output layer is not a dense layer with a
// kernel [features, classes] and a bias [classes].
var ErrNoDenseOutput = errors.New("the output layer is not a dense layer with a kernel and a bias")

// Scan runs the check (clean is not used and may be nil) and returns it in
// the [Scanner] form (Score: the index).
func (l *LastLayer) Scan(ctx context.Context, m *tfmodels.Model, clean Examples) (*ScanReport, error) {
	r, err := l.Run(m)
	if err != nil {
		return nil, err
	}
	s := &ScanReport{Method: r.Method, Flagged: slices.Clone(r.Flagged)}
	for _, lb := range r.Labels {
		s.Labels = append(s.Labels, LabelFinding{Label: lb.Label, Score: lb.Index, AnomalyIndex: lb.Index, Flagged: lb.Flagged, Exact: true})
	}
	return s, nil
}

// Run checks white-box model m's final dense layer.
func (l *LastLayer) Run(m *tfmodels.Model) (*LastLayerReport, error) {
	if err := l.Config.Validate(); err != nil {
		return nil, err
	}
	if m == nil || m.Arch == nil {
		return nil, fmt.Errorf("last-layer: %w", tfmodels.ErrNotWhiteBox)
	}
	w, err := m.GetWeights()
	if err != nil {
		return nil, fmt.Errorf("last-layer: reading the model's weights: %w", err)
	}
	return lastLayerOf(m.Arch.Output, w, l.Config)
}

// lastLayerOf runs the check on the weights of layer name.
func lastLayerOf(name string, w tfmodels.Weights, cfg LastLayerConfig) (*LastLayerReport, error) {
	cfg = cfg.withDefaults()
	k, b := w[name+"/kernel"], w[name+"/bias"]
	if k == nil || b == nil || len(k.Shape) != 2 || len(b.Shape) != 1 || k.Shape[1] != b.Shape[0] ||
		int64(len(k.Values)) != k.Shape[0]*k.Shape[1] || int64(len(b.Values)) != b.Shape[0] {
		found := "no kernel or no bias"
		if k != nil && b != nil {
			found = fmt.Sprintf("kernel %v (%d values), bias %v (%d values)", k.Shape, len(k.Values), b.Shape, len(b.Values))
		}
		return nil, fmt.Errorf("last-layer: layer %q: %w: expected a kernel [features, classes] and a bias [classes], found %s", name, ErrNoDenseOutput, found)
	}
	f, n := int(k.Shape[0]), int(k.Shape[1])
	if n < 3 || f < 1 {
		return nil, fmt.Errorf("last-layer: layer %q: expected at least 3 classes and 1 feature, found %d and %d", name, n, f)
	}
	bias, mean := make([]float64, n), make([]float64, n)
	for c := range n {
		bias[c] = float64(b.Values[c])
	}
	for j := range f {
		row := k.Values[j*n : (j+1)*n]
		for c, v := range row {
			mean[c] += float64(v)
		}
	}
	for c := range n {
		mean[c] /= float64(f)
		if math.IsNaN(mean[c]) || math.IsInf(mean[c], 0) || math.IsNaN(bias[c]) || math.IsInf(bias[c], 0) {
			return nil, fmt.Errorf("last-layer: layer %q: expected finite weights, found a non-finite value in class %d's column or bias", name, c)
		}
	}
	// MADIndex's |x - median| / MAD, kept above the median only.
	upper := func(x []float64) []float64 {
		med, _, idx := MADIndex(x, x)
		for i, v := range x {
			if v <= med {
				idx[i] = 0
			}
		}
		return idx
	}
	bi, mi := upper(bias), upper(mean)
	r := &LastLayerReport{Method: "last-layer", Layer: name, Features: f, Config: cfg,
		Threshold: max(cfg.MinThreshold, MADBonferroniThreshold(cfg.Alpha, 2*n))}
	for c := range n {
		lb := LastLayerLabel{Label: c, Bias: bias[c], MeanWeight: mean[c], BiasIndex: bi[c], MeanIndex: mi[c], Index: max(bi[c], mi[c])}
		lb.Flagged = lb.Index > r.Threshold
		r.Labels = append(r.Labels, lb)
	}
	r.Flagged = []int{}
	for _, l := range r.Ranked() {
		if !r.Labels[l].Flagged {
			break
		}
		r.Flagged = append(r.Flagged, l)
	}
	return r, nil
}

// Ranked returns the labels by decreasing index (ties by label). Labels
// holds one entry per class, in order, so a label is its own position.
func (r *LastLayerReport) Ranked() []int {
	out := make([]int, len(r.Labels))
	for i := range out {
		out[i] = i
	}
	sort.SliceStable(out, func(a, b int) bool { return r.Labels[out[a]].Index > r.Labels[out[b]].Index })
	return out
}
