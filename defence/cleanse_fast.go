package defence

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	tf "github.com/galeone/tensorflow/tensorflow/go"
)

// BudgetLog is how the fast budget spent its steps.
type BudgetLog struct {
	// ScreenSteps every label ran first.
	ScreenSteps int `json:"screen_steps"`
	// LastLayer lists the labels the data-free last-layer check flagged
	// ([LastLayer]), protected first (at most Protect).
	LastLayer []int `json:"last_layer_protected,omitempty"`
	// Logit is the forward-only pre-screen and the labels it protected
	// (besides LastLayer's, at most Protect in all).
	Logit *LogitScreen `json:"logit_screen,omitempty"`
	// Reference is the uniform sample of labels optimised to the end whatever
	// their screen, whose norms give the median and MAD.
	Reference []int `json:"reference"`
	// Rounds of successive halving.
	Rounds []BudgetRound `json:"rounds"`
	// LabelSteps spent in all, and what the plain scan would spend at most
	// (labels x MaxSteps; early stopping makes it less).
	LabelSteps    int `json:"label_steps"`
	PlainMaxSteps int `json:"plain_max_steps"`
}

// BudgetRound is one round: the labels kept, up to which step, and which of
// them were drawn at random among the dropped (exploration).
type BudgetRound struct {
	Until    int   `json:"until"`
	Kept     []int `json:"kept"`
	Explored []int `json:"explored"`
}

// fast is the fast budget (see CleanseConfig.Budget):
//
//  1. the labels flagged by the data-free last-layer check ([LastLayer]),
//     then the best of the logit screen (forward only, see [LogitScreen]),
//     at most Protect labels in all, are optimised to the end whatever
//     their step screen: a slow-converging target cannot be dropped when
//     either screen sees it;
//  2. a seeded uniform sample of Slots other labels (the reference) is
//     optimised to the end; the median and MAD of the outlier test come from
//     its norms, an unbiased estimate of the ordinary labels' distribution;
//  3. every other label runs ScreenSteps steps with the cost set from the
//     start (visualizer.py's early-detection mode), then is scored: labels
//     whose trigger reached the threshold by their best norm, before those
//     that did not, by attack success;
//  4. successive halving (Jamieson and Talwalkar 2016; K-Arm's bandit spends
//     its budget the same way, Shen et al. ICML 2021): each round keeps the
//     best quarter of the labels still running (at least KeepMin), a
//     fraction Explore of them drawn at random among the dropped
//     (epsilon-greedy, as K-Arm), and quadruples their steps, until MaxSteps
//     or early stopping.
//
// Labels dropped keep their best norm as an upper bound (Exact false): a
// label is flagged on its bound only when the bound itself is an outlier.
func (s *scanState) fast(labels []int) (*BudgetLog, error) {
	cfg := &s.cfg
	log := &BudgetLog{ScreenSteps: min(cfg.ScreenSteps, cfg.MaxSteps), PlainMaxSteps: len(labels) * cfg.MaxSteps}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x66617374))
	runs := make([]*labelRun, len(labels))
	for i, l := range labels {
		runs[i] = s.newRun(l, false)
		runs[i].until = log.ScreenSteps
	}
	isRef := map[int]bool{}
	var ref []*labelRun    // protected and reference: to the end
	protect := cfg.Protect // withDefaults: Slots when zero
	if s.lastLayer != nil {
		for _, l := range s.lastLayer.Flagged {
			if r := s.runs[l]; r != nil && len(log.LastLayer) < protect { // s.runs: the labels scanned
				log.LastLayer = append(log.LastLayer, l)
				r.protected = true
				ref = append(ref, r)
			}
		}
	}
	if !cfg.NoLogitScreen {
		s.phase = "logit screen"
		scores, ls, err := s.logitScreen(labels, rand.New(rand.NewPCG(cfg.Seed, 0x746f706b)))
		if err != nil {
			return nil, err
		}
		var cand []int
		for l, sc := range scores {
			if sc > 0 && !s.runs[l].protected {
				cand = append(cand, l)
			}
		}
		sort.Slice(cand, func(a, b int) bool {
			if scores[cand[a]] != scores[cand[b]] {
				return scores[cand[a]] > scores[cand[b]]
			}
			return cand[a] < cand[b]
		})
		cand = cand[:min(len(cand), protect-len(log.LastLayer))]
		for _, l := range cand {
			ls.Protected = append(ls.Protected, l)
			ls.Scores = append(ls.Scores, scores[l])
			s.runs[l].protected = true
			ref = append(ref, s.runs[l])
		}
		log.Logit = ls
	}
	var others []int
	for i, l := range labels {
		if !s.runs[l].protected {
			others = append(others, i)
		}
	}
	nRef := min(cfg.Slots, len(others))
	for _, j := range rng.Perm(len(others))[:nRef] {
		i := others[j]
		isRef[labels[i]] = true
		ref = append(ref, runs[i])
		log.Reference = append(log.Reference, labels[i])
	}
	slices.Sort(log.Reference)
	s.phase = "screen"
	s.planned = len(labels)*log.ScreenSteps + len(ref)*(cfg.MaxSteps-log.ScreenSteps)
	if err := s.advance(runs); err != nil {
		return nil, err
	}
	for _, r := range ref {
		r.until = cfg.MaxSteps
	}
	for _, r := range ref {
		isRef[r.label] = true // out of the halving pool (Reference keeps the sample only)
	}
	var pool []*labelRun
	for _, r := range runs {
		if !isRef[r.label] && !r.finished {
			pool = append(pool, r)
		}
	}
	for _, r := range ref {
		r.until = cfg.MaxSteps
	}
	const eta = 4
	until := log.ScreenSteps
	first := true
	for round := 1; len(pool) > 0 && until < cfg.MaxSteps; round++ {
		sortRuns(pool)
		keep := max(cfg.KeepMin, int(math.Ceil(float64(len(pool))/eta)))
		until = min(until*eta, cfg.MaxSteps)
		if keep >= len(pool) {
			keep = len(pool)
			until = cfg.MaxSteps
		}
		nExp := int(math.Round(cfg.Explore * float64(keep)))
		kept := slices.Clone(pool[:keep-nExp])
		dropped := slices.Clone(pool[keep-nExp:])
		var explored []int
		for _, j := range rng.Perm(len(dropped))[:nExp] {
			dropped[j].explore = true
			kept = append(kept, dropped[j])
			explored = append(explored, dropped[j].label)
		}
		br := BudgetRound{Until: until, Explored: explored}
		for _, r := range kept {
			r.until = until
			br.Kept = append(br.Kept, r.label)
		}
		slices.Sort(br.Kept)
		slices.Sort(br.Explored)
		log.Rounds = append(log.Rounds, br)
		work := kept
		if first {
			work = append(slices.Clone(ref), kept...)
			first = false
		}
		s.phase = "round"
		s.planned = s.spent + len(kept)*(until-log.ScreenSteps)
		if err := s.advance(work); err != nil {
			return nil, err
		}
		pool = pool[:0]
		for _, r := range kept {
			if !r.finished {
				pool = append(pool, r)
			}
		}
	}
	if first { // no round ran: the reference still has to finish
		if err := s.advance(ref); err != nil {
			return nil, err
		}
	}
	log.LabelSteps = s.spent
	return log, nil
}

// LogitScreen is the fast budget's forward-only pre-screen (after K-Arm's
// top-k logit screening, Shen et al. ICML 2021): the clean images, stamped
// with Patches random noise squares, are classified; a label's score is the
// fraction of stamped images whose TopK largest logits hold it (the image's
// own clean label not counted). A backdoor target rises among the top logits
// of images carrying a fraction of any trigger-like patch whatever how fast
// its trigger's optimisation converges, so the labels with the highest
// scores (at most Protect, score > 0) are optimised to the end.
type LogitScreen struct {
	TopK      int   `json:"top_k"`
	Patches   int   `json:"patches"`
	Protected []int `json:"protected"`
	// Scores of the protected labels, in their order.
	Scores  []float64 `json:"scores"`
	Seconds float64   `json:"seconds"`
}

// logitScreen runs the screen over labels and returns each label's score.
func (s *scanState) logitScreen(labels []int, rng *rand.Rand) (map[int]float64, *LogitScreen, error) {
	t0 := time.Now()
	cfg, cg := &s.cfg, s.cg
	ls := &LogitScreen{TopK: cfg.ScreenTopK, Patches: cfg.ScreenPatches}
	if ls.TopK == 0 {
		ls.TopK = max(2, min(10, cg.classes/20))
	}
	ls.TopK = min(ls.TopK, cg.classes)
	// Patch 0 is no patch: the clean images' own labels.
	n := ls.Patches + 1
	side := min(cg.h, cg.w)
	masks := make([]float32, n*s.maskSize)
	pats := make([]float32, n*s.patSize)
	for p := 1; p < n; p++ {
		sz := max(2, int(math.Round((0.1+0.15*rng.Float64())*float64(side))))
		y0, x0 := rng.IntN(cg.h-sz+1), rng.IntN(cg.w-sz+1)
		for y := y0; y < y0+sz; y++ {
			for x := x0; x < x0+sz; x++ {
				for ch := 0; ch < cg.cm; ch++ {
					masks[p*s.maskSize+(y*cg.w+x)*cg.cm+ch] = 1
				}
			}
		}
		for i := range s.patSize {
			pats[p*s.patSize+i] = rng.Float32()
		}
	}
	want := map[int]bool{}
	for _, l := range labels {
		want[l] = true
	}
	count := map[int]int{}
	own := make([]int32, s.nImages)
	kT, _ := tf.NewTensor(int32(ls.TopK))
	for start := 0; start < n; start += cg.k {
		if err := s.ctx.Err(); err != nil {
			return nil, nil, err
		}
		k := min(cg.k, n-start)
		mT, _ := tf.NewTensor(masks[start*s.maskSize : (start+k)*s.maskSize])
		pT, _ := tf.NewTensor(pats[start*s.patSize : (start+k)*s.patSize])
		if err := mT.Reshape([]int64{int64(k), int64(cg.h), int64(cg.w), int64(cg.cm)}); err != nil {
			return nil, nil, err
		}
		if err := pT.Reshape([]int64{int64(k), int64(cg.h), int64(cg.w), int64(cg.c)}); err != nil {
			return nil, nil, err
		}
		off := 0
		for j, x := range s.xs {
			b := s.sizes[j]
			res, err := cg.m.Session.Run(map[tf.Output]*tf.Tensor{cg.in: x, cg.evMask: mT, cg.evPat: pT, cg.evK: kT},
				[]tf.Output{cg.evTopK}, nil)
			if err != nil {
				return nil, nil, fmt.Errorf("cleanse: logit screen: %w", err)
			}
			top := res[0].Value().([][]int32)
			for p := 0; p < k; p++ {
				for i := 0; i < b; i++ {
					row := top[p*b+i]
					if start+p == 0 {
						own[off+i] = row[0]
						continue
					}
					for _, l := range row {
						if l != own[off+i] && want[int(l)] {
							count[int(l)]++
						}
					}
				}
			}
			off += b
		}
	}
	scores := map[int]float64{}
	for l, c := range count {
		scores[l] = float64(c) / float64(ls.Patches*s.nImages)
	}
	ls.Seconds = time.Since(t0).Seconds()
	return scores, ls, nil
}
