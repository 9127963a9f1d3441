package defence

import (
	"math"
	"math/rand/v2"
	"slices"
)

// BudgetLog is how the fast budget spent its steps.
type BudgetLog struct {
	// ScreenSteps every label ran first.
	ScreenSteps int `json:"screen_steps"`
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
//  1. a seeded uniform sample of Slots labels (the reference) is optimised
//     to the end; the median and MAD of the outlier test come from its
//     norms, an unbiased estimate of the ordinary labels' distribution;
//  2. every other label runs ScreenSteps steps with the cost set from the
//     start (visualizer.py's early-detection mode), then is scored: labels
//     whose trigger reached the threshold by their best norm, before those
//     that did not, by attack success;
//  3. successive halving (Jamieson and Talwalkar 2016; K-Arm's bandit spends
//     its budget the same way, Shen et al. ICML 2021): each round keeps the
//     best third of the labels still running (at least KeepMin), a fraction
//     Explore of them drawn at random among the dropped (epsilon-greedy, as
//     K-Arm), and triples their steps, until MaxSteps or early stopping.
//
// Labels dropped keep their best norm as an upper bound (Exact false): a
// label is flagged on its bound only when the bound itself is an outlier.
func (s *scanState) fast(labels []int) (*BudgetLog, error) {
	cfg := &s.cfg
	log := &BudgetLog{ScreenSteps: min(cfg.ScreenSteps, cfg.MaxSteps), PlainMaxSteps: len(labels) * cfg.MaxSteps}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x66617374))
	nRef := min(cfg.Slots, len(labels))
	refIdx := rng.Perm(len(labels))[:nRef]
	isRef := map[int]bool{}
	var ref []*labelRun
	runs := make([]*labelRun, len(labels))
	for i, l := range labels {
		runs[i] = s.newRun(l, false)
		runs[i].until = log.ScreenSteps
	}
	for _, i := range refIdx {
		isRef[labels[i]] = true
		ref = append(ref, runs[i])
		log.Reference = append(log.Reference, labels[i])
	}
	slices.Sort(log.Reference)
	s.phase = "screen"
	s.planned = len(labels)*log.ScreenSteps + nRef*(cfg.MaxSteps-log.ScreenSteps)
	if err := s.advance(runs); err != nil {
		return nil, err
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
	const eta = 3
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
