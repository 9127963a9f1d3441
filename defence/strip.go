package defence

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	tf "github.com/galeone/tensorflow/tensorflow/go"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/exporter"
	"github.com/bbd-workbench/bbd/metrics"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// OverlayMode says how STRIP superimposes an overlay image on an input.
type OverlayMode string

const (
	// OverlaySum adds the overlay pixel by pixel, x + o, without clipping
	// (values up to 2): what STRIP's authors' and the BBD authors' notebooks
	// ran (../shared/paper/reference-results.md).
	OverlaySum OverlayMode = "sum"
	// OverlayBlend blends the overlay in, (1 - Alpha) x + Alpha o: bbd's
	// default, with Alpha DefaultBlendAlpha.
	OverlayBlend OverlayMode = "blend"
)

// DefaultBlendAlpha is the overlay's weight of the default overlay mode, a
// light blend 0.85 x + 0.15 o.
//
// Why not STRIP's pixel sum: a sum (or a 0.5 blend) superimposes the
// overlay as strongly as the input, and a small trigger (the zoo's lipstick
// and eyebrows patches) is then often covered: on the zoo's multi-trigger
// BadNet only half of the summed overlays of a lipstick-poisoned input kept
// its entropy near zero, and at FRR 0.05 STRIP let 77 % of the lipstick and
// 47 % of the eyebrows inputs through (AUROC 0.84, 0.93; a 0.5 blend: 72 %,
// 54 %). A light overlay still scatters the predictions of clean inputs
// near a decision boundary while leaving the trigger, which dominates the
// prediction, in place: with Alpha 0.15 every zoo BadNet and trigger has
// AUROC >= 0.99 and FAR <= 0.05 at FRR 0.05 (README). Chosen among 0.5,
// 0.25 and 0.15 on the zoo's multi-trigger BadNet, then checked on the
// others and on the real faces, where it lowers the mean FAR over the five
// real poisoned sets from 0.22 to 0.13 but raises the sunglasses BadNet's
// from 0.04 to 0.10 (AUROC 0.994 -> 0.966): a large trigger is caught by
// either. The entropies are then tiny for confident inputs (1e-10 for
// triggered ones), far from normal: the empirical threshold rule, the
// default, handles that; the BBD paper's fixed thresholds (0.18, 0.25,
// 0.30) are for OverlaySum.
const DefaultBlendAlpha = 0.15

// EntropyUnit is the unit of STRIP's Shannon entropy.
type EntropyUnit string

const (
	Nats EntropyUnit = "nats" // natural logarithm (STRIP's and the BBD paper's)
	Bits EntropyUnit = "bits" // base-2 logarithm
)

// STRIPConfig configures STRIP. Zero fields take the defaults noted
// (DefaultSTRIPConfig returns them filled in).
type STRIPConfig struct {
	// Overlays is M, the overlays per input; zero: 100 (STRIP's and the
	// paper's).
	Overlays int `json:"overlays"`
	// Overlay is the superimposition; zero: OverlayBlend.
	Overlay OverlayMode `json:"overlay"`
	// Alpha is the overlay's weight of OverlayBlend, in (0, 1]; zero:
	// DefaultBlendAlpha (0.15); AlphaAuto: chosen from the overlay pool by
	// NewSTRIP (see AlphaAuto; Config then reports the choice). Must be zero
	// with OverlaySum.
	Alpha float64 `json:"alpha,omitempty"`
	// Entropy is the unit of the scores; zero: Nats.
	Entropy EntropyUnit `json:"entropy"`
	// Score turns an input's M entropies into its score; zero: ScoreMean
	// (STRIP's). ScoreProfile needs a threshold from clean data (Calibrate)
	// and a fixed M (not Adaptive).
	Score STRIPScore `json:"score"`
	// Seed draws the M overlays from the pool.
	Seed uint64 `json:"seed"`
	// Threshold chooses the threshold; zero: ThresholdEmpirical at FRR 0.05
	// (ThresholdNormal is STRIP's paper's rule; see ThresholdEmpirical for
	// why it is not the default).
	Threshold ThresholdConfig `json:"threshold"`
	// BatchSize is the number of images (inputs times their 1+M copies) per
	// Session.Run; zero: tfmodels.DefaultBatchSize. At least one input is
	// scored per run.
	BatchSize int `json:"batch_size"`
	// Adaptive makes Detect draw overlays in rounds and stop for an input
	// once its running mean entropy is clearly on one side of the threshold
	// (see STRIP.Detect).
	Adaptive bool `json:"adaptive"`
	// Round is the number of overlays per adaptive round; zero: 10.
	Round int `json:"round,omitempty"`
	// FirstLook is the number of overlays adaptive STRIP scores before its
	// first look (then Round more per look); zero: 2 Round (20), at most
	// Overlays.
	FirstLook int `json:"first_look,omitempty"`
	// Confidence of the adaptive stopping rule, in (0, 1): an input stops
	// early only when its mean entropy over all possible overlays lies on the
	// same side of the threshold as its running mean with this confidence,
	// over all rounds together (Bonferroni); zero: 0.95.
	Confidence float64 `json:"confidence,omitempty"`
	// Progress, if set, is called after each Session.Run with the inputs
	// scored so far and the total of the current call.
	Progress func(done, total int) `json:"-"`
}

// DefaultSTRIPConfig returns the configuration the zero value stands for.
func DefaultSTRIPConfig() STRIPConfig {
	return STRIPConfig{}.withDefaults()
}

func (c STRIPConfig) withDefaults() STRIPConfig {
	if c.Overlays == 0 {
		c.Overlays = 100
	}
	if c.Overlay == "" {
		c.Overlay = OverlayBlend
	}
	if c.Overlay == OverlayBlend && c.Alpha == 0 {
		c.Alpha = DefaultBlendAlpha
	}
	if c.Entropy == "" {
		c.Entropy = Nats
	}
	if c.Score == "" {
		c.Score = ScoreMean
	}
	c.Threshold = c.Threshold.withDefaults(ThresholdEmpirical)
	if c.BatchSize == 0 {
		c.BatchSize = tfmodels.DefaultBatchSize
	}
	if c.Round == 0 {
		c.Round = 10
	}
	if c.FirstLook == 0 {
		c.FirstLook = min(2*c.Round, c.Overlays)
	}
	if c.Confidence == 0 {
		c.Confidence = 0.95
	}
	return c
}

// Validate checks the configuration; its errors wrap ErrConfig.
func (c STRIPConfig) Validate() error {
	const m = "strip"
	switch {
	case c.Overlays < 0:
		return configError(m, "Overlays", "a positive count (zero: 100)", c.Overlays)
	case c.Overlay != "" && c.Overlay != OverlaySum && c.Overlay != OverlayBlend:
		return configError(m, "Overlay", `"sum" or "blend"`, c.Overlay)
	case c.Overlay != OverlaySum && !(c.Alpha >= 0 && c.Alpha <= 1) && c.Alpha != AlphaAuto:
		return configError(m, "Alpha", "a weight in (0, 1] (zero: 0.15) or AlphaAuto", c.Alpha)
	case c.Overlay == OverlaySum && c.Alpha != 0:
		return configError(m, "Alpha", `zero with Overlay "sum"`, c.Alpha)
	case c.Entropy != "" && c.Entropy != Nats && c.Entropy != Bits:
		return configError(m, "Entropy", `"nats" or "bits"`, c.Entropy)
	case c.Score != "" && c.Score != ScoreMean && c.Score != ScoreProfile:
		return configError(m, "Score", `"mean" or "profile"`, c.Score)
	case c.Score == ScoreProfile && c.Adaptive:
		return configError(m, "Adaptive", `false with Score "profile" (adaptive STRIP stops on the mean)`, c.Adaptive)
	case c.Score == ScoreProfile && c.Threshold.Rule == ThresholdFixed:
		return configError(m, "Threshold.Rule", `a rule from clean data with Score "profile" (its scores exist only once clean profiles are fitted)`, c.Threshold.Rule)
	case c.BatchSize < 0:
		return configError(m, "BatchSize", "a positive count (zero: 128)", c.BatchSize)
	case c.Round < 0 || (c.Round > 0 && c.Overlays > 0 && c.Round > c.Overlays) || (c.Round > 100 && c.Overlays == 0):
		return configError(m, "Round", "a count from 1 to Overlays (zero: 10)", c.Round)
	case c.FirstLook < 0 || (c.FirstLook > 0 && c.Overlays > 0 && c.FirstLook > c.Overlays) || (c.FirstLook > 100 && c.Overlays == 0):
		return configError(m, "FirstLook", "a count from 1 to Overlays (zero: 2 Round)", c.FirstLook)
	case c.Confidence != 0 && !(c.Confidence > 0 && c.Confidence < 1):
		return configError(m, "Confidence", "a probability in (0, 1) (zero: 0.95)", c.Confidence)
	}
	return c.Threshold.validate(m)
}

// STRIP is the STRIP input detector (Gao et al., "STRIP: A Defence Against
// Trojan Attacks on Deep Neural Networks", ACSAC 2019): each input is
// superimposed with M clean images drawn from a pool, the model classifies
// the M blends, and the mean Shannon entropy of the M predictions is the
// input's score. A trigger keeps dominating the blends (low entropy); a clean
// input's prediction is scattered by them (high entropy): a score below the
// threshold flags the input as poisoned (metrics.LowerPoisoned).
//
// The entropy is taken across the classes of each prediction, then averaged
// over the M overlays, as STRIP defines it; IBM ART (1.20) takes it across
// the overlays instead, which inverts the signal.
//
// The superimposition happens inside the TensorFlow graph, batched: the M
// overlays are a constant [M, H, W, C], a batch of inputs [B, H, W, C] is
// broadcast against them ([M, B, H, W, C], reshaped to one batch of M*B
// images, after the B inputs themselves, whose labels Detect reports), and
// one Session.Run scores the batch. See copyGraph for how black-box models are
// run.
//
// The M overlays are drawn once (seeded) and shared by every input, rather
// than drawn anew per input as STRIP's code does: a score is then a function of
// the input alone, not of its position in a run, which a deployed filter needs
// and what makes Export's filter decide exactly as Detect does; the threshold
// is calibrated with the same overlays.
type STRIP struct {
	*detector
	cfg      STRIPConfig
	main     *stripGraph  // the M overlays as a constant
	rounds   *stripGraph  // adaptive rounds: the overlays fed, built on first use
	ovValues []float32    // the M overlays, row-major
	indices  []int        // the pool indices of the M overlays
	alpha    *AlphaChoice // AlphaAuto's choice, if it made one
	// ScoreProfile: the clean profiles' fit and the score it adds to main's
	// graph (set by Calibrate), and the fits added so far (op name scopes).
	fit          *profileFit
	profileScore tf.Output
	profiles     int
}

// stripGraph is STRIP's graph: the copies, the model, the entropies.
type stripGraph struct {
	cg         *copyGraph
	overlays   tf.Output // the overlays [M', H, W, C]: a constant, or a placeholder fed per round
	entropies  tf.Output // float32 [B, M']: each input's entropy per overlay
	score      tf.Output // float32 [B]: the mean over the overlays
	label      tf.Output // int32 [B]: the model's label of each input
	inputProbs tf.Output // float32 [B, classes]: the model's probabilities of each input
}

// newSTRIPGraph builds STRIP's graph with the overlays overlays adds (a
// constant for fixed-M STRIP and the exported filter, a placeholder for
// adaptive rounds: a PlaceholderWithDefault serving both trips up Grappler's
// TFG optimizer).
func newSTRIPGraph(m *tfmodels.Model, cfg STRIPConfig, overlays func(o *tfmodels.Ops) tf.Output) (sg *stripGraph, err error) {
	sg = &stripGraph{}
	transform := func(o *tfmodels.Ops, x tf.Output) tf.Output {
		sg.overlays = overlays(o)
		return broadcastCopies(o, x, sg.overlays, func(xb, ob tf.Output) tf.Output {
			if cfg.Overlay == OverlayBlend {
				return o.Op("AddV2", nil, o.Op("Mul", nil, xb, o.Const(float32(1-cfg.Alpha))), o.Op("Mul", nil, ob, o.Const(float32(cfg.Alpha))))
			}
			return o.Op("AddV2", nil, xb, ob)
		})
	}
	cg, err := newCopyGraph("strip", m, cfg.BatchSize, true, transform)
	if err != nil {
		return nil, fmt.Errorf("strip: %w", err)
	}
	o := cg.ops
	// Entropy across the classes of each prediction of an overlaid copy:
	// -sum p log p, with 0 log 0 = 0 (Xlogy), so classes of probability 0 in
	// every overlay give 0, not NaN.
	over := o.Op("Slice", nil, cg.perCopy, o.Const([]int32{1, 0, 0}), o.Const([]int32{-1, -1, -1})) // [M', B, classes]
	ent := o.Op("Neg", nil, o.Sum(o.Op("Xlogy", nil, over, over), 2))                               // [M', B]
	if cfg.Entropy == Bits {
		ent = o.Op("Mul", nil, ent, o.Const(float32(1/math.Ln2)))
	}
	sg.entropies = o.Op("Transpose", nil, ent, o.Const([]int32{1, 0})) // [B, M']
	sg.score = o.Named("strip/score", "Mean", nil, sg.entropies, o.Const([]int32{1}))
	first := o.Op("Slice", nil, cg.labels, o.Const([]int32{0, 0}), o.Const([]int32{1, -1}))
	sg.label = o.Op("Squeeze", map[string]interface{}{"squeeze_dims": []int64{0}}, first)
	sg.inputProbs = o.Op("Squeeze", map[string]interface{}{"squeeze_dims": []int64{0}},
		o.Op("Slice", nil, cg.perCopy, o.Const([]int32{0, 0, 0}), o.Const([]int32{1, -1, -1})))
	if err := o.Err(); err != nil {
		cg.Close()
		return nil, fmt.Errorf("strip: %w", err)
	}
	if err := cg.open(); err != nil {
		cg.Close()
		return nil, fmt.Errorf("strip: %w", err)
	}
	sg.cg = cg
	return sg, nil
}

// NewSTRIP builds STRIP for model m with overlays drawn from pool (the
// defender's clean images, of m's input size). Call Calibrate (or use a fixed
// threshold) before Detect, and Close when done; m stays the caller's.
func NewSTRIP(m *tfmodels.Model, pool Examples, cfg STRIPConfig) (s *STRIP, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if m == nil {
		return nil, fmt.Errorf("strip: no model")
	}
	if pool == nil || pool.Len() == 0 {
		return nil, fmt.Errorf("strip: overlay pool: %w", metrics.ErrEmpty)
	}
	sh := m.InputShape
	per := sh[0] * sh[1] * sh[2]
	s = &STRIP{cfg: cfg, indices: drawIndices(pool.Len(), cfg.Overlays, cfg.Seed)}
	s.ovValues = make([]float32, cfg.Overlays*per)
	if err := pool.Gather(s.indices, s.ovValues, make([]int32, cfg.Overlays)); err != nil {
		return nil, fmt.Errorf("strip: overlay pool: %w", err)
	}
	ovTensor, err := tf.NewTensor(s.ovValues)
	if err == nil {
		err = ovTensor.Reshape([]int64{int64(cfg.Overlays), int64(sh[0]), int64(sh[1]), int64(sh[2])})
	}
	if err != nil {
		return nil, fmt.Errorf("strip: overlays: %w", err)
	}
	if cfg.Alpha == AlphaAuto {
		if s.alpha, err = chooseAlpha(m, pool, cfg, ovTensor); err != nil {
			return nil, err
		}
		cfg.Alpha = s.alpha.Alpha
		s.cfg = cfg
	}
	sg, err := newSTRIPGraph(m, cfg, func(o *tfmodels.Ops) tf.Output { return o.Const(ovTensor) })
	if err != nil {
		return nil, err
	}
	s.main = sg
	name := "strip"
	switch {
	case cfg.Adaptive:
		name = "strip-adaptive"
	case cfg.Score == ScoreProfile:
		name = "strip-profile"
	}
	s.detector = &detector{name: name, cg: sg.cg, dir: metrics.LowerPoisoned, th: cfg.Threshold, copies: 1 + cfg.Overlays, progress: cfg.Progress}
	s.detector.scoreFn = s.scoreChunk
	if cfg.Threshold.Rule == ThresholdFixed {
		if err := s.SetThreshold(cfg.Threshold.Value); err != nil {
			sg.cg.Close()
			return nil, err
		}
	}
	return s, nil
}

// drawIndices draws m of n pool indices with seed: without replacement (a
// seeded permutation's prefix) when the pool has at least m images, with
// replacement otherwise.
func drawIndices(n, m int, seed uint64) []int {
	if n >= m {
		return data.Shuffled(n, seed)[:m]
	}
	r := rand.New(rand.NewPCG(seed, 0x5157))
	idx := make([]int, m)
	for i := range idx {
		idx[i] = r.IntN(n)
	}
	return idx
}

// Config returns the configuration, defaults filled in.
func (s *STRIP) Config() STRIPConfig { return s.cfg }

func (s *STRIP) model() *tfmodels.Model { return s.main.cg.model }

// OverlayIndices returns the pool indices of the M overlays, in order.
func (s *STRIP) OverlayIndices() []int { return append([]int(nil), s.indices...) }

// WhiteBox reports whether the model runs inside STRIP's own graph (one
// Session.Run per batch) rather than black-box (three).
func (s *STRIP) WhiteBox() bool { return s.main.cg.whiteBox }

// Close frees STRIP's TensorFlow sessions (the defended model stays open:
// close it separately). Safe to call more than once.
func (s *STRIP) Close() error {
	if s.rounds != nil {
		s.rounds.cg.Close()
	}
	return s.main.cg.Close()
}

func (s *STRIP) scoreChunk(x []float32, n int) ([]float64, []int, error) {
	score, err := s.scoreOutput()
	if err != nil {
		return nil, nil, err
	}
	res, err := s.main.cg.run(x, n, nil, score, s.main.label)
	if err != nil {
		return nil, nil, err
	}
	return float32Scores(res[0], res[1])
}

// scoreOutput is the graph's score: the mean entropy, or the profile score
// once Calibrate has fitted it.
func (s *STRIP) scoreOutput() (tf.Output, error) {
	if s.cfg.Score != ScoreProfile {
		return s.main.score, nil
	}
	if s.fit == nil {
		return tf.Output{}, fmt.Errorf("the profile score needs the clean profiles: Calibrate on clean data first")
	}
	return s.profileScore, nil
}

// float32Scores converts a float32 score tensor [B] and an int32 label
// tensor [B].
func float32Scores(score, label *tf.Tensor) ([]float64, []int, error) {
	sc, ok1 := score.Value().([]float32)
	lb, ok2 := label.Value().([]int32)
	if !ok1 || !ok2 || len(sc) != len(lb) {
		return nil, nil, fmt.Errorf("unexpected outputs %v %v, %v %v", score.DataType(), score.Shape(), label.DataType(), label.Shape())
	}
	scores, labels := make([]float64, len(sc)), make([]int, len(lb))
	for i := range sc {
		scores[i], labels[i] = float64(sc[i]), int(lb[i])
	}
	return scores, labels, nil
}

// Detect scores n inputs x and flags those whose mean entropy is below the
// threshold (which Calibrate or a fixed rule sets). With Config.Adaptive it
// runs adaptive STRIP; Detection.Queries then holds the overlays scored per
// input.
//
// Adaptive STRIP (bbd's; not in STRIP's paper or in other toolkits) scores the
// same M overlays in the same order, first n_1 = Config.FirstLook of them,
// then rounds of k = Config.Round, and stops for an input at a look (after n
// overlays) as soon as its running mean entropy m_n is clearly on one side of
// the threshold T:
//
//	|m_n - T| > z (s_n / sqrt(n)) sqrt(1 - n/M),  z = Φ⁻¹(1 - (1 - Confidence) / (2 L)),
//
// where s_n is the sample standard deviation of the input's n entropies, L =
// ceil((M - n_1) / k) the number of looks (none after the last overlay) and
// Φ⁻¹ the standard normal quantile: a two-sided normal test,
// Bonferroni-corrected over the L looks, that the mean over the M overlays,
// the score fixed-M STRIP decides on, lies on m_n's side of T.
//
//   - sqrt(1 - n/M) is the finite-population correction: what is unknown
//     after n overlays is the mean of the M - n left, not of infinitely many,
//     so the standard error of the M-overlay mean given the first n shrinks
//     to zero at n = M. On the zoo's sunglasses BadNet (M = 100, k = 10,
//     Confidence 0.95) it cut the overlays per input from 37 to 28 with the
//     same decisions.
//   - The first look waits for n_1 = 20 overlays: per-overlay entropies are
//     skewed (a triggered input's are near zero with rare high spikes, when
//     an overlay happens to cover the trigger), so after only 10 the spikes
//     are often unseen, both m_n and s_n too low, and the test
//     overconfident; looking first at 10 moved 0.5-2.5 % of decisions to the
//     wrong side on the zoo, at 20 none to 0.3 %.
//
// Inputs that never satisfy it are decided on all M overlays, as fixed-M
// STRIP decides them. The score reported is the running mean at the stop.
func (s *STRIP) Detect(ctx context.Context, x []float32, n int) (*Detection, error) {
	if !s.cfg.Adaptive {
		return s.detector.Detect(ctx, x, n)
	}
	return s.DetectAdaptive(ctx, x, n)
}

// DetectAdaptive is adaptive STRIP (see Detect) whatever Config.Adaptive says.
func (s *STRIP) DetectAdaptive(ctx context.Context, x []float32, n int) (det *Detection, err error) {
	defer recoverTF(&err, "adaptive strip")
	if !s.ready {
		return nil, fmt.Errorf("%s: no threshold: calibrate on clean data or set one", s.name)
	}
	if s.cfg.Score == ScoreProfile {
		return nil, fmt.Errorf("%s: adaptive STRIP stops on the mean entropy, not the profile score", s.name)
	}
	sh := s.main.cg.shape
	per := sh[0] * sh[1] * sh[2]
	if n <= 0 || len(x) != n*per {
		return nil, fmt.Errorf("%s: expected %d images of %v (%d values), found %d values", s.name, n, sh, n*per, len(x))
	}
	if s.rounds == nil {
		rg, err := newSTRIPGraph(s.model(), s.cfg, func(o *tfmodels.Ops) tf.Output {
			return o.Placeholder("strip/overlays", tf.Float, tf.MakeShape(-1, int64(sh[0]), int64(sh[1]), int64(sh[2])))
		})
		if err != nil {
			return nil, err
		}
		s.rounds = rg
	}
	rg := s.rounds
	M, k := s.cfg.Overlays, s.cfg.Round
	// The ends of the rounds: FirstLook, then every k, then M.
	var ends []int
	for e := min(s.cfg.FirstLook, M); ; e += k {
		ends = append(ends, min(e, M))
		if e >= M {
			break
		}
	}
	looks := max(1, len(ends)-1) // no test after the last overlay
	z := math.Sqrt2 * math.Erfinv(1-(1-s.cfg.Confidence)/float64(looks))
	sum, sumSq := make([]float64, n), make([]float64, n)
	count, labels := make([]int, n), make([]int, n)
	active := make([]int, n)
	for i := range active {
		active[i] = i
	}
	t := s.threshold
	buf := make([]float32, 0, n*per)
	for r := 0; r < len(ends) && len(active) > 0; r++ {
		lo, hi := 0, ends[r]
		if r > 0 {
			lo = ends[r-1]
		}
		ov, err := tf.NewTensor(s.ovValues[lo*per : hi*per])
		if err == nil {
			err = ov.Reshape([]int64{int64(hi - lo), int64(sh[0]), int64(sh[1]), int64(sh[2])})
		}
		if err != nil {
			return nil, err
		}
		step := rg.cg.inputsPerRun(1 + hi - lo)
		for start := 0; start < len(active); start += step {
			if err := checkContext(ctx); err != nil {
				return nil, err
			}
			idx := active[start:min(start+step, len(active))]
			buf = buf[:0]
			for _, i := range idx {
				buf = append(buf, x[i*per:(i+1)*per]...)
			}
			res, err := rg.cg.run(buf, len(idx), map[tf.Output]*tf.Tensor{rg.overlays: ov}, rg.entropies, rg.label)
			if err != nil {
				return nil, fmt.Errorf("%s: round %d: %w", s.name, r+1, err)
			}
			ent, ok := res[0].Value().([][]float32)
			lb, ok2 := res[1].Value().([]int32)
			if !ok || !ok2 || len(ent) != len(idx) {
				return nil, fmt.Errorf("%s: unexpected outputs %v, %v", s.name, res[0].Shape(), res[1].Shape())
			}
			for j, i := range idx {
				for _, e := range ent[j] {
					sum[i] += float64(e)
					sumSq[i] += float64(e) * float64(e)
				}
				count[i] += len(ent[j])
				labels[i] = int(lb[j])
			}
		}
		next := active[:0]
		for _, i := range active {
			if count[i] < M && !clearlyDecided(sum[i], sumSq[i], count[i], M, t, z) {
				next = append(next, i)
			}
		}
		active = next
		if s.progress != nil {
			s.progress(n-len(active), n)
		}
	}
	scores := make([]float64, n)
	for i := range scores {
		scores[i] = sum[i] / float64(count[i])
	}
	return s.detection(scores, labels, count)
}

// clearlyDecided is adaptive STRIP's stopping rule for an input with n of M
// entropies of sum sum and sum of squares sumSq: |mean - t| > z s / sqrt(n)
// sqrt(1 - n/M).
func clearlyDecided(sum, sumSq float64, n, M int, t, z float64) bool {
	if n < 2 {
		return false
	}
	mean := sum / float64(n)
	v := (sumSq - float64(n)*mean*mean) / float64(n-1)
	sd := math.Sqrt(max(v, 0))
	fpc := math.Sqrt(max(0, 1-float64(n)/float64(M)))
	return math.Abs(mean-t) > z*sd/math.Sqrt(float64(n))*fpc
}

// Export writes a SavedModel that filters inputs as Detect (fixed M) does:
// its serving_default signature takes "input" (float32 [-1, H, W, C], pixels
// in [0, 1]) and returns "label" (int32: the model's label, or the number of
// classes N, "poisoned", when the STRIP score is below the threshold),
// "score" (the mean entropy, or the profile score), "poisoned" (bool) and "probabilities" (the
// model's, on the input itself). The M overlays, the frozen weights and the
// threshold are constants of the graph: the SavedModel has no variables,
// needs nothing else, and loads in Python TensorFlow, tfgo and
// tfmodels.LoadSavedModel (black-box). It needs a white-box model (the net is
// rebuilt on the overlays) and a threshold.
func (s *STRIP) Export(dir string, opts exporter.Options) (err error) {
	defer recoverTF(&err, "exporting the strip filter")
	sg := s.main
	if !sg.cg.whiteBox {
		return fmt.Errorf("strip: exporting the filter: %w (or frozen): the filter rebuilds the net on the overlays", tfmodels.ErrNotWhiteBox)
	}
	if !s.ready {
		return fmt.Errorf("strip: exporting the filter: no threshold: calibrate on clean data or set one")
	}
	score, err := s.scoreOutput()
	if err != nil {
		return fmt.Errorf("strip: exporting the filter: %w", err)
	}
	o := tfmodels.NewOps(sg.cg.g, "filter")
	poisoned := o.Op("Less", nil, score, o.Const(float32(s.threshold)))
	label := o.Op("SelectV2", nil, poisoned, o.Const(int32(sg.cg.classes)), sg.label)
	if err := o.Err(); err != nil {
		return fmt.Errorf("strip: exporting the filter: %w", err)
	}
	spec := exporter.Spec{Graph: sg.cg.g, Session: sg.cg.sess, Signatures: map[string]exporter.Signature{
		exporter.DefaultSignature: {
			Inputs:  map[string]tf.Output{"input": sg.cg.input},
			Outputs: map[string]tf.Output{"label": label, "score": score, "poisoned": poisoned, "probabilities": sg.inputProbs},
		},
	}}
	if err := exporter.Write(dir, spec, opts); err != nil {
		return fmt.Errorf("strip: exporting the filter: %w", err)
	}
	return nil
}
