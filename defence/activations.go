package defence

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/mat"

	"github.com/bbd-workbench/bbd/metrics"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// Activation-clustering analyses: how a class's clusters are judged.
const (
	// ACSize is Chen et al.'s relative-size analysis: a cluster holding less
	// than SizeThreshold of its class is poisoned (the poisoned part of a
	// class is assumed to be its minority).
	ACSize = "size"
	// ACSilhouette flags a class when the silhouette score of its clustering
	// exceeds SilhouetteThreshold (the class splits cleanly in two, as a
	// class with a trigger in part of it does); the poisoned cluster is then
	// the outlying one: the cluster whose centroid lies farthest from the
	// mean activation of the other classes' examples. Poisoned examples
	// share the trigger's features, which move them away from all clean
	// data, whatever share of the class they make up.
	ACSilhouette = "silhouette"
)

// Segmentations: which class an example is clustered in.
const (
	// SegmentByLabel clusters each example with the examples of its label in
	// the data (for a training set: the label it was trained with, the
	// attacker's target for a poisoned example). As IBM ART does.
	SegmentByLabel = "label"
	// SegmentByPrediction clusters each example with the examples the model
	// classifies alike (Chen et al.'s Algorithm 1, F(s)); misclassified
	// clean examples then join other classes.
	SegmentByPrediction = "prediction"
)

// DeepIDActivationLayer is the layer activation clustering reads in DeepID
// models: the flattened conv_4 (960 units) that feeds fc_2, the last hidden
// activations of the BBD paper's Figure 9.
const DeepIDActivationLayer = "flatten_2"

// ActivationClusteringConfig configures [ActivationClustering] (Chen et al.,
// "Detecting Backdoor Attacks on Deep Neural Networks by Activation
// Clustering", 2018). Zero fields take the defaults noted
// ([DefaultActivationClusteringConfig] returns them filled in).
type ActivationClusteringConfig struct {
	// Layer whose activations are clustered (flattened per example); zero:
	// DeepIDActivationLayer for DeepID models, else the input of the last
	// Dense layer.
	Layer string `json:"layer"`
	// Components is the dimension of the PCA projection of each class;
	// zero: 10 (Chen et al.).
	Components int `json:"components"`
	// Clusters per class (k-means); zero: 2 (Chen et al.).
	Clusters int `json:"clusters"`
	// Analysis is ACSilhouette (default) or ACSize. The relative-size
	// analysis assumes the poisoned part of a class is its minority; when an
	// attacker poisons as many training images as a class has (the bbd zoo:
	// 10 % of the training set into one of 10 classes) the poisoned part is
	// the majority of the target class and only the silhouette analysis
	// finds it.
	Analysis string `json:"analysis"`
	// SizeThreshold of ACSize: a cluster with a smaller share of its class
	// is poisoned; zero: 0.35 (Chen et al.'s and ART's).
	SizeThreshold float64 `json:"size_threshold"`
	// SilhouetteThreshold of ACSilhouette: a class whose silhouette score
	// exceeds it is flagged; zero: 0.45. Calibrated on the reduced bbd zoo's
	// BadNets (flatten_2, 10 components): clean classes score 0.15 to 0.36,
	// single-trigger target classes 0.47 to 0.57 (ART's default, 0.1, flags
	// every Fashion-MNIST class: clean classes split in two as well).
	SilhouetteThreshold float64 `json:"silhouette_threshold"`
	// SegmentBy is SegmentByLabel (default) or SegmentByPrediction.
	SegmentBy string `json:"segment_by"`
	// Restarts of k-means, each from its own seeded k-means++ start (the
	// clustering with the least inertia is kept); zero: 10.
	Restarts int `json:"restarts"`
	// MaxIterations of each k-means run; zero: 300.
	MaxIterations int `json:"max_iterations"`
	// SilhouetteSample bounds the silhouette computation: classes of up to
	// this many examples get the exact score (all pairs); larger ones the
	// mean silhouette of a seeded sample of this many examples, each scored
	// against all examples of its class. Zero: 5000.
	SilhouetteSample int `json:"silhouette_sample"`
	// Seed of k-means++ and of the silhouette sample.
	Seed uint64 `json:"seed"`
	// Progress, if set, is called after each batch of a pass over the data
	// with the pass (1 or 2), the examples done and the total.
	Progress func(pass, done, total int) `json:"-"`
}

// DefaultActivationClusteringConfig returns the configuration the zero value
// stands for.
func DefaultActivationClusteringConfig() ActivationClusteringConfig {
	return ActivationClusteringConfig{}.withDefaults()
}

func (c ActivationClusteringConfig) withDefaults() ActivationClusteringConfig {
	if c.Components == 0 {
		c.Components = 10
	}
	if c.Clusters == 0 {
		c.Clusters = 2
	}
	if c.Analysis == "" {
		c.Analysis = ACSilhouette
	}
	if c.SizeThreshold == 0 {
		c.SizeThreshold = 0.35
	}
	if c.SilhouetteThreshold == 0 {
		c.SilhouetteThreshold = 0.45
	}
	if c.SegmentBy == "" {
		c.SegmentBy = SegmentByLabel
	}
	if c.Restarts == 0 {
		c.Restarts = 10
	}
	if c.MaxIterations == 0 {
		c.MaxIterations = 300
	}
	if c.SilhouetteSample == 0 {
		c.SilhouetteSample = 5000
	}
	return c
}

// Validate checks the configuration (zero fields are valid: they take the
// defaults).
func (c ActivationClusteringConfig) Validate() error {
	const m = "activation clustering"
	switch {
	case c.Components < 0:
		return configError(m, "Components", "a positive dimension", c.Components)
	case c.Clusters < 0 || c.Clusters == 1:
		return configError(m, "Clusters", "at least 2", c.Clusters)
	case c.Analysis != "" && c.Analysis != ACSize && c.Analysis != ACSilhouette:
		return configError(m, "Analysis", fmt.Sprintf("%q or %q", ACSilhouette, ACSize), fmt.Sprintf("%q", c.Analysis))
	case c.SizeThreshold < 0 || c.SizeThreshold >= 1:
		return configError(m, "SizeThreshold", "a share in (0, 1)", c.SizeThreshold)
	case c.SilhouetteThreshold < 0 || c.SilhouetteThreshold >= 1:
		return configError(m, "SilhouetteThreshold", "a score in (0, 1)", c.SilhouetteThreshold)
	case c.SegmentBy != "" && c.SegmentBy != SegmentByLabel && c.SegmentBy != SegmentByPrediction:
		return configError(m, "SegmentBy", fmt.Sprintf("%q or %q", SegmentByLabel, SegmentByPrediction), fmt.Sprintf("%q", c.SegmentBy))
	case c.Restarts < 0:
		return configError(m, "Restarts", "a positive count", c.Restarts)
	case c.MaxIterations < 0:
		return configError(m, "MaxIterations", "a positive count", c.MaxIterations)
	case c.SilhouetteSample < 0 || c.SilhouetteSample == 1:
		return configError(m, "SilhouetteSample", "at least 2 examples", c.SilhouetteSample)
	}
	return nil
}

// ActivationClustering flags the poisoned part of a (training) data set from
// a model trained on it: the activations of one layer, class by class,
// projected onto their top principal components and split by k-means.
//
// The data is read twice, batch by batch, never held in memory: the first
// pass accumulates each class's mean and covariance (d x d for d units; a
// class with at most d examples keeps its activations instead and is
// analysed through their Gram matrix, so memory stays below both n x d and
// classes x d x d values), the second projects each example (only the n x
// Components projections are kept). The second pass is skipped when every
// class has at most d examples. IBM ART's ActivationDefence needs the whole
// data set in memory (ART issue #373).
type ActivationClustering struct {
	Config ActivationClusteringConfig
}

// NewActivationClustering checks cfg and fills in its defaults.
func NewActivationClustering(cfg ActivationClusteringConfig) (*ActivationClustering, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &ActivationClustering{Config: cfg.withDefaults()}, nil
}

// Name is "activation-clustering".
func (*ActivationClustering) Name() string { return "activation-clustering" }

// ActivationReport is what activation clustering found in a data set.
type ActivationReport struct {
	Method     string `json:"method"`
	Layer      string `json:"layer"`
	Units      int    `json:"units"` // activations per example (d)
	Components int    `json:"components"`
	Clusters   int    `json:"clusters"`
	Analysis   string `json:"analysis"`
	// Threshold is the analysis's: SizeThreshold or SilhouetteThreshold.
	Threshold float64 `json:"threshold"`
	SegmentBy string  `json:"segment_by"`
	Examples  int     `json:"examples"`
	// Passes over the data: 2, or 1 when every class was small enough.
	Passes int `json:"passes"`
	// Classes has one entry per class with examples, in increasing order.
	Classes []ActivationClass `json:"classes"`
	// Flagged lists the classes with a poisoned cluster.
	Flagged []int `json:"flagged"`
	// FlaggedExamples counts the examples judged poisoned.
	FlaggedExamples int `json:"flagged_examples"`
	// Evaluation is set by Evaluate.
	Evaluation *ActivationEvaluation `json:"evaluation,omitempty"`

	// Per example, in the data's order: the class it was clustered in, its
	// cluster within that class, and whether it is judged poisoned.
	Class   []int  `json:"-"`
	Cluster []int  `json:"-"`
	Flags   []bool `json:"-"`
	// Projections holds each class's examples' PCA projections (row-major,
	// Components per example, in the data's order), by class.
	Projections map[int][]float64 `json:"-"`
}

// ActivationClass is one class's clustering.
type ActivationClass struct {
	Class int `json:"class"`
	Size  int `json:"size"`
	// Explained is the share of the class's activation variance its
	// projection keeps.
	Explained    float64   `json:"explained_variance"`
	ClusterSizes []int     `json:"cluster_sizes"`
	Shares       []float64 `json:"shares"`
	// Silhouette is the mean silhouette coefficient of the clustering in
	// the projection (0 when fewer than two clusters are non-empty);
	// SilhouetteSample is the number of examples it averages (Size when
	// exact).
	Silhouette       float64 `json:"silhouette"`
	SilhouetteSample int     `json:"silhouette_sample"`
	// Outlying is, per cluster, the distance from its centroid to the mean
	// activation of the other classes' examples (centroid taken in the
	// projection, mapped back to the layer's space).
	Outlying []float64 `json:"outlying"`
	// Poisoned is, per cluster, the analysis's verdict.
	Poisoned []bool `json:"poisoned"`
	Flagged  bool   `json:"flagged"`
	// Detection counts the class's flags against the truth (Evaluate).
	Detection *metrics.Detection `json:"detection,omitempty"`
}

// ActivationEvaluation compares the flags with the known poisoned examples.
type ActivationEvaluation struct {
	Detection metrics.Detection `json:"detection"`
	// Precision is the share of flagged examples that are poisoned; Recall
	// the share of poisoned examples flagged.
	Precision metrics.Ratio `json:"precision"`
	Recall    metrics.Ratio `json:"recall"`
}

// FlaggedIndices returns the indices of the examples judged poisoned.
func (r *ActivationReport) FlaggedIndices() []int {
	var out []int
	for i, f := range r.Flags {
		if f {
			out = append(out, i)
		}
	}
	return out
}

// ClassReport returns the entry of class c.
func (r *ActivationReport) ClassReport(c int) (*ActivationClass, bool) {
	for i := range r.Classes {
		if r.Classes[i].Class == c {
			return &r.Classes[i], true
		}
	}
	return nil, false
}

// Evaluate compares the flags with the truth (poisoned[i]: example i is
// poisoned), overall and per class, and records it in r.Evaluation and each
// class's Detection.
func (r *ActivationReport) Evaluate(poisoned []bool) error {
	if len(poisoned) != len(r.Flags) {
		return fmt.Errorf("activation clustering: %d truth values for %d examples: %w", len(poisoned), len(r.Flags), metrics.ErrLength)
	}
	d, err := metrics.Detect(r.Flags, poisoned)
	if err != nil {
		return err
	}
	r.Evaluation = &ActivationEvaluation{Detection: d, Precision: precision(d), Recall: d.TPR()}
	per := map[int]*metrics.Detection{}
	for i := range r.Classes {
		r.Classes[i].Detection = &metrics.Detection{}
		per[r.Classes[i].Class] = r.Classes[i].Detection
	}
	for i, f := range r.Flags {
		one, _ := metrics.Detect([]bool{f}, []bool{poisoned[i]})
		if cd := per[r.Class[i]]; cd != nil {
			*cd = cd.Add(one)
		}
	}
	return nil
}

func precision(d metrics.Detection) metrics.Ratio {
	return metrics.Ratio{Hits: d.TP, Total: d.TP + d.FP}
}

// Scan runs the clustering on ex (the data set to inspect, typically the
// training set, labelled) and returns the per-class findings: Score is the
// silhouette, Flagged the analysis's verdict.
func (a *ActivationClustering) Scan(ctx context.Context, m *tfmodels.Model, ex Examples) (*ScanReport, error) {
	r, err := a.Run(ctx, m, ex)
	if err != nil {
		return nil, err
	}
	s := &ScanReport{Method: a.Name(), Flagged: r.Flagged}
	for _, c := range r.Classes {
		s.Labels = append(s.Labels, LabelFinding{Label: c.Class, Score: c.Silhouette, Flagged: c.Flagged, Exact: c.SilhouetteSample == c.Size})
	}
	return s, nil
}

// ActivationLayer returns the layer activation clustering reads by default
// in m: DeepIDActivationLayer for DeepID models, else the input of the last
// Dense layer.
func ActivationLayer(m *tfmodels.Model) (string, error) {
	if m == nil || !m.WhiteBox() {
		return "", fmt.Errorf("activation layer: %w", tfmodels.ErrNotWhiteBox)
	}
	if _, ok := m.Arch.Layer(DeepIDActivationLayer); ok && m.Arch.Name == "deepid" {
		return DeepIDActivationLayer, nil
	}
	for i := len(m.Arch.Layers) - 1; i >= 0; i-- {
		if l := m.Arch.Layers[i]; l.Kind == tfmodels.KindDense && len(l.Inputs) == 1 {
			return l.Inputs[0], nil
		}
	}
	return "", fmt.Errorf("activation layer: %s has no Dense layer; name a layer", m.Arch.Name)
}

// Run clusters the activations of ex, class by class, and flags the
// poisoned clusters.
func (a *ActivationClustering) Run(ctx context.Context, m *tfmodels.Model, ex Examples) (*ActivationReport, error) {
	cfg := a.Config.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	layerName := cfg.Layer
	if layerName == "" {
		var err error
		if layerName, err = ActivationLayer(m); err != nil {
			return nil, fmt.Errorf("activation clustering: %w", err)
		}
	}
	layer, err := m.Layer(layerName)
	if err != nil {
		return nil, fmt.Errorf("activation clustering: %w", err)
	}
	n := ex.Len()
	if n == 0 {
		return nil, fmt.Errorf("activation clustering: no examples")
	}
	byPred := cfg.SegmentBy == SegmentByPrediction
	outs := []tfOutput{layer}
	if byPred {
		outs = append(outs, m.Probabilities)
	}
	per := m.InputShape[0] * m.InputShape[1] * m.InputShape[2]

	// Pass 1: per-class statistics.
	r := &ActivationReport{Method: a.Name(), Layer: layerName, Components: cfg.Components, Clusters: cfg.Clusters,
		Analysis: cfg.Analysis, SegmentBy: cfg.SegmentBy, Examples: n, Passes: 1,
		Class: make([]int, n), Cluster: make([]int, n), Flags: make([]bool, n), Projections: map[int][]float64{}}
	r.Threshold = cfg.SilhouetteThreshold
	if cfg.Analysis == ACSize {
		r.Threshold = cfg.SizeThreshold
	}
	accs := map[int]*classAcc{}
	total := &covAcc{} // all examples: for the other classes' means
	at := 0
	err = eachBatch(ctx, m, ex, func(x []float32, labels []int32) error {
		b := len(x) / per
		res, err := m.Run(x, b, outs...)
		if err != nil {
			return err
		}
		d := len(res[0]) / b
		if r.Units == 0 {
			r.Units = d
			total.init(d)
		}
		for i := 0; i < b; i++ {
			c := int(labels[i])
			if !byPred && c < 0 {
				return fmt.Errorf("example %d has no label (segment by %q instead)", at+i, SegmentByPrediction)
			}
			if byPred {
				c = argmax(res[1][i*m.NumClasses : (i+1)*m.NumClasses])
			}
			r.Class[at+i] = c
			acc := accs[c]
			if acc == nil {
				acc = &classAcc{}
				acc.init(d)
				accs[c] = acc
			}
			row := res[0][i*d : (i+1)*d]
			acc.add(row)
			total.addMean(row)
		}
		at += b
		if cfg.Progress != nil {
			cfg.Progress(1, at, n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("activation clustering: %w", err)
	}
	classes := make([]int, 0, len(accs))
	for c := range accs {
		classes = append(classes, c)
	}
	slices.Sort(classes)
	k := min(cfg.Components, r.Units)
	r.Components = k
	pcas := map[int]*pcaFit{}
	needPass2 := false
	for _, c := range classes {
		p, err := accs[c].fit(k, cfg.Seed+uint64(c)+1)
		if err != nil {
			return nil, fmt.Errorf("activation clustering: class %d: %w", c, err)
		}
		pcas[c] = p
		if p.proj != nil {
			r.Projections[c] = p.proj
		} else {
			r.Projections[c] = make([]float64, 0, accs[c].n*k)
			needPass2 = true
		}
		accs[c].rows = nil
	}

	// Pass 2: project the examples of the classes fitted on their covariance.
	if needPass2 {
		r.Passes = 2
		at = 0
		buf := make([]float64, k)
		err = eachBatch(ctx, m, ex, func(x []float32, labels []int32) error {
			b := len(x) / per
			res, err := m.Run(x, b, layer)
			if err != nil {
				return err
			}
			d := len(res[0]) / b
			if d != r.Units {
				return fmt.Errorf("second pass: %d activations per example, the first had %d", d, r.Units)
			}
			for i := 0; i < b; i++ {
				c := r.Class[at+i]
				if !byPred && int(labels[i]) != c {
					return fmt.Errorf("second pass: example %d has label %d, the first pass read %d (the data changed)", at+i, labels[i], c)
				}
				p := pcas[c]
				if p.proj != nil {
					continue
				}
				p.project(res[0][i*d:(i+1)*d], buf)
				r.Projections[c] = append(r.Projections[c], buf...)
			}
			at += b
			if cfg.Progress != nil {
				cfg.Progress(2, at, n)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("activation clustering: %w", err)
		}
		for _, c := range classes {
			if len(r.Projections[c]) != accs[c].n*k {
				return nil, fmt.Errorf("activation clustering: second pass: class %d has %d examples, the first pass read %d (the data changed)", c, len(r.Projections[c])/k, accs[c].n)
			}
		}
	}
	// Cluster each class.
	members := map[int][]int{}
	for i, c := range r.Class {
		members[c] = append(members[c], i)
	}
	for _, c := range classes {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		idx := members[c]
		z := r.Projections[c]
		cc := ActivationClass{Class: c, Size: len(idx), Explained: pcas[c].explained}
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(c)+0x9e3779b97f4a7c15))
		assign, cent := kMeans(z, k, cfg.Clusters, cfg.Restarts, cfg.MaxIterations, rng)
		cc.ClusterSizes = make([]int, cfg.Clusters)
		for _, j := range assign {
			cc.ClusterSizes[j]++
		}
		cc.Shares = make([]float64, cfg.Clusters)
		for j, s := range cc.ClusterSizes {
			cc.Shares[j] = float64(s) / float64(len(idx))
		}
		cc.Silhouette, cc.SilhouetteSample = silhouette(z, k, assign, cfg.Clusters, cfg.SilhouetteSample, rng)
		// Distance of each centroid, mapped back, to the other classes' mean.
		other := total.otherMean(accs[c])
		cc.Outlying = make([]float64, cfg.Clusters)
		for j := range cent {
			cc.Outlying[j] = pcas[c].distanceTo(cent[j], other)
		}
		cc.Poisoned = make([]bool, cfg.Clusters)
		nonEmpty := 0
		for _, s := range cc.ClusterSizes {
			if s > 0 {
				nonEmpty++
			}
		}
		if nonEmpty >= 2 {
			switch cfg.Analysis {
			case ACSize:
				for j, s := range cc.Shares {
					cc.Poisoned[j] = cc.ClusterSizes[j] > 0 && s < cfg.SizeThreshold
				}
			case ACSilhouette:
				if cc.Silhouette > cfg.SilhouetteThreshold && other != nil {
					far := -1
					for j, d := range cc.Outlying {
						if cc.ClusterSizes[j] > 0 && (far < 0 || d > cc.Outlying[far]) {
							far = j
						}
					}
					cc.Poisoned[far] = true
				}
			}
		}
		for _, p := range cc.Poisoned {
			cc.Flagged = cc.Flagged || p
		}
		for t, i := range idx {
			r.Cluster[i] = assign[t]
			if cc.Poisoned[assign[t]] {
				r.Flags[i] = true
				r.FlaggedExamples++
			}
		}
		if cc.Flagged {
			r.Flagged = append(r.Flagged, c)
		}
		r.Classes = append(r.Classes, cc)
	}
	return r, nil
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// covAcc accumulates the mean and (optionally) the scatter matrix of rows,
// shifted by the first row for numerical stability.
type covAcc struct {
	d     int
	n     int
	shift []float64
	sum   []float64     // sum of (x - shift)
	s     *mat.SymDense // sum of (x - shift)(x - shift)^T; nil: means only
	buf   []float64     // pending shifted rows, flushed into s
}

const scatterChunk = 256 // rows per rank-k update

func (a *covAcc) init(d int) {
	a.d = d
	a.sum = make([]float64, d)
}

func (a *covAcc) addMean(row []float32) {
	if a.shift == nil {
		a.shift = make([]float64, a.d)
		for j, v := range row {
			a.shift[j] = float64(v)
		}
	}
	for j, v := range row {
		a.sum[j] += float64(v) - a.shift[j]
	}
	a.n++
}

// addScatter adds row to the mean and the scatter matrix.
func (a *covAcc) addScatter(row []float32) {
	a.addMean(row)
	if a.s == nil {
		a.s = mat.NewSymDense(a.d, nil)
	}
	for j, v := range row {
		a.buf = append(a.buf, float64(v)-a.shift[j])
	}
	if len(a.buf) >= scatterChunk*a.d {
		a.flush()
	}
}

func (a *covAcc) flush() {
	if len(a.buf) == 0 {
		return
	}
	rows := mat.NewDense(len(a.buf)/a.d, a.d, a.buf)
	a.s.SymRankK(a.s, 1, rows.T())
	a.buf = a.buf[:0]
}

func (a *covAcc) mean() []float64 {
	mu := make([]float64, a.d)
	for j := range mu {
		mu[j] = a.shift[j] + a.sum[j]/float64(a.n)
	}
	return mu
}

// covariance returns the sample covariance (divided by n - 1).
func (a *covAcc) covariance() *mat.SymDense {
	a.flush()
	n := float64(a.n)
	m := make([]float64, a.d)
	for j := range m {
		m[j] = a.sum[j] / n
	}
	c := mat.NewSymDense(a.d, nil)
	c.SymRankOne(a.s, -n, mat.NewVecDense(a.d, m))
	c.ScaleSym(1/math.Max(n-1, 1), c)
	return c
}

// otherMean is the mean of the rows a has seen that c has not (c's rows
// being a subset of a's), or nil when there are none.
func (a *covAcc) otherMean(c *classAcc) []float64 {
	no := a.n - c.n
	if no <= 0 {
		return nil
	}
	muAll, muC := a.mean(), c.cov.mean()
	out := make([]float64, a.d)
	for j := range out {
		out[j] = (muAll[j]*float64(a.n) - muC[j]*float64(c.n)) / float64(no)
	}
	return out
}

// classAcc gathers one class: its raw activations while it has at most d
// examples, its scatter matrix beyond.
type classAcc struct {
	cov  covAcc
	n    int
	rows []float32 // while n <= d
}

func (c *classAcc) init(d int) { c.cov.init(d) }

func (c *classAcc) add(row []float32) {
	c.n++
	d := c.cov.d
	if c.cov.s == nil && c.n <= d {
		c.rows = append(c.rows, row...)
		c.cov.addMean(row)
		return
	}
	if c.rows != nil { // switch to the scatter matrix
		c.cov.s = mat.NewSymDense(d, nil)
		for j, v := range c.rows {
			c.cov.buf = append(c.cov.buf, float64(v)-c.cov.shift[j%d])
			if len(c.cov.buf) >= scatterChunk*d {
				c.cov.flush()
			}
		}
		c.rows = nil
	}
	c.cov.addScatter(row)
}

// pcaFit is a class's principal components.
type pcaFit struct {
	mu        []float64
	v         *mat.Dense // d x k, orthonormal columns (zero where the rank ends)
	explained float64
	proj      []float64 // projections of the kept rows (nil: project in a second pass)
}

// fit finds the top k principal components: from the Gram matrix of the
// kept rows, or from the scatter matrix.
func (c *classAcc) fit(k int, seed uint64) (*pcaFit, error) {
	d := c.cov.d
	p := &pcaFit{mu: c.cov.mean()}
	if c.cov.s != nil {
		cov := c.cov.covariance()
		vals, vecs := topEigen(cov, k, seed)
		p.v = vecs
		p.explained = explainedShare(vals, trace(cov))
		return p, nil
	}
	// Gram path: rows x (n <= d).
	n := c.n
	xc := mat.NewDense(n, d, nil)
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			xc.Set(i, j, float64(c.rows[i*d+j])-p.mu[j])
		}
	}
	g := mat.NewSymDense(n, nil)
	g.SymRankK(g, 1/math.Max(float64(n-1), 1), xc)
	kk := min(k, n)
	vals, u := topEigen(g, kk, seed)
	p.explained = explainedShare(vals, trace(g))
	p.v = mat.NewDense(d, k, nil)
	p.proj = make([]float64, n*k)
	for t := 0; t < kk; t++ {
		if vals[t] <= 1e-12*math.Max(vals[0], 1e-300) {
			continue // beyond the rank: a zero component
		}
		s := math.Sqrt(vals[t] * math.Max(float64(n-1), 1))
		for i := 0; i < n; i++ {
			p.proj[i*k+t] = u.At(i, t) * s
		}
		// v_t = Xc^T u_t / s.
		col := mat.NewVecDense(d, nil)
		col.MulVec(xc.T(), u.ColView(t))
		for j := 0; j < d; j++ {
			p.v.Set(j, t, col.AtVec(j)/s)
		}
	}
	// The sign convention of topEigen, on v (as the covariance path has it).
	for t := 0; t < kk; t++ {
		big := 0
		for j := 0; j < d; j++ {
			if math.Abs(p.v.At(j, t)) > math.Abs(p.v.At(big, t)) {
				big = j
			}
		}
		if p.v.At(big, t) < 0 {
			for j := 0; j < d; j++ {
				p.v.Set(j, t, -p.v.At(j, t))
			}
			for i := 0; i < n; i++ {
				p.proj[i*k+t] = -p.proj[i*k+t]
			}
		}
	}
	return p, nil
}

func (p *pcaFit) project(row []float32, out []float64) {
	d, k := p.v.Dims()
	for t := range out[:k] {
		out[t] = 0
	}
	for j := 0; j < d; j++ {
		x := float64(row[j]) - p.mu[j]
		if x == 0 {
			continue
		}
		vr := p.v.RawRowView(j)
		for t := 0; t < k; t++ {
			out[t] += x * vr[t]
		}
	}
}

// distanceTo is the distance from mu + V z to point.
func (p *pcaFit) distanceTo(z []float64, point []float64) float64 {
	if point == nil {
		return 0
	}
	d, k := p.v.Dims()
	var s float64
	for j := 0; j < d; j++ {
		x := p.mu[j] - point[j]
		vr := p.v.RawRowView(j)
		for t := 0; t < k; t++ {
			x += vr[t] * z[t]
		}
		s += x * x
	}
	return math.Sqrt(s)
}

func trace(a *mat.SymDense) float64 {
	var t float64
	for i := 0; i < a.SymmetricDim(); i++ {
		t += a.At(i, i)
	}
	return t
}

func explainedShare(vals []float64, tr float64) float64 {
	if tr <= 0 {
		return 0
	}
	var s float64
	for _, v := range vals {
		s += math.Max(v, 0)
	}
	return math.Min(s/tr, 1)
}

// topEigen returns the k largest eigenvalues of the symmetric positive
// semi-definite a, in decreasing order, and their eigenvectors (columns),
// each with its largest-magnitude entry positive. Small matrices get a full
// decomposition; large ones subspace iteration with Rayleigh-Ritz (block
// 2k+8, seeded start) until the residuals are below 1e-7 of the largest
// eigenvalue (at most 500 iterations): a 960 x 960 covariance takes tens of milliseconds instead of
// the seconds of a full decomposition.
func topEigen(a *mat.SymDense, k int, seed uint64) ([]float64, *mat.Dense) {
	n := a.SymmetricDim()
	k = min(k, n)
	p := min(n, 2*k+8)
	if n <= 128 || p*2 >= n {
		var e mat.EigenSym
		if !e.Factorize(a, true) {
			return make([]float64, k), mat.NewDense(n, k, nil)
		}
		vals := e.Values(nil)
		var vecs mat.Dense
		e.VectorsTo(&vecs)
		out := mat.NewDense(n, k, nil)
		ov := make([]float64, k)
		for t := 0; t < k; t++ {
			ov[t] = vals[n-1-t]
			for i := 0; i < n; i++ {
				out.Set(i, t, vecs.At(i, n-1-t))
			}
		}
		normalizeSigns(out)
		return ov, out
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	q := mat.NewDense(n, p, nil)
	for i := 0; i < n; i++ {
		for j := 0; j < p; j++ {
			q.Set(i, j, rng.NormFloat64())
		}
	}
	orthonormalize(q)
	y := mat.NewDense(n, p, nil)
	b := mat.NewSymDense(p, nil)
	x := mat.NewDense(n, p, nil)
	ax := mat.NewDense(n, p, nil)
	var theta []float64
	var w mat.Dense
	for iter := 0; iter < 500; iter++ {
		y.Mul(a, q)
		// Rayleigh-Ritz: B = Q^T A Q.
		var bq mat.Dense
		bq.Mul(q.T(), y)
		for i := 0; i < p; i++ {
			for j := i; j < p; j++ {
				b.SetSym(i, j, (bq.At(i, j)+bq.At(j, i))/2)
			}
		}
		var e mat.EigenSym
		if !e.Factorize(b, true) {
			break
		}
		theta = e.Values(nil)
		e.VectorsTo(&w)
		x.Mul(q, &w)  // Ritz vectors (ascending order)
		ax.Mul(y, &w) // A x
		// Residuals of the top k.
		top := math.Max(theta[p-1], 1e-300)
		worst := 0.0
		for t := 0; t < k; t++ {
			col := p - 1 - t
			var r float64
			for i := 0; i < n; i++ {
				d := ax.At(i, col) - theta[col]*x.At(i, col)
				r += d * d
			}
			worst = math.Max(worst, math.Sqrt(r)/top)
		}
		if worst < 1e-7 {
			break
		}
		q.Copy(ax)
		orthonormalize(q)
	}
	out := mat.NewDense(n, k, nil)
	vals := make([]float64, k)
	if theta == nil {
		return vals, out
	}
	for t := 0; t < k; t++ {
		vals[t] = theta[p-1-t]
		for i := 0; i < n; i++ {
			out.Set(i, t, x.At(i, p-1-t))
		}
	}
	normalizeSigns(out)
	return vals, out
}

// orthonormalize replaces the columns of q by an orthonormal basis of their
// span (modified Gram-Schmidt, twice).
func orthonormalize(q *mat.Dense) {
	n, p := q.Dims()
	col := make([]float64, n)
	other := make([]float64, n)
	for pass := 0; pass < 2; pass++ {
		for j := 0; j < p; j++ {
			mat.Col(col, j, q)
			for i := 0; i < j; i++ {
				mat.Col(other, i, q)
				var dot float64
				for t := range col {
					dot += col[t] * other[t]
				}
				for t := range col {
					col[t] -= dot * other[t]
				}
			}
			var norm float64
			for _, v := range col {
				norm += v * v
			}
			norm = math.Sqrt(norm)
			if norm < 1e-300 {
				norm = 1
			}
			for t := range col {
				col[t] /= norm
			}
			q.SetCol(j, col)
		}
	}
}

func normalizeSigns(v *mat.Dense) {
	n, k := v.Dims()
	for t := 0; t < k; t++ {
		big := 0
		for i := 0; i < n; i++ {
			if math.Abs(v.At(i, t)) > math.Abs(v.At(big, t)) {
				big = i
			}
		}
		if v.At(big, t) < 0 {
			for i := 0; i < n; i++ {
				v.Set(i, t, -v.At(i, t))
			}
		}
	}
}

// kMeans clusters the n points z (row-major, dim values each) into k
// clusters: restarts runs of Lloyd's algorithm from k-means++ starts, the
// one of least inertia kept. It returns each point's cluster and the
// centroids.
func kMeans(z []float64, dim, k, restarts, maxIter int, rng *rand.Rand) ([]int, [][]float64) {
	n := len(z) / dim
	best := math.Inf(1)
	var bestAssign []int
	var bestCent [][]float64
	dist2 := func(i int, c []float64) float64 {
		var s float64
		for t, v := range z[i*dim : (i+1)*dim] {
			d := v - c[t]
			s += d * d
		}
		return s
	}
	for r := 0; r < restarts; r++ {
		cent := make([][]float64, k)
		// k-means++.
		first := rng.IntN(n)
		cent[0] = slices.Clone(z[first*dim : (first+1)*dim])
		dmin := make([]float64, n)
		for i := range dmin {
			dmin[i] = dist2(i, cent[0])
		}
		for j := 1; j < k; j++ {
			var sum float64
			for _, d := range dmin {
				sum += d
			}
			pick := rng.IntN(n)
			if sum > 0 {
				u := rng.Float64() * sum
				for i, d := range dmin {
					u -= d
					if u < 0 {
						pick = i
						break
					}
				}
			}
			cent[j] = slices.Clone(z[pick*dim : (pick+1)*dim])
			for i := range dmin {
				dmin[i] = math.Min(dmin[i], dist2(i, cent[j]))
			}
		}
		assign := make([]int, n)
		var inertia float64
		for it := 0; it < maxIter; it++ {
			changed := it == 0
			inertia = 0
			for i := 0; i < n; i++ {
				bj, bd := 0, math.Inf(1)
				for j := range cent {
					if d := dist2(i, cent[j]); d < bd {
						bj, bd = j, d
					}
				}
				if assign[i] != bj {
					assign[i], changed = bj, true
				}
				inertia += bd
			}
			if !changed {
				break
			}
			counts := make([]int, k)
			for j := range cent {
				clear(cent[j])
			}
			for i, j := range assign {
				counts[j]++
				for t, v := range z[i*dim : (i+1)*dim] {
					cent[j][t] += v
				}
			}
			for j := range cent {
				if counts[j] == 0 {
					// Empty cluster: restart it at the point farthest from
					// its centroid.
					far, fd := 0, -1.0
					for i := 0; i < n; i++ {
						if d := dist2(i, cent[assign[i]]); d > fd {
							far, fd = i, d
						}
					}
					copy(cent[j], z[far*dim:(far+1)*dim])
					continue
				}
				for t := range cent[j] {
					cent[j][t] /= float64(counts[j])
				}
			}
		}
		if inertia < best {
			best, bestAssign, bestCent = inertia, assign, cent
		}
	}
	return bestAssign, bestCent
}

// silhouette is the mean silhouette coefficient of the clustering (points
// in a cluster of their own score 0), exact for up to sample points, else
// over a seeded sample of that many points scored against all points. It
// returns 0 when fewer than two clusters are non-empty, and the number of
// points averaged.
func silhouette(z []float64, dim int, assign []int, k, sample int, rng *rand.Rand) (float64, int) {
	n := len(assign)
	counts := make([]int, k)
	for _, j := range assign {
		counts[j]++
	}
	nonEmpty := 0
	for _, c := range counts {
		if c > 0 {
			nonEmpty++
		}
	}
	if nonEmpty < 2 {
		return 0, 0
	}
	pts := make([]int, n)
	for i := range pts {
		pts[i] = i
	}
	if n > sample {
		rng.Shuffle(n, func(i, j int) { pts[i], pts[j] = pts[j], pts[i] })
		pts = pts[:sample]
		slices.Sort(pts)
	}
	sums := make([]float64, k)
	var total float64
	for _, i := range pts {
		clear(sums)
		zi := z[i*dim : (i+1)*dim]
		for j := 0; j < n; j++ {
			var s float64
			for t, v := range z[j*dim : (j+1)*dim] {
				d := v - zi[t]
				s += d * d
			}
			sums[assign[j]] += math.Sqrt(s)
		}
		own := assign[i]
		if counts[own] <= 1 {
			continue
		}
		a := sums[own] / float64(counts[own]-1)
		b := math.Inf(1)
		for j, c := range counts {
			if j != own && c > 0 {
				b = math.Min(b, sums[j]/float64(c))
			}
		}
		if m := math.Max(a, b); m > 0 {
			total += (b - a) / m
		}
	}
	return total / float64(len(pts)), len(pts)
}

// PCAPoints are examples' activations projected onto principal components,
// for a scatter plot such as the BBD paper's Figure 9.
type PCAPoints struct {
	Layer string `json:"layer"`
	Units int    `json:"units"`
	// Explained is the share of the activation variance along each of the
	// two components.
	Explained [2]float64 `json:"explained_variance"`
	// Points holds, per input set in the order given, each example's
	// coordinates on the two components.
	Points [][][2]float64 `json:"points"`
}

// PCA2D projects the activations of layer (zero: [ActivationLayer]) for
// every example of sets onto the top two principal components of all of
// them together: clean and poisoned inputs in one picture, as in the BBD
// paper's Figure 9 (after Chen et al.). The sets are read twice, batch by
// batch (covariance, then projections); only the points are kept.
func PCA2D(ctx context.Context, m *tfmodels.Model, layer string, sets ...Examples) (*PCAPoints, error) {
	if len(sets) == 0 {
		return nil, errors.New("pca: no input sets")
	}
	if layer == "" {
		var err error
		if layer, err = ActivationLayer(m); err != nil {
			return nil, fmt.Errorf("pca: %w", err)
		}
	}
	out, err := m.Layer(layer)
	if err != nil {
		return nil, fmt.Errorf("pca: %w", err)
	}
	per := m.InputShape[0] * m.InputShape[1] * m.InputShape[2]
	acc := &covAcc{}
	for _, ex := range sets {
		err := eachBatch(ctx, m, ex, func(x []float32, _ []int32) error {
			b := len(x) / per
			res, err := m.Run(x, b, out)
			if err != nil {
				return err
			}
			d := len(res[0]) / b
			if acc.d == 0 {
				acc.init(d)
			}
			for i := 0; i < b; i++ {
				acc.addScatter(res[0][i*d : (i+1)*d])
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("pca: %w", err)
		}
	}
	if acc.n < 2 {
		return nil, fmt.Errorf("pca: %d examples: need at least 2", acc.n)
	}
	cov := acc.covariance()
	vals, vecs := topEigen(cov, 2, 1)
	pts := &PCAPoints{Layer: layer, Units: acc.d}
	if tr := trace(cov); tr > 0 {
		for t := range vals {
			pts.Explained[t] = math.Max(vals[t], 0) / tr
		}
	}
	fit := &pcaFit{mu: acc.mean(), v: vecs}
	buf := make([]float64, 2)
	for _, ex := range sets {
		var set [][2]float64
		err := eachBatch(ctx, m, ex, func(x []float32, _ []int32) error {
			b := len(x) / per
			res, err := m.Run(x, b, out)
			if err != nil {
				return err
			}
			d := len(res[0]) / b
			for i := 0; i < b; i++ {
				fit.project(res[0][i*d:(i+1)*d], buf)
				set = append(set, [2]float64{buf[0], buf[1]})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("pca: %w", err)
		}
		pts.Points = append(pts.Points, set)
	}
	return pts, nil
}
