package defence

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	tf "github.com/galeone/tensorflow/tensorflow/go"

	"github.com/bbd-workbench/bbd/tfmodels"
)

// Cleanse is the Neural Cleanse scanner (a [Scanner]).
type Cleanse struct {
	Config CleanseConfig
}

// NewCleanse checks cfg and returns the scanner.
func NewCleanse(cfg CleanseConfig) (*Cleanse, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Cleanse{Config: cfg}, nil
}

// Name is "neural-cleanse".
func (c *Cleanse) Name() string { return "neural-cleanse" }

// Scan runs the scan and returns its per-label findings (Score: the mask's
// L1 norm).
func (c *Cleanse) Scan(ctx context.Context, m *tfmodels.Model, clean Examples) (*ScanReport, error) {
	r, err := c.Run(ctx, m, clean)
	if err != nil {
		return nil, err
	}
	return r.ScanReport(), nil
}

// labelRun is one label's optimisation: its schedule, Adam step, the best
// trigger so far and, while paused, its raw state.
type labelRun struct {
	label     int
	steps     int
	adamT     int
	sched     costSchedule
	seconds   float64
	until     int // steps to reach before pausing
	finished  bool
	explore   bool // drawn at random (fast budget)
	protected bool // picked by the logit screen (fast budget)
	// last step's figures
	lastAcc, lastReg float64
	// the kept trigger (squashed): the best, or the last when none succeeded
	bestMask, bestPat []float32
	bestStep          int
	lastMask, lastPat []float32
	// raw state while out of a slot: mask, pattern, their Adam m and v
	state [][]float32
}

// reached reports whether some step reached the attack success threshold.
func (r *labelRun) reached() bool { return r.bestMask != nil }

// score orders labels for the fast budget: reached ones by their best norm,
// then the others by how far their attack success is from reaching.
func (r *labelRun) score() float64 {
	if r.reached() {
		return r.sched.regBest
	}
	return 1e12 * (2 - r.lastAcc)
}

// scanState is a running scan.
type scanState struct {
	ctx      context.Context
	cfg      CleanseConfig
	cg       *cleanseGraph
	xs       []*tf.Tensor // the step's mini-batches
	sizes    []int
	nImages  int
	slots    []*labelRun // occupied slots, in order
	start    time.Time
	done     int
	total    int
	spent    int
	planned  int
	phase    string
	runs     map[int]*labelRun
	maskSize int
	patSize  int
	salt     uint64 // second initialisations (Confirm)
	// lastLayer is the data-free check of the output layer (nil if not dense).
	lastLayer *LastLayerReport
}

// Run scans the model's labels (white-box models only) with clean images
// and returns the full report.
func (c *Cleanse) Run(ctx context.Context, m *tfmodels.Model, clean Examples) (rep *CleanseReport, err error) {
	if err := c.Config.Validate(); err != nil {
		return nil, err
	}
	cfg := c.Config.withDefaults()
	if m == nil || m.Arch == nil {
		return nil, fmt.Errorf("cleanse: %w", tfmodels.ErrNotWhiteBox)
	}
	weights, err := m.GetWeights()
	if err != nil {
		return nil, fmt.Errorf("cleanse: reading the model's weights: %w", err)
	}
	labels := cfg.Labels
	if labels == nil {
		for l := 0; l < m.NumClasses; l++ {
			labels = append(labels, l)
		}
	}
	labels = slices.Clone(labels)
	slices.Sort(labels)
	for _, l := range labels {
		if l >= m.NumClasses {
			return nil, configError("cleanse", "Labels", fmt.Sprintf("labels below %d (the model's classes)", m.NumClasses), l)
		}
	}
	if clean == nil || clean.Len() == 0 {
		return nil, errors.New("cleanse: no clean images")
	}
	s := &scanState{ctx: ctx, cfg: cfg, start: time.Now(), total: len(labels), runs: map[int]*labelRun{}}
	if err := s.loadImages(clean, m.InputShape); err != nil {
		return nil, err
	}
	k := min(cfg.Slots, len(labels))
	s.cg, err = newCleanseGraph(m.Arch, weights, k, cfg.Mask3D, &cfg)
	if err != nil {
		return nil, fmt.Errorf("cleanse: building the graph: %w", err)
	}
	defer s.cg.Close()
	s.maskSize = s.cg.h * s.cg.w * s.cg.cm
	s.patSize = s.cg.h * s.cg.w * s.cg.c
	// The data-free last-layer check: milliseconds; the fast budget
	// protects its flags. A model whose output is not a dense layer is
	// scanned without it.
	s.lastLayer, _ = lastLayerOf(m.Arch.Output, weights, LastLayerConfig{})

	var budget *BudgetLog
	switch cfg.Budget {
	case BudgetFast:
		budget, err = s.fast(labels)
	default:
		s.phase = "optimise"
		s.planned = len(labels) * cfg.MaxSteps
		runs := make([]*labelRun, len(labels))
		for i, l := range labels {
			runs[i] = s.newRun(l, true)
			runs[i].until = cfg.MaxSteps
		}
		err = s.advance(runs)
	}
	if err != nil {
		return nil, err
	}
	s.phase = "verify"
	all := make([]*labelRun, 0, len(labels))
	for _, l := range labels {
		all = append(all, s.runs[l])
	}
	succ, err := s.verify(all)
	if err != nil {
		return nil, err
	}
	rep = &CleanseReport{Method: c.Name(), Config: cfg, Classes: m.NumClasses, Images: s.nImages,
		InputShape: [3]int{s.cg.h, s.cg.w, s.cg.c}, MaskChannels: s.cg.cm, Budget: budget, LastLayer: s.lastLayer}
	for i, r := range all {
		lr := CleanseLabel{Label: r.label, AttackSuccess: succ[i], Exact: r.finished, Steps: r.steps, Seconds: r.seconds,
			Reached: r.reached(), Explored: r.explore, Protected: r.protected}
		lr.Mask, lr.Pattern = r.bestMask, r.bestPat
		if lr.Mask == nil {
			lr.Mask, lr.Pattern = r.lastMask, r.lastPat
		}
		lr.L1 = maskNorm(lr.Mask, s.cg.cm)
		rep.Labels = append(rep.Labels, lr)
	}
	if budget != nil {
		rep.Reference = slices.Clone(budget.Reference)
	}
	rep.Detect()
	if cfg.Confirm && len(rep.Flagged) > 0 {
		if err := s.confirm(rep); err != nil {
			return nil, err
		}
		rep.Detect()
	}
	rep.Seconds = time.Since(s.start).Seconds()
	return rep, nil
}

// confirm settles the flags with a second initialisation: every flagged
// label (of the configured rule or the original one) is optimised again
// from other random masks and patterns, with the full schedule to early
// stopping or MaxSteps, and keeps the larger of its two norms (and that
// run's trigger). A backdoor target has a small trigger whatever the start;
// an ordinary label that found a small one by chance rarely does twice.
func (s *scanState) confirm(rep *CleanseReport) error {
	s.phase = "confirm"
	s.salt = 1
	labels := slices.Clone(rep.Flagged)
	for _, l := range rep.Original.Flagged {
		if !slices.Contains(labels, l) {
			labels = append(labels, l)
		}
	}
	var runs []*labelRun
	for _, l := range labels {
		r := s.newRun(l, true)
		r.until = s.cfg.MaxSteps
		runs = append(runs, r)
	}
	s.planned = s.spent + len(runs)*s.cfg.MaxSteps
	if err := s.advance(runs); err != nil {
		return err
	}
	succ, err := s.verify(runs)
	if err != nil {
		return err
	}
	for i, r := range runs {
		lr, _ := rep.Label(r.label)
		mask, pat := r.bestMask, r.bestPat
		if mask == nil {
			mask, pat = r.lastMask, r.lastPat
		}
		l1 := maskNorm(mask, s.cg.cm)
		lr.FirstL1, lr.ConfirmL1 = lr.L1, l1
		lr.Steps += r.steps
		lr.Seconds += r.seconds
		if l1 > lr.L1 {
			lr.L1, lr.Mask, lr.Pattern, lr.AttackSuccess, lr.Reached = l1, mask, pat, succ[i], r.reached()
		}
	}
	return nil
}

// maskNorm is |m|_1 divided by the mask's channels (the original's
// regulariser: the 2-D mask's norm).
func maskNorm(m []float32, cm int) float64 {
	var s float64
	for _, v := range m {
		s += math.Abs(float64(v))
	}
	return s / float64(cm)
}

// loadImages gathers at most StepImages clean images in one seeded order and
// cuts them into mini-batch tensors.
func (s *scanState) loadImages(clean Examples, shape [3]int) error {
	n := clean.Len()
	use := s.cfg.StepImages
	if use == 0 {
		use = 1000
	}
	use = min(use, n)
	rng := rand.New(rand.NewPCG(s.cfg.Seed, 0x636c65616e7365))
	idx := rng.Perm(n)[:use]
	per := shape[0] * shape[1] * shape[2]
	x := make([]float32, use*per)
	lab := make([]int32, use)
	if err := clean.Gather(idx, x, lab); err != nil {
		return fmt.Errorf("cleanse: reading the clean images: %w", err)
	}
	s.nImages = use
	for start := 0; start < use; start += s.cfg.BatchSize {
		b := min(s.cfg.BatchSize, use-start)
		t, err := tf.NewTensor(x[start*per : (start+b)*per])
		if err != nil {
			return err
		}
		if err := t.Reshape([]int64{int64(b), int64(shape[0]), int64(shape[1]), int64(shape[2])}); err != nil {
			return err
		}
		s.xs = append(s.xs, t)
		s.sizes = append(s.sizes, b)
	}
	return nil
}

// newRun starts a label: random mask and pattern from (Seed, label).
func (s *scanState) newRun(label int, resetCost bool) *labelRun {
	r := &labelRun{label: label, sched: newCostSchedule(&s.cfg, resetCost)}
	rng := rand.New(rand.NewPCG(s.cfg.Seed, uint64(label)^s.salt<<40))
	eps := s.cfg.Epsilon
	mask := make([]float32, s.maskSize)
	for i := range mask {
		mask[i] = unsquash(rng.Float64(), eps)
	}
	pat := make([]float32, s.patSize)
	for i := range pat {
		pat[i] = unsquash(rng.Float64(), eps)
	}
	r.state = [][]float32{mask, pat, make([]float32, s.maskSize), make([]float32, s.maskSize), make([]float32, s.patSize), make([]float32, s.patSize)}
	s.runs[label] = r
	return r
}

// vars lists the slot variables in the order of labelRun.state.
func (s *scanState) vars() []*tfmodels.Variable {
	cg := s.cg
	return []*tfmodels.Variable{cg.maskRaw, cg.patRaw, cg.slotsVar[0], cg.slotsVar[1], cg.slotsVar[2], cg.slotsVar[3]}
}

// reslot puts next in the slots (in order): runs leaving keep their raw
// state (and their last trigger), runs entering bring theirs.
func (s *scanState) reslot(next []*labelRun) error {
	vars := s.vars()
	vals := make([][]float32, len(vars))
	for i, v := range vars {
		var err error
		if vals[i], err = s.cg.m.VariableValue(v); err != nil {
			return err
		}
	}
	sizes := []int{s.maskSize, s.patSize, s.maskSize, s.maskSize, s.patSize, s.patSize}
	pos := map[*labelRun]int{}
	for i, r := range s.slots {
		pos[r] = i
	}
	stays := map[*labelRun]bool{}
	for _, r := range next {
		stays[r] = true
	}
	for i, r := range s.slots {
		if stays[r] {
			continue
		}
		r.state = make([][]float32, len(vars))
		for j := range vars {
			r.state[j] = slices.Clone(vals[j][i*sizes[j] : (i+1)*sizes[j]])
		}
		s.keepLast(r, r.state[0], r.state[1])
		if r.finished {
			r.state = nil
		}
	}
	nv := make([][]float32, len(vars))
	for j := range vars {
		nv[j] = make([]float32, len(vals[j]))
	}
	for i, r := range next {
		for j := range vars {
			dst := nv[j][i*sizes[j] : (i+1)*sizes[j]]
			if p, ok := pos[r]; ok {
				copy(dst, vals[j][p*sizes[j]:(p+1)*sizes[j]])
			} else {
				copy(dst, r.state[j])
			}
		}
		r.state = nil
	}
	for j, v := range vars {
		if err := s.cg.m.AssignVariable(v, nv[j]); err != nil {
			return err
		}
	}
	s.slots = next
	return nil
}

// keepLast records the squashed trigger of raw state (for labels that never
// reach the threshold, the original keeps the last one).
func (s *scanState) keepLast(r *labelRun, mask, pat []float32) {
	eps := s.cfg.Epsilon
	r.lastMask = make([]float32, len(mask))
	for i, v := range mask {
		r.lastMask[i] = squash(v, eps)
	}
	r.lastPat = make([]float32, len(pat))
	for i, v := range pat {
		r.lastPat[i] = squash(v, eps)
	}
}

// advance optimises runs until each is finished or reaches its until step,
// filling the slots from the queue in order as they free.
func (s *scanState) advance(runs []*labelRun) error {
	queue := slices.Clone(runs)
	for len(queue) > 0 || len(s.slots) > 0 {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		// Refill the slots.
		var next []*labelRun
		changed := false
		for _, r := range s.slots {
			if r.finished || r.steps >= r.until {
				changed = true
				continue
			}
			next = append(next, r)
		}
		for len(next) < s.cg.k && len(queue) > 0 {
			r := queue[0]
			queue = queue[1:]
			if r.finished || r.steps >= r.until {
				continue
			}
			next = append(next, r)
			changed = true
		}
		if changed {
			if err := s.reslot(next); err != nil {
				return err
			}
		}
		if len(s.slots) == 0 {
			continue
		}
		if err := s.step(); err != nil {
			return err
		}
	}
	return nil
}

// step runs one step (one pass over the images) of every occupied slot and
// updates their schedules.
func (s *scanState) step() error {
	cg, cfg := s.cg, &s.cfg
	k := len(s.slots)
	t0 := time.Now()
	hits := make([]float64, k)
	regs := make([]float64, k)
	costs := make([]float32, k)
	for i, r := range s.slots {
		costs[i] = float32(r.sched.cost)
	}
	costT, err := tf.NewTensor(costs)
	if err != nil {
		return err
	}
	activeT, _ := tf.NewTensor([]int32{int32(k), -1, -1, -1})
	for j, x := range s.xs {
		b := s.sizes[j]
		lab := make([]int32, k*b)
		for i, r := range s.slots {
			for n := 0; n < b; n++ {
				lab[i*b+n] = int32(r.label)
			}
		}
		lrt := make([]float32, cg.k)
		for i, r := range s.slots {
			t := float64(r.adamT + 1)
			lrt[i] = float32(cfg.LearningRate * math.Sqrt(1-math.Pow(cfg.Beta2, t)) / (1 - math.Pow(cfg.Beta1, t)))
		}
		labT, _ := tf.NewTensor(lab)
		lrtT, _ := tf.NewTensor(lrt)
		shapeT, _ := tf.NewTensor([]int32{int32(k), int32(b)})
		res, err := cg.m.Session.Run(map[tf.Output]*tf.Tensor{
			cg.in: x, cg.active: activeT, cg.batchShape: shapeT, cg.labels: labT, cg.costs: costT, cg.lrt: lrtT,
		}, []tf.Output{cg.hits, cg.reg}, []*tf.Operation{cg.train})
		if err != nil {
			return fmt.Errorf("cleanse: step: %w", err)
		}
		h, rg := res[0].Value().([]float32), res[1].Value().([]float32)
		for i, r := range s.slots {
			hits[i] += float64(h[i])
			regs[i] += float64(rg[i])
			r.adamT++
		}
	}
	dt := time.Since(t0).Seconds() / float64(k)
	var best []int
	for i, r := range s.slots {
		r.seconds += dt
		r.steps++
		s.spent++
		acc, reg := hits[i]/float64(s.nImages), regs[i]/float64(len(s.xs))
		r.lastAcc, r.lastReg = acc, reg
		if r.sched.update(acc, reg) {
			best = append(best, i)
		}
		if r.sched.stopped || r.steps >= cfg.MaxSteps {
			r.finished = true
			s.done++
		}
	}
	if len(best) > 0 {
		mv, err := cg.m.VariableValue(cg.maskRaw)
		if err != nil {
			return err
		}
		pv, err := cg.m.VariableValue(cg.patRaw)
		if err != nil {
			return err
		}
		for _, i := range best {
			r := s.slots[i]
			r.bestMask = make([]float32, s.maskSize)
			for n, v := range mv[i*s.maskSize : (i+1)*s.maskSize] {
				r.bestMask[n] = squash(v, cfg.Epsilon)
			}
			r.bestPat = make([]float32, s.patSize)
			for n, v := range pv[i*s.patSize : (i+1)*s.patSize] {
				r.bestPat[n] = squash(v, cfg.Epsilon)
			}
			r.bestStep = r.steps
		}
	}
	if cfg.Progress != nil {
		p := CleanseProgress{Phase: s.phase, LabelsDone: s.done, Labels: s.total, StepsDone: s.spent,
			StepsPlanned: max(s.planned, s.spent), Best: -1, Elapsed: time.Since(s.start)}
		for _, r := range s.runs {
			if r.reached() && (p.Best < 0 || r.sched.regBest < p.BestL1) {
				p.Best, p.BestL1 = r.label, r.sched.regBest
			}
		}
		cfg.Progress(p)
	}
	return nil
}

// verify measures the attack success of every run's kept trigger (or its
// last one) on the step images, K labels at a time, with the evaluation net.
func (s *scanState) verify(runs []*labelRun) ([]float64, error) {
	// Runs still in slots hand their state over first.
	if len(s.slots) > 0 {
		if err := s.reslot(nil); err != nil {
			return nil, err
		}
	}
	cg := s.cg
	out := make([]float64, len(runs))
	for start := 0; start < len(runs); start += cg.k {
		if err := s.ctx.Err(); err != nil {
			return nil, err
		}
		chunk := runs[start:min(start+cg.k, len(runs))]
		k := len(chunk)
		masks := make([]float32, 0, k*s.maskSize)
		pats := make([]float32, 0, k*s.patSize)
		for _, r := range chunk {
			m, p := r.bestMask, r.bestPat
			if m == nil {
				m, p = r.lastMask, r.lastPat
			}
			masks = append(masks, m...)
			pats = append(pats, p...)
		}
		mT, err := tf.NewTensor(masks)
		if err != nil {
			return nil, err
		}
		pT, _ := tf.NewTensor(pats)
		if err := mT.Reshape([]int64{int64(k), int64(cg.h), int64(cg.w), int64(cg.cm)}); err != nil {
			return nil, err
		}
		if err := pT.Reshape([]int64{int64(k), int64(cg.h), int64(cg.w), int64(cg.c)}); err != nil {
			return nil, err
		}
		for j, x := range s.xs {
			b := s.sizes[j]
			lab := make([]int32, k*b)
			for i, r := range chunk {
				for n := 0; n < b; n++ {
					lab[i*b+n] = int32(r.label)
				}
			}
			labT, _ := tf.NewTensor(lab)
			shapeT, _ := tf.NewTensor([]int32{int32(k), int32(b)})
			res, err := cg.m.Session.Run(map[tf.Output]*tf.Tensor{cg.in: x, cg.evMask: mT, cg.evPat: pT, cg.evShape: shapeT, cg.evLabel: labT},
				[]tf.Output{cg.evHits}, nil)
			if err != nil {
				return nil, fmt.Errorf("cleanse: verifying: %w", err)
			}
			for i, h := range res[0].Value().([]float32) {
				out[start+i] += float64(h)
			}
		}
	}
	for i := range out {
		out[i] /= float64(s.nImages)
	}
	return out, nil
}

// sortRuns orders runs by score, ties by label.
func sortRuns(runs []*labelRun) {
	sort.SliceStable(runs, func(a, b int) bool {
		sa, sb := runs[a].score(), runs[b].score()
		if sa != sb {
			return sa < sb
		}
		return runs[a].label < runs[b].label
	})
}
