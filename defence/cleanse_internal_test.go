package defence

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// TestCostScheduleRisesAfterFalling: the cost goes down after Patience
// failed steps and up again after Patience successful ones (IBM ART's Neural
// Cleanse resets it so that it never rises again; visualizer.py does not).
func TestCostScheduleRisesAfterFalling(t *testing.T) {
	cfg := DefaultCleanseConfig(PresetOriginal).withDefaults()
	cfg.NoEarlyStop = true
	s := newCostSchedule(&cfg, true)
	if s.cost != 0 {
		t.Fatalf("initial cost %g, want 0 (reset to zero)", s.cost)
	}
	// Patience successful steps set the cost to InitCost...
	for i := 0; i < cfg.Patience; i++ {
		s.update(1, 100-float64(i))
	}
	if s.cost != cfg.InitCost {
		t.Fatalf("after %d successful steps the cost is %g, want %g", cfg.Patience, s.cost, cfg.InitCost)
	}
	// ...Patience more raise it by the multiplier...
	for i := 0; i < cfg.Patience; i++ {
		s.update(1, 90)
	}
	up := cfg.InitCost * cfg.CostMultiplier
	if math.Abs(s.cost-up) > 1e-15 || !s.upFlag {
		t.Fatalf("cost %g, want %g after successes", s.cost, up)
	}
	// ...Patience failures lower it by multiplier^1.5...
	for i := 0; i < cfg.Patience; i++ {
		s.update(0.5, 80)
	}
	down := up / math.Pow(cfg.CostMultiplier, 1.5)
	if math.Abs(s.cost-down) > 1e-15 || !s.downFlag {
		t.Fatalf("cost %g, want %g after failures", s.cost, down)
	}
	// ...and it rises again after successes.
	for i := 0; i < cfg.Patience; i++ {
		s.update(1, 70)
	}
	if want := down * cfg.CostMultiplier; math.Abs(s.cost-want) > 1e-15 {
		t.Fatalf("cost %g after coming down then succeeding, want %g: the cost must be able to rise again", s.cost, want)
	}
	// The best norm only counts successful steps.
	if s.regBest != 70 {
		t.Errorf("best norm %g, want 70 (the failing steps' 80 does not count)", s.regBest)
	}
}

// TestCostScheduleEarlyStop: once the cost went up and down, a label stops
// when its best norm has not improved by 1% for EarlyStopPatience steps, and
// never while it keeps improving.
func TestCostScheduleEarlyStop(t *testing.T) {
	cfg := CleanseConfig{Patience: 2}.withDefaults()
	run := func(next func(i int) (acc, reg float64)) int {
		s := newCostSchedule(&cfg, false)
		for i := 0; i < 200; i++ {
			if s.update(next(i)); s.stopped {
				return i + 1
			}
		}
		return -1
	}
	// Alternating pairs of successes and failures move the cost both ways;
	// successes 2% better every time.
	reg := 100.0
	improving := func(i int) (float64, float64) {
		if i%4 < 2 {
			reg *= 0.98
			return 1, reg
		}
		return 0, reg
	}
	if n := run(improving); n != -1 {
		t.Errorf("stopped after %d steps while improving", n)
	}
	flat := func(i int) (float64, float64) {
		if i%4 < 2 {
			return 1, 50
		}
		return 0, 50
	}
	if n := run(flat); n < cfg.EarlyStopPatience || n > cfg.EarlyStopPatience+4 {
		t.Errorf("stopped after %d steps without progress, want about %d", n, cfg.EarlyStopPatience)
	}
}

func TestMADIndex(t *testing.T) {
	norms := []float64{10, 100, 110, 90, 105, 95}
	med, mad, idx := MADIndex(norms, norms)
	// median 97.5; |dev| 87.5 2.5 12.5 7.5 7.5 2.5 -> median 7.5
	if med != 97.5 || math.Abs(mad-MADConstant*7.5) > 1e-12 {
		t.Fatalf("median %g MAD %g", med, mad)
	}
	if want := 87.5 / (MADConstant * 7.5); math.Abs(idx[0]-want) > 1e-12 {
		t.Errorf("index %g, want %g", idx[0], want)
	}
	r := &CleanseReport{}
	for i, n := range norms {
		r.Labels = append(r.Labels, CleanseLabel{Label: i, L1: n, Exact: true})
	}
	r.Labels = append(r.Labels, CleanseLabel{Label: 6, L1: 200, Exact: true}) // big: above the median, never flagged
	r.Detect()
	if len(r.Flagged) != 1 || r.Flagged[0] != 0 {
		t.Errorf("flagged %v, want [0] (label 6 is an outlier above the median)", r.Flagged)
	}
	r.Config.MADScale = MADLog
	r.Detect()
	if len(r.Flagged) != 1 || r.Flagged[0] != 0 || r.AnomalyIndex <= 2 {
		t.Errorf("log scale: flagged %v, index %g", r.Flagged, r.AnomalyIndex)
	}
}

func TestParseLabels(t *testing.T) {
	got, err := ParseLabels("8,0-3, 5,2")
	if err != nil || len(got) != 6 || got[0] != 0 || got[4] != 5 || got[5] != 8 {
		t.Errorf("ParseLabels: %v, %v", got, err)
	}
	if l, err := ParseLabels("all"); l != nil || err != nil {
		t.Errorf("all: %v %v", l, err)
	}
	for _, bad := range []string{"3-1", "a", "-1", "1-", "0x10", "1,,2"} {
		if _, err := ParseLabels(bad); err == nil {
			t.Errorf("ParseLabels(%q): no error", bad)
		}
	}
	if err := (CleanseConfig{Preset: "nope"}).Validate(); err == nil {
		t.Error("unknown preset accepted")
	}
	if err := (CleanseConfig{Labels: []int{1, 1}}).Validate(); err == nil {
		t.Error("duplicate labels accepted")
	}
	if err := (CleanseConfig{CostMultiplier: 0.5}).Validate(); err == nil {
		t.Error("cost multiplier below 1 accepted")
	}
}

// TestMADRules: three small targets among ten labels mask each other on the
// linear scale (the original rule flags none of them); the log scale flags
// them; the iterative rule flags what the single pass flags and more only
// once something is flagged; the original rule is always reported.
func TestMADRules(t *testing.T) {
	norms := []float64{21, 24, 44, 130, 150, 160, 170, 180, 400, 600}
	r := &CleanseReport{}
	for i, n := range norms {
		r.Labels = append(r.Labels, CleanseLabel{Label: i, L1: n, Exact: true})
	}
	// The fixed threshold 2: these rules are about the scale and the pass.
	r.Config.MADThresholdRule = MADFixed
	r.Config.MADScale, r.Config.MADRule = MADLinear, MADSingle
	r.Detect()
	if len(r.Flagged) != 0 || len(r.Original.Flagged) != 0 {
		t.Errorf("linear single pass: flagged %v (original %v), want none", r.Flagged, r.Original.Flagged)
	}
	r.Config.MADScale = MADLog
	r.Detect()
	if !slices.Equal(r.Flagged, []int{0, 1}) && !slices.Equal(r.Flagged, []int{0, 1, 2}) {
		t.Errorf("log single pass: flagged %v, want 0, 1 (and maybe 2)", r.Flagged)
	}
	if r.Original == nil || len(r.Original.Flagged) != 0 || r.Labels[0].OriginalIndex == 0 || r.Original.Rule != "linear, single pass" {
		t.Errorf("original rule not reported beside the log one: %+v", r.Original)
	}
	single := slices.Clone(r.Flagged)
	r.Config.MADRule = MADIterative
	r.Detect()
	for _, l := range single {
		if !slices.Contains(r.Flagged, l) {
			t.Errorf("iterative: %v lost %d of the single pass's %v", r.Flagged, l, single)
		}
	}
	// Nothing flagged in one pass: the iteration changes nothing.
	flat := &CleanseReport{Config: CleanseConfig{MADRule: MADIterative}}
	for i, n := range []float64{100, 110, 120, 90, 95, 105, 130, 85, 115, 100} {
		flat.Labels = append(flat.Labels, CleanseLabel{Label: i, L1: n, Exact: true})
	}
	flat.Detect()
	if len(flat.Flagged) != 0 {
		t.Errorf("no outlier: flagged %v", flat.Flagged)
	}
}

// normalNorms are n norms whose logs are an ideal normal sample (the
// quantiles (i + 0.5) / n of N(log 150, 0.25)), in a shuffled label order.
func normalNorms(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		z := -math.Sqrt2 * math.Erfcinv(2*(float64(i)+0.5)/float64(n))
		out[(i*7919)%n] = 150 * math.Exp(0.25*z)
	}
	return out
}

func reportOf(norms []float64, cfg CleanseConfig) *CleanseReport {
	r := &CleanseReport{Config: cfg}
	for i, n := range norms {
		r.Labels = append(r.Labels, CleanseLabel{Label: i, L1: n, Exact: true})
	}
	return r
}

func TestMADBonferroniThreshold(t *testing.T) {
	for _, c := range []struct {
		alpha float64
		n     int
		want  float64
	}{{0.05, 1, 1.6449}, {0.05, 10, 2.5758}, {0.05, 1283, 3.9506}, {0.1, 1283, 3.7815}, {0.05, 0, 1.6449}, {1, 10, 0}, {0, 10, math.Inf(1)}} {
		got := MADBonferroniThreshold(c.alpha, c.n)
		if math.Abs(got-c.want) > 1e-3 && got != c.want {
			t.Errorf("MADBonferroniThreshold(%g, %d) = %.4f, want %.4f", c.alpha, c.n, got, c.want)
		}
	}
}

// TestMADBonferroni: 1283 ordinary labels (log norms an ideal normal
// sample: the smallest 3.36 standard deviations below the median) and one
// planted trigger 6 standard deviations below: the fixed threshold 2 flags
// the lower tail (about 2.3 % of the labels), the Bonferroni threshold
// (3.95) only the planted label, in the full scan and with a 32-label
// reference; the fixed rule's verdict is reported beside, and
// MADThresholdRule fixed goes back to it.
func TestMADBonferroni(t *testing.T) {
	norms := normalNorms(1283)
	const planted = 641
	norms[planted] = 150 * math.Exp(-6*0.25)
	r := reportOf(norms, CleanseConfig{})
	r.Detect()
	if !slices.Equal(r.Flagged, []int{planted}) {
		t.Errorf("Bonferroni: flagged %v, want [%d]", r.Flagged, planted)
	}
	if math.Abs(r.Threshold-3.9506) > 1e-3 || r.Fixed == nil || r.Fixed.Threshold != 2 || r.Fixed.ThresholdRule != MADFixed {
		t.Fatalf("threshold %.4f, fixed rule beside: %v", r.Threshold, r.Fixed != nil)
	}
	if len(r.Fixed.Flagged) < 20 || r.Fixed.Flagged[0] != planted {
		t.Errorf("fixed threshold 2: flagged %d labels (%v), want the planted one first and the lower tail", len(r.Fixed.Flagged), r.Fixed.Flagged)
	}
	if r.Original == nil || r.Original.Threshold != 2 {
		t.Errorf("original rule missing or not at threshold 2")
	}
	// The fast budget's reference: every 40th label; n stays 1283.
	for l := 0; l < 1283; l += 40 {
		r.Reference = append(r.Reference, l)
	}
	r.Detect()
	if !slices.Equal(r.Flagged, []int{planted}) || math.Abs(r.Threshold-3.9506) > 1e-3 {
		t.Errorf("32-label reference: flagged %v, threshold %.2f", r.Flagged, r.Threshold)
	}
	r.Reference = nil
	r.Config.MADThresholdRule = MADFixed
	r.Detect()
	if r.Threshold != 2 || r.Fixed != nil || len(r.Flagged) < 20 {
		t.Errorf("MADFixed: threshold %g, %d flagged, fixed result beside %v", r.Threshold, len(r.Flagged), r.Fixed)
	}
	// A larger alpha lowers the threshold, never below MADThreshold.
	r.Config.MADThresholdRule, r.Config.MADAlpha = MADBonferroni, 0.5
	r.Detect()
	if math.Abs(r.Threshold-MADBonferroniThreshold(0.5, 1283)) > 1e-12 {
		t.Errorf("alpha 0.5: threshold %g", r.Threshold)
	}
	r.Config.MADAlpha, r.Config.MADThreshold = 0, 5
	r.Detect()
	if r.Threshold != 5 {
		t.Errorf("MADThreshold 5 above the Bonferroni threshold: threshold %g", r.Threshold)
	}
	for _, c := range []struct {
		cfg  CleanseConfig
		name string
	}{{CleanseConfig{MADThresholdRule: "max"}, "MADThresholdRule"}, {CleanseConfig{MADAlpha: 1}, "MADAlpha"}, {CleanseConfig{MADAlpha: -0.1}, "MADAlpha"}, {CleanseConfig{MADAlpha: math.NaN()}, "MADAlpha"}} {
		if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%+v: error %v, want one naming %s", c.cfg, err, c.name)
		}
	}
	if err := (CleanseConfig{MADThresholdRule: MADFixed, MADAlpha: 0.01}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestMADBonferroniTenLabels: with 10 labels the threshold is 2.58 instead
// of 2. A target far below the others is flagged by both; a lowest
// ordinary label at index 2.1 (the reduced zoo's clean model, 30 steps,
// in one run) only by the fixed threshold; a label at 2.4 (the zoo's
// sunglasses target after 300 steps) is no longer flagged: the documented
// price.
func TestMADBonferroniTenLabels(t *testing.T) {
	clear := []float64{10.4, 100.1, 104.8, 116.1, 157.4, 158.2, 160, 170, 180, 200}
	r := reportOf(clear, CleanseConfig{})
	r.Detect()
	if !slices.Equal(r.Flagged, []int{0}) || !slices.Equal(r.Fixed.Flagged, []int{0}) || math.Abs(r.Threshold-2.5758) > 1e-3 {
		t.Errorf("clear target: flagged %v (fixed %v), threshold %.3f", r.Flagged, r.Fixed.Flagged, r.Threshold)
	}
	// Nine ordinary labels and one below them at index k: as the smallest
	// value it moves neither the median nor the MAD of the ten.
	for _, k := range []float64{2.1, 2.4} {
		norms := append(normalNorms(9), 1)
		logs := make([]float64, len(norms))
		for i, n := range norms {
			logs[i] = math.Log(n)
		}
		med, mad, _ := MADIndex(logs, nil)
		norms[9] = math.Exp(med - k*mad)
		r := reportOf(norms, CleanseConfig{})
		r.Detect()
		if idx := r.Labels[9].AnomalyIndex; math.Abs(idx-k) > 1e-9 {
			t.Fatalf("planted label at index %.4f, want %g", idx, k)
		}
		if len(r.Flagged) != 0 || !slices.Equal(r.Fixed.Flagged, []int{9}) {
			t.Errorf("label at index %g: flagged %v (fixed %v), want none (fixed: 9)", k, r.Flagged, r.Fixed.Flagged)
		}
	}
}

func TestUnlearnStamps(t *testing.T) {
	m := []float32{0, 0.2, 0.9, 1, 0, 0, 0, 0, 0}
	th := thresholded(m)
	if !slices.Equal(th, []float32{0, 0, 1, 1, 0, 0, 0, 0, 0}) {
		t.Errorf("thresholded %v", th)
	}
	d := dilate([]float32{0, 0, 0, 0, 1, 0, 0, 0, 0}, 3, 3, 1, 1)
	for i, v := range d {
		if v != 1 {
			t.Errorf("dilate: pixel %d is %g", i, v)
		}
	}
	img := []float32{0.5, 0.5}
	stampInto(img, []float32{0.8, 0}, []float32{1, 1}, 1.5, 2, 1, 1)
	if img[0] != 1 || img[1] != 0.5 {
		t.Errorf("stamp at strength 1.5 (clipped): %v", img)
	}
}

// TestCleanseVerdictCombined: the default verdict is Neural Cleanse's flags,
// then the labels the last-layer check proposes whose reversed trigger is
// an outlier at the candidates' threshold max(2, z(1 - 0.05 / k)) for k
// proposals (the multi-trigger case: the outlier test flags the planted
// trigger, a second target at index 3 is below the 1283 labels' 3.95 but
// proposed by the last layer; an ordinary label the last layer proposes
// stays out); VerdictNeuralCleanse keeps the outlier test alone; each
// test's own flags stay in the report; shards confirm the candidates they
// hold and their merge equals the whole report.
func TestCleanseVerdictCombined(t *testing.T) {
	norms := normalNorms(1283)
	const planted, second, ordinary, notScanned = 641, 5, 9, 1200
	norms[planted] = 150 * math.Exp(-6*0.25)
	norms[second] = 150 * math.Exp(-3*0.25)
	norms[notScanned] = 150 * math.Exp(-3*0.25)
	norms[ordinary] = 150
	ll := &LastLayerReport{Method: "last-layer", Flagged: []int{second, planted, ordinary, notScanned}}
	r := reportOf(norms[:1000], CleanseConfig{})
	r.LastLayer = ll
	r.Detect()
	if want := MADBonferroniThreshold(0.05, 4); math.Abs(r.CandidateThreshold-want) > 1e-12 || want < 2.2 {
		t.Errorf("candidate threshold %.4f, want z(1 - 0.05 / 4) = %.4f", r.CandidateThreshold, want)
	}
	if !slices.Equal(r.NCFlagged, []int{planted}) || !slices.Equal(r.Flagged, []int{planted, second}) {
		t.Fatalf("combined: flagged %v (Neural Cleanse %v), want [%d %d]: the outlier test's first, %d ordinary, %d not in the report",
			r.Flagged, r.NCFlagged, planted, second, ordinary, notScanned)
	}
	p, _ := r.Label(planted)
	s, _ := r.Label(second)
	o, _ := r.Label(ordinary)
	if s.AnomalyIndex < 2.5 || s.AnomalyIndex > r.Threshold {
		t.Fatalf("second target's index %.2f: the test needs it between 2.5 and the threshold %.2f", s.AnomalyIndex, r.Threshold)
	}
	if !p.Flagged || !p.NCFlagged || !p.LastLayerFlagged || !s.Flagged || s.NCFlagged || !s.LastLayerFlagged || o.Flagged || o.NCFlagged || !o.LastLayerFlagged {
		t.Errorf("per-label flags: planted %+v, second %+v, ordinary %+v", p, s, o)
	}
	if got := r.ScanReport().Flagged; !slices.Equal(got, r.Flagged) {
		t.Errorf("ScanReport flagged %v, want the verdict %v", got, r.Flagged)
	}
	r.Config.Verdict = VerdictNeuralCleanse
	r.Detect()
	if !slices.Equal(r.Flagged, []int{planted}) || !slices.Equal(r.NCFlagged, []int{planted}) || !r.Labels[second].LastLayerFlagged || r.Labels[second].Flagged {
		t.Errorf("neural-cleanse verdict: flagged %v (Neural Cleanse %v), label %d %+v", r.Flagged, r.NCFlagged, second, r.Labels[second])
	}
	r.Config.Verdict = ""
	r.LastLayer = nil
	r.Detect()
	if !slices.Equal(r.Flagged, []int{planted}) || r.CandidateThreshold != 0 {
		t.Errorf("no last layer: flagged %v, candidate threshold %g", r.Flagged, r.CandidateThreshold)
	}
	if err := (CleanseConfig{Verdict: "either"}).Validate(); err == nil || !strings.Contains(err.Error(), "Verdict") {
		t.Errorf("Verdict \"either\": error %v, want one naming Verdict", err)
	}

	// Three shards of all 1283 labels, and their merge.
	full := reportOf(norms, CleanseConfig{})
	full.LastLayer = ll
	full.Detect()
	var parts []*CleanseReport
	for _, cut := range [][2]int{{0, 400}, {400, 900}, {900, 1283}} {
		sh := &CleanseReport{LastLayer: ll}
		sh.Labels = slices.Clone(full.Labels[cut[0]:cut[1]])
		sh.Detect()
		parts = append(parts, sh)
	}
	if !slices.Contains(parts[0].Flagged, second) || slices.Contains(parts[0].Flagged, notScanned) || !slices.Equal(parts[2].Flagged, []int{notScanned}) {
		t.Errorf("shards flag %v, %v, %v: the candidates each holds", parts[0].Flagged, parts[1].Flagged, parts[2].Flagged)
	}
	merged, err := MergeCleanseReports(parts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(merged.Flagged, full.Flagged) || !slices.Equal(merged.NCFlagged, full.NCFlagged) || !slices.Equal(full.Flagged, []int{planted, second, notScanned}) {
		t.Errorf("merged flags %v (Neural Cleanse %v), full scan %v (%v)", merged.Flagged, merged.NCFlagged, full.Flagged, full.NCFlagged)
	}
}
