package defence

import (
	"context"
	"errors"
	"fmt"
	"math"

	tf "github.com/galeone/tensorflow/tensorflow/go"
	"gonum.org/v1/gonum/mat"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/metrics"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// STRIPScore says how STRIP turns an input's M entropies (one per overlay)
// into its score.
type STRIPScore string

const (
	// ScoreMean is STRIP's score: the mean entropy over the M overlays.
	ScoreMean STRIPScore = "mean"
	// ScoreProfile is bbd's entropy-profile score (not in STRIP's paper or
	// other toolkits). The M overlays are the same for every input, so an
	// input's M entropies form a profile, a vector whose k-th entry always
	// belongs to overlay k. Calibrate learns how clean inputs' profiles are
	// spread: the mean and covariance of their log-entropies, log(H + 1e-12),
	// with Ledoit-Wolf shrinkage (Ledoit and Wolf, "A well-conditioned
	// estimator for large-dimensional covariance matrices", J. Multivariate
	// Analysis 2004: no setting to tune). The score is minus the squared
	// Mahalanobis distance of the input's profile from them: low, an unusual
	// response to the overlays, means poisoned, as for the mean.
	//
	// Why: a trigger can survive most overlays but not some (those that
	// cover it), and then its mean entropy is as high as a clean input's
	// that every overlay moves a little. The mean cannot tell the two apart;
	// the pattern can. On the zoo's multi-trigger BadNet built on this
	// project's CPU, STRIP's mean let 13 % of the sunglasses-band inputs
	// through at FRR 0.05; their entropy came from a few T-shirt overlays.
	// The profile let 0.1 % through (README, "The entropy profile").
	//
	// Its cost: the threshold needs clean data (not a fixed value), at
	// least profileImagesPerOverlay (6) M calibration images to estimate an
	// M x M covariance, and its calibration scores are cross-fitted (each
	// image scored by a fit on the others, 5 folds), since a fit scores its
	// own images as more typical than new ones. With fewer clean images it
	// is worse than the mean: it worked with 6 and 10 images per overlay
	// (the reduced and full zoo, M = 100) and failed with 5 or fewer (the 50
	// real faces with M = 10, 25 or 100: AUROC 0.29 to 0.80 on the
	// sunglasses faces, where the mean gives 0.95 to 0.96). Adaptive STRIP
	// uses the mean only.
	ScoreProfile STRIPScore = "profile"
)

// profileEps keeps log(H + eps) finite for entropies that are exactly 0.
const profileEps = 1e-12

// profileImagesPerOverlay is the least number of clean calibration images
// per overlay that ScoreProfile accepts (see ScoreProfile).
const profileImagesPerOverlay = 6

// profileFolds is the number of folds of the profile's cross-fitted
// calibration scores.
const profileFolds = 5

// ErrTooFewClean says the clean calibration data are too few for the
// method.
var ErrTooFewClean = errors.New("too few clean images")

// profileFit is the clean profiles' mean and whitening matrix W = L⁻¹ (Σ =
// L Lᵀ), so that the squared Mahalanobis distance of d is |W (d - mean)|².
type profileFit struct {
	mean   []float64
	white  *mat.TriDense
	lambda float64 // the Ledoit-Wolf shrinkage
}

// fitProfile fits the profiles rows (n x M log-entropies).
func fitProfile(rows [][]float64) (*profileFit, error) {
	n, p := len(rows), len(rows[0])
	mean := make([]float64, p)
	for _, r := range rows {
		for j, v := range r {
			mean[j] += v
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	xc := mat.NewDense(n, p, nil)
	for i, r := range rows {
		for j, v := range r {
			xc.Set(i, j, v-mean[j])
		}
	}
	var s mat.SymDense
	s.SymOuterK(1/float64(n), xc.T())
	// Ledoit-Wolf: shrink S towards m I by lambda = min(b², d²) / d², with
	// d² = |S - m I|² / p and b² = (1/n²) sum_k |x_k x_kᵀ - S|² / p, using
	// |x xᵀ - S|² = |x|⁴ - 2 xᵀ S x + |S|² (Frobenius norms).
	m := mat.Trace(&s) / float64(p)
	var sNorm2, d2 float64
	for i := 0; i < p; i++ {
		for j := 0; j < p; j++ {
			v := s.At(i, j)
			sNorm2 += v * v
			if i == j {
				v -= m
			}
			d2 += v * v
		}
	}
	d2 /= float64(p)
	var b2 float64
	sx := make([]float64, p)
	for i := 0; i < n; i++ {
		x := xc.RawRowView(i)
		var xx, xsx float64
		for _, v := range x {
			xx += v * v
		}
		mat.NewVecDense(p, sx).MulVec(&s, mat.NewVecDense(p, x))
		for j, v := range x {
			xsx += v * sx[j]
		}
		b2 += xx*xx - 2*xsx + sNorm2
	}
	b2 /= float64(n) * float64(n) * float64(p)
	lambda := 1.0
	if d2 > 0 {
		lambda = min(b2, d2) / d2
	}
	if !(m > 0) || math.IsNaN(lambda) {
		return nil, fmt.Errorf("the clean entropy profiles do not vary (variance %v)", m)
	}
	sigma := mat.NewSymDense(p, nil)
	for i := 0; i < p; i++ {
		for j := i; j < p; j++ {
			v := (1 - lambda) * s.At(i, j)
			if i == j {
				v += lambda * m
			}
			sigma.SetSym(i, j, v)
		}
	}
	var chol mat.Cholesky
	if !chol.Factorize(sigma) {
		return nil, fmt.Errorf("the clean entropy profiles' covariance is singular")
	}
	var l, w mat.TriDense
	chol.LTo(&l)
	if err := w.InverseTri(&l); err != nil {
		return nil, fmt.Errorf("inverting the profiles' covariance: %w", err)
	}
	return &profileFit{mean: mean, white: &w, lambda: lambda}, nil
}

// score is minus the squared Mahalanobis distance of profile r.
func (f *profileFit) score(r []float64) float64 {
	p := len(f.mean)
	var d2 float64
	for i := 0; i < p; i++ {
		var z float64
		for j := 0; j <= i; j++ { // W is lower triangular
			z += f.white.At(i, j) * (r[j] - f.mean[j])
		}
		d2 += z * z
	}
	return -d2
}

// logProfile converts M entropies to the profile's log-entropies.
func logProfile(ent []float32) []float64 {
	r := make([]float64, len(ent))
	for i, e := range ent {
		// float32 as in the graph, so that Go and the graph agree.
		r[i] = float64(float32(math.Log(float64(float32(e + profileEps)))))
	}
	return r
}

// crossFitScores scores each profile with a fit on the other folds.
func crossFitScores(rows [][]float64, seed uint64) ([]float64, error) {
	n := len(rows)
	perm := data.Shuffled(n, seed)
	scores := make([]float64, n)
	for f := 0; f < profileFolds; f++ {
		var train, test []int
		for k, i := range perm {
			if k%profileFolds == f {
				test = append(test, i)
			} else {
				train = append(train, i)
			}
		}
		tr := make([][]float64, len(train))
		for k, i := range train {
			tr[k] = rows[i]
		}
		fit, err := fitProfile(tr)
		if err != nil {
			return nil, err
		}
		for _, i := range test {
			scores[i] = fit.score(rows[i])
		}
	}
	return scores, nil
}

// profileGraph adds the profile score of fit to STRIP's graph: -|W (log(H +
// eps) - mean)|², float32 [B], and returns it.
func (s *STRIP) profileGraph(fit *profileFit) (out tf.Output, err error) {
	defer recoverTF(&err, "strip profile")
	sg := s.main
	p := len(fit.mean)
	mean := make([]float32, p)
	for i, v := range fit.mean {
		mean[i] = float32(v)
	}
	w := make([][]float32, p) // Wᵀ, so that a row profile d gives d Wᵀ = (W d)ᵀ
	for i := range w {
		w[i] = make([]float32, p)
		for j := range w[i] {
			w[i][j] = float32(fit.white.At(j, i))
		}
	}
	s.profiles++
	o := tfmodels.NewOps(sg.cg.g, fmt.Sprintf("strip_profile_%d", s.profiles))
	logs := o.Op("Log", nil, o.Op("AddV2", nil, sg.entropies, o.Const(float32(profileEps))))
	z := o.Op("MatMul", nil, o.Op("Sub", nil, logs, o.Const(mean)), o.Const(w))
	out = o.Op("Neg", nil, o.Sum(o.Op("Square", nil, z), 1))
	if err := o.Err(); err != nil {
		return tf.Output{}, err
	}
	return out, nil
}

// Profiles returns the M entropies of each clean example's overlaid copies,
// in overlay order (the data of ScoreProfile).
func (s *STRIP) Profiles(ctx context.Context, ex Examples) ([][]float32, error) {
	n := ex.Len()
	if n == 0 {
		return nil, fmt.Errorf("%s: no examples: %w", s.name, metrics.ErrEmpty)
	}
	sh := s.main.cg.shape
	per := sh[0] * sh[1] * sh[2]
	step := s.main.cg.inputsPerRun(s.copies)
	out := make([][]float32, 0, n)
	for start := 0; start < n; start += step {
		if err := checkContext(ctx); err != nil {
			return nil, err
		}
		end := min(start+step, n)
		x, err := gather(ex, start, end, per)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		res, err := s.main.cg.run(x, end-start, nil, s.main.entropies)
		if err != nil {
			return nil, fmt.Errorf("%s: inputs %d..%d: %w", s.name, start, end-1, err)
		}
		ent, ok := res[0].Value().([][]float32)
		if !ok || len(ent) != end-start {
			return nil, fmt.Errorf("%s: unexpected entropies %v", s.name, res[0].Shape())
		}
		out = append(out, ent...)
		if s.progress != nil {
			s.progress(end, n)
		}
	}
	return out, nil
}

// Calibrate sets the threshold by the configured rule from the defender's
// clean examples and returns their scores (nil for a fixed rule). With
// ScoreProfile it first fits the clean profiles (all of clean) and returns
// cross-fitted scores, from which the threshold is chosen.
func (s *STRIP) Calibrate(ctx context.Context, clean Examples) ([]float64, error) {
	if s.cfg.Score != ScoreProfile {
		return s.detector.Calibrate(ctx, clean)
	}
	if need := profileImagesPerOverlay * s.cfg.Overlays; clean.Len() < need {
		return nil, fmt.Errorf("%s: clean calibration data: %w: the profile score needs at least %d M = %d images to estimate its covariance, found %d",
			s.name, ErrTooFewClean, profileImagesPerOverlay, need, clean.Len())
	}
	ents, err := s.Profiles(ctx, clean)
	if err != nil {
		return nil, err
	}
	rows := make([][]float64, len(ents))
	for i, e := range ents {
		rows[i] = logProfile(e)
	}
	scores, err := crossFitScores(rows, s.cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	fit, err := fitProfile(rows)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	out, err := s.profileGraph(fit)
	if err != nil {
		return nil, err
	}
	s.fit, s.profileScore = fit, out
	return scores, s.CalibrateScores(scores)
}

// ProfileShrinkage returns the Ledoit-Wolf shrinkage of the fitted clean
// profiles' covariance (0: none, 1: all), and false before a ScoreProfile
// Calibrate.
func (s *STRIP) ProfileShrinkage() (float64, bool) {
	if s.fit == nil {
		return 0, false
	}
	return s.fit.lambda, true
}
