package defence

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"

	tf "github.com/galeone/tensorflow/tensorflow/go"

	"github.com/bbd-workbench/bbd/exporter"
	"github.com/bbd-workbench/bbd/metrics"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// Scopes of the two networks inside a BBD model.
const (
	BBDBadNetScope   = "badnet"
	BBDRepairedScope = "repaired"
)

// BBDCollection is the MetaGraphDef collection recording a BBD SavedModel's
// decision (JSON [BBDConfig] plus the number of classes).
const BBDCollection = "bbd_decision"

// BBDConfig configures the Bimodel Backdoor Defence. The zero value is the
// untargeted defence.
type BBDConfig struct {
	// Targets are the suspect labels of the targeted defence (given, or the
	// labels a Neural Cleanse scan flagged): the repaired model is consulted
	// only when the BadNet answers one of them. Empty: untargeted, both
	// models always vote.
	Targets []int `json:"targets"`
	// MaxGap, when in (0, 1), also judges poisoned an input that the labels
	// alone would accept (the two models agree; targeted: on a suspect
	// target) when the BadNet's probability for its label exceeds the
	// repaired model's by more than MaxGap. A backdoor makes the BadNet sure
	// of the target; the repaired model, which lost it, is not, even where
	// it gives the same answer. Zero: the paper's decision, from the labels
	// alone. [BBD.GapForFRR] chooses it from clean data.
	MaxGap float64 `json:"max_gap,omitempty"`
}

// Untargeted reports whether the configuration is the untargeted defence.
func (c BBDConfig) Untargeted() bool { return len(c.Targets) == 0 }

// questions reports whether the decision puts the BadNet's label to the
// repaired model: always untargeted, only for a suspect target targeted.
func (c BBDConfig) questions(label int) bool {
	return c.Untargeted() || slices.Contains(c.Targets, label)
}

// Mode is "targeted" or "untargeted".
func (c BBDConfig) Mode() string {
	if c.Untargeted() {
		return "untargeted"
	}
	return "targeted"
}

// BBD is the Bimodel Backdoor Defence (the Bimodel paper's section 4) as one
// TensorFlow model: the BadNet and a repaired copy of it (fine-pruned, or
// unlearned) under the scopes "badnet" and "repaired", reading one input,
// with the decision as graph ops. The untargeted decision outputs the label
// both models agree on, or N ("poisoned", N being the number of classes)
// when they disagree; the targeted one outputs the BadNet's label unless it
// is a suspect target that the repaired model does not confirm, then N.
// Beyond the paper, a confidence gap ([BBDConfig.MaxGap], chosen from clean
// data by [BBD.GapForFRR]) also judges poisoned an input the labels accept
// when the BadNet is much surer of its label than the repaired model. A
// trigger's success left after a repair is largely inputs that the repaired
// model gives the target with little confidence: on the zoo, a gap costing
// one point of FRR flags 46-69 % of the poisoned inputs the labels accept.
//
// Exported with [BBD.Export], it is one SavedModel whose serving_default
// signature maps "input" to "label" (int32, in [0, N]) and each network's
// probabilities: the deployable defended model, which loads in bbd, Python
// TensorFlow and tfgo.
type BBD struct {
	Model  *tfmodels.Model // the combined graph; Model.View(scope) gives each network
	Label  tf.Output       // int32 [-1]: the decision, N meaning poisoned
	Config BBDConfig
	N      int // number of classes of the two networks; the "poisoned" label
}

type bbdRecord struct {
	BBDConfig
	Classes int `json:"classes"`
}

// NewBBD combines badnet and repaired (white-box models with the same input
// shape and classes; their current weights and masks are copied) into a BBD
// model. Close it when done; the two models stay the caller's.
func NewBBD(badnet, repaired *tfmodels.Model, cfg BBDConfig) (b *BBD, err error) {
	if !badnet.WhiteBox() || !repaired.WhiteBox() {
		return nil, fmt.Errorf("bbd: %w (both models must be white-box)", tfmodels.ErrNotWhiteBox)
	}
	if badnet.InputShape != repaired.InputShape || badnet.NumClasses != repaired.NumClasses {
		return nil, &tfmodels.InputError{Input: "bbd: repaired model", Expected: fmt.Sprintf("the BadNet's input %v and %d classes", badnet.InputShape, badnet.NumClasses),
			Found: fmt.Sprintf("input %v and %d classes", repaired.InputShape, repaired.NumClasses)}
	}
	if err := cfg.validate(badnet.NumClasses); err != nil {
		return nil, err
	}
	g := tf.NewGraph()
	in, err := tfmodels.AddInput(g, "input", badnet.InputShape)
	if err != nil {
		return nil, err
	}
	var nets []*tfmodels.Net
	for _, src := range []struct {
		scope string
		m     *tfmodels.Model
	}{{BBDBadNetScope, badnet}, {BBDRepairedScope, repaired}} {
		w, err := src.m.GetWeights()
		if err != nil {
			return nil, fmt.Errorf("bbd: reading the %s weights: %w", src.scope, err)
		}
		masks := src.m.Masks()
		net, err := tfmodels.AddNet(g, src.m.Arch, in, tfmodels.NetOptions{Scope: src.scope, Weights: w, Masks: masks[tfmodels.MaskOutput],
			ChannelMasks: masks[tfmodels.MaskChannel], KernelMasks: masks[tfmodels.MaskKernel], Source: src.scope})
		if err != nil {
			return nil, fmt.Errorf("bbd: adding the %s: %w", src.scope, err)
		}
		nets = append(nets, net)
	}
	label, err := addDecision(g, nets[0], nets[1], cfg, badnet.NumClasses)
	if err != nil {
		return nil, err
	}
	m, err := tfmodels.NewModel(g, in, nets, tfmodels.ModelOptions{BatchSize: badnet.BatchSize})
	if err != nil {
		return nil, err
	}
	return &BBD{Model: m, Label: label, Config: cfg, N: badnet.NumClasses}, nil
}

func (c BBDConfig) validate(classes int) error {
	seen := map[int]bool{}
	for _, t := range c.Targets {
		if t < 0 || t >= classes {
			return configError("bbd", "Targets", fmt.Sprintf("labels in [0, %d)", classes), t)
		}
		if seen[t] {
			return configError("bbd", "Targets", "distinct labels", t)
		}
		seen[t] = true
	}
	if !(c.MaxGap >= 0 && c.MaxGap < 1) { // also catches NaN
		return configError("bbd", "MaxGap", "0 (labels only) or a probability gap in (0, 1)", c.MaxGap)
	}
	return nil
}

// addDecision adds the BBD decision ops under "bbd": "bbd/badnet_label",
// "bbd/repaired_label", "bbd/poisoned" (bool) and "bbd/label"; with a
// MaxGap, "bbd/gap" (float32 [-1]: the BadNet's probability for its label
// minus the repaired model's).
func addDecision(g *tf.Graph, badnet, repaired *tfmodels.Net, cfg BBDConfig, classes int) (tf.Output, error) {
	o := tfmodels.NewOps(g, "bbd")
	argmax := func(name string, p tf.Output) tf.Output {
		return o.Named(name, "ArgMax", map[string]interface{}{"output_type": tf.Int32}, p, o.Const(int32(1)))
	}
	bl := argmax("badnet_label", badnet.Probabilities)
	rl := argmax("repaired_label", repaired.Probabilities)
	disagree := o.Op("NotEqual", nil, bl, rl)
	if cfg.MaxGap > 0 {
		// p[i, bl[i]] as a one-hot product: exact, and every op is one that
		// TF Serving, Python and tfgo load.
		hot := o.Op("OneHot", nil, bl, o.Const(int32(classes)), o.Const(float32(1)), o.Const(float32(0)))
		pb := o.Sum(o.Op("Mul", nil, hot, badnet.Probabilities), 1)
		pr := o.Sum(o.Op("Mul", nil, hot, repaired.Probabilities), 1)
		gap := o.Named("gap", "Sub", nil, pb, pr)
		disagree = o.Op("LogicalOr", nil, disagree, o.Op("Greater", nil, gap, o.Const(float32(cfg.MaxGap))))
	}
	poisoned := disagree
	if !cfg.Untargeted() {
		targets := make([]int32, len(cfg.Targets))
		for i, t := range cfg.Targets {
			targets[i] = int32(t)
		}
		col := o.Op("ExpandDims", nil, bl, o.Const(int32(-1)))       // [-1, 1]
		hits := o.Op("Equal", nil, col, o.Const([][]int32{targets})) // [-1, k]
		suspect := o.Op("Any", nil, hits, o.Const([]int32{1}))       // [-1]
		poisoned = o.Op("LogicalAnd", nil, suspect, disagree)
	}
	poisoned = o.Named("poisoned", "Identity", nil, poisoned)
	label := o.Named("label", "SelectV2", nil, poisoned, o.Const(int32(classes)), bl)
	if err := o.Err(); err != nil {
		return tf.Output{}, fmt.Errorf("bbd: adding the decision: %w", err)
	}
	return label, nil
}

// Close frees the combined model.
func (b *BBD) Close() error { return b.Model.Close() }

// Name implements InputDetector.
func (b *BBD) Name() string { return "bbd-" + b.Config.Mode() }

// Predict returns the BBD label of each of n images x: a class, or N for
// inputs judged poisoned.
func (b *BBD) Predict(x []float32, n int) ([]int, error) {
	res, err := b.Model.Run(x, n, b.Label)
	if err != nil {
		return nil, err
	}
	out := make([]int, n)
	for i, v := range res[0] {
		out[i] = int(v)
	}
	return out, nil
}

// Detect implements InputDetector: an input is flagged when its label is N.
// Its score, higher meaning more suspect, is the gap g, the BadNet's
// probability for its label minus the repaired model's, shifted so that
// the decision is "score > Threshold": g + 2 when the labels disagree on a
// questioned label (any label untargeted, a suspect target targeted), g - 2
// when the label is not questioned, else g. The threshold is MaxGap, or 1
// without one. So AUROC ranks inputs by the decision first, then by the gap.
func (b *BBD) Detect(ctx context.Context, x []float32, n int) (*Detection, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	nets, err := b.nets()
	if err != nil {
		return nil, err
	}
	res, err := b.Model.Run(x, n, b.Label, nets[0].Probabilities, nets[1].Probabilities)
	if err != nil {
		return nil, err
	}
	d := &Detection{Method: b.Name(), Direction: metrics.HigherPoisoned, Threshold: 1,
		Labels: make([]int, n), Scores: make([]float64, n), Flags: make([]bool, n)}
	if b.Config.MaxGap > 0 {
		d.Threshold = float64(float32(b.Config.MaxGap)) // the graph compares in float32
	}
	N := b.N
	for i := range n {
		d.Labels[i] = int(res[0][i])
		d.Flags[i] = d.Labels[i] == N
		d.Scores[i] = bbdScore(res[1][i*N:(i+1)*N], res[2][i*N:(i+1)*N], b.Config)
	}
	return d, nil
}

// bbdScore is Detect's score of one input from the two models'
// probabilities.
func bbdScore(badnet, repaired []float32, cfg BBDConfig) float64 {
	v := judge(badnet, repaired, cfg)
	gap := float64(v.gap)
	switch {
	case !v.questioned:
		return gap - 2
	case !v.agree:
		return gap + 2
	}
	return gap
}

// verdict is what the BBD decision reads of one input.
type verdict struct {
	label      int     // the BadNet's
	gap        float32 // the BadNet's probability for label minus the repaired model's
	questioned bool    // the label is put to the repaired model (untargeted: always)
	agree      bool    // the repaired model gives the same label
}

// judge reads the two models' probabilities of one input (ties going to the
// lower label, as TensorFlow's ArgMax does) as the decision does.
func judge(badnet, repaired []float32, cfg BBDConfig) verdict {
	l := argmax(badnet)
	return verdict{label: l, gap: badnet[l] - repaired[l],
		questioned: cfg.questions(l), agree: argmax(repaired) == l}
}

// nets returns the BadNet's and the repaired model's nets.
func (b *BBD) nets() ([2]*tfmodels.Net, error) {
	var nets [2]*tfmodels.Net
	for _, n := range b.Model.Nets() {
		switch n.Scope {
		case BBDBadNetScope:
			nets[0] = n
		case BBDRepairedScope:
			nets[1] = n
		}
	}
	if nets[0] == nil || nets[1] == nil {
		return nets, fmt.Errorf("bbd: the model has no %q and %q nets", BBDBadNetScope, BBDRepairedScope)
	}
	return nets, nil
}

// Export writes the BBD model as one SavedModel (see [BBD]): signature
// serving_default maps "input" to "label" (int32, N = poisoned),
// "badnet/probabilities", "repaired/probabilities" (and "probabilities", the
// BadNet's); the two networks reload white-box; the decision's configuration
// is recorded in the collection [BBDCollection].
func (b *BBD) Export(dir string, opts exporter.Options) error {
	spec, err := exporter.ModelSpec(b.Model)
	if err != nil {
		return fmt.Errorf("writing BBD SavedModel %s: %w", dir, err)
	}
	spec.Signatures[exporter.DefaultSignature].Outputs["label"] = b.Label
	rec, err := json.Marshal(bbdRecord{BBDConfig: b.Config, Classes: b.N})
	if err != nil {
		return err
	}
	spec.Collections[BBDCollection] = [][]byte{rec}
	return exporter.Write(dir, spec, opts)
}

// LoadBBD loads a BBD SavedModel written by [BBD.Export].
func LoadBBD(dir string, opts tfmodels.LoadOptions) (*BBD, error) {
	mg, err := tfmodels.ReadMetaGraph(dir, opts.Tag)
	if err != nil {
		return nil, err
	}
	coll := mg.CollectionDef[BBDCollection].GetBytesList().GetValue()
	var rec bbdRecord
	if len(coll) != 1 || json.Unmarshal(coll[0], &rec) != nil {
		return nil, &tfmodels.InputError{Input: dir, Expected: "a BBD SavedModel (collection " + BBDCollection + ")", Found: fmt.Sprintf("%d records", len(coll))}
	}
	m, err := tfmodels.LoadSavedModel(dir, opts)
	if err != nil {
		return nil, err
	}
	label, ok := m.Outputs["label"]
	if !ok || len(m.Nets()) != 2 || rec.Classes != m.NumClasses {
		m.Close()
		return nil, &tfmodels.InputError{Input: dir, Expected: "a BBD SavedModel: two nets and a label output", Found: fmt.Sprintf("%d nets, outputs %v", len(m.Nets()), slices.Sorted(maps.Keys(m.Outputs)))}
	}
	return &BBD{Model: m, Label: label, Config: rec.BBDConfig, N: rec.Classes}, nil
}

// Decide is the BBD decision in Go, from the two models' labels: what the
// graph computes without a MaxGap (which Decide ignores; see [DecideProbs]),
// for checking it and for pipelines that run the two models apart.
func Decide(badnetLabel, repairedLabel int, cfg BBDConfig, classes int) int {
	if badnetLabel == repairedLabel {
		return badnetLabel
	}
	if cfg.questions(badnetLabel) {
		return classes
	}
	return badnetLabel
}

// DecideProbs is the whole BBD decision in Go, MaxGap included, from the two
// models' probabilities (one input each, ties going to the lower label as
// TensorFlow's ArgMax does): what the graph computes. It returns -1 when
// the two are empty or of different lengths.
func DecideProbs(badnet, repaired []float32, cfg BBDConfig) int {
	classes := len(badnet)
	if classes == 0 || len(repaired) != classes {
		return -1
	}
	v := judge(badnet, repaired, cfg)
	if v.questioned && (!v.agree || cfg.MaxGap > 0 && v.gap > float32(cfg.MaxGap)) {
		return classes
	}
	return v.label
}

// GapForFRR returns the MaxGap at which the confidence gap judges poisoned
// at most extraFRR of the clean inputs beyond those b's labels already
// reject: among the clean inputs b's label decision accepts (the two models
// agree; targeted: on a suspect target), the (k+1)-th largest gap, k =
// floor(extraFRR x clean inputs). Only clean data is read, as a defender has
// no poisoned data; give it data the repaired model was not fine-tuned on
// if there is some (its gaps there are smaller, so the threshold is lower
// and more clean test inputs are rejected than asked). b's own MaxGap is
// ignored.
func (b *BBD) GapForFRR(ctx context.Context, clean Examples, extraFRR float64) (float64, error) {
	if !(extraFRR > 0 && extraFRR < 1) {
		return 0, configError("bbd", "extra FRR", "a share of the clean inputs in (0, 1)", extraFRR)
	}
	nets, err := b.nets()
	if err != nil {
		return 0, err
	}
	N := b.N
	var gaps []float32
	total := 0
	err = eachBatch(ctx, b.Model, clean, func(x []float32, y []int32) error {
		res, err := b.Model.Run(x, len(y), nets[0].Probabilities, nets[1].Probabilities)
		if err != nil {
			return err
		}
		for i := range y {
			if v := judge(res[0][i*N:(i+1)*N], res[1][i*N:(i+1)*N], b.Config); v.questioned && v.agree {
				gaps = append(gaps, v.gap) // the inputs the labels accept
			}
		}
		total += len(y)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("bbd: calibrating the gap: %w", err)
	}
	if total == 0 {
		return 0, fmt.Errorf("bbd: calibrating the gap needs clean inputs, found none")
	}
	// The smallest gap worth a flag: below it, rounding decides.
	const minGap = 1e-6
	k := int(extraFRR * float64(total))
	if k >= len(gaps) {
		return minGap, nil
	}
	slices.SortFunc(gaps, func(a, b float32) int { return cmp.Compare(b, a) })
	return max(float64(gaps[k]), minGap), nil
}

// BBDPrediction is what the Bimodel paper's equations (3)-(6) predict from
// the two models' clean accuracy and attack success.
type BBDPrediction struct {
	// Targeted accuracy on clean inputs, equation (3), and on poisoned inputs
	// (the share labelled N), equation (4).
	TargetedClean    float64 `json:"targeted_clean_eq3"`
	TargetedPoisoned float64 `json:"targeted_poisoned_eq4"`
	// Untargeted intervals: clean, equation (5); poisoned, equation (6).
	UntargetedClean    [2]float64 `json:"untargeted_clean_eq5"`
	UntargetedPoisoned [2]float64 `json:"untargeted_poisoned_eq6"`
}

// PredictBBD evaluates equations (3)-(6) as the paper writes them: accBD,
// attackBD the BadNet's clean accuracy and attack success, accRep, attackRep
// the repaired model's, classes N, targets n.
func PredictBBD(accBD, attackBD, accRep, attackRep float64, classes, targets int) BBDPrediction {
	N, n := float64(classes), float64(targets)
	return BBDPrediction{
		TargetedClean:      accBD*(N-n)/N + accBD*n/N*accRep,
		TargetedPoisoned:   attackBD * (1 - attackRep),
		UntargetedClean:    [2]float64{accBD + accRep - 1, accBD},
		UntargetedPoisoned: [2]float64{attackBD - attackRep, math.Max(attackBD, attackBD+attackRep-1)},
	}
}

// BBDEvaluation measures a BBD model on clean data plus poisoned sets
// relabelled N, as the paper's Table 4.
type BBDEvaluation struct {
	Mode    string `json:"mode"`
	Targets []int  `json:"targets"`
	Classes int    `json:"classes"`
	// MaxGap is the decision's confidence gap (0: labels only), and
	// GapFlagged{Clean,Poisoned} the inputs it judged poisoned although the
	// two models agree.
	MaxGap             float64 `json:"max_gap"`
	GapFlaggedClean    int     `json:"gap_flagged_clean"`
	GapFlaggedPoisoned int     `json:"gap_flagged_poisoned"`
	// Accuracy over the mixed set (clean with their labels, poisoned
	// relabelled N).
	Accuracy metrics.Ratio `json:"accuracy"`
	// FRR (clean inputs labelled N / clean inputs) and FAR (poisoned inputs
	// not labelled N / poisoned inputs), and the same counts divided by the
	// whole mixed set, as the authors' notebook computed them.
	FRR      float64 `json:"frr"`
	FAR      float64 `json:"far"`
	FRRTotal float64 `json:"frr_over_total"`
	FARTotal float64 `json:"far_over_total"`
	// CleanAccuracy is BBD's accuracy on the clean inputs alone; Poisoned
	// Accuracy the share of poisoned inputs labelled N.
	CleanAccuracy    metrics.Ratio `json:"clean_accuracy"`
	PoisonedAccuracy metrics.Ratio `json:"poisoned_accuracy"`
	// AttackSuccess is BBD's attack success by poisoned set: the share
	// labelled with the set's target.
	AttackSuccess map[string]float64 `json:"attack_success"`
	// The two models alone, on the same inputs (poisoned sets pooled).
	BadNet   ModelFigures `json:"badnet"`
	Repaired ModelFigures `json:"repaired"`
	// Predicted are equations (3)-(6) from the two models' figures, and
	// whether BBD's measured accuracies lie where they say.
	Predicted      BBDPrediction `json:"predicted"`
	InsideEq5      bool          `json:"clean_inside_eq5"`
	InsideEq6      bool          `json:"poisoned_inside_eq6"`
	Images         int           `json:"images"`
	CleanImages    int           `json:"clean_images"`
	PoisonedImages int           `json:"poisoned_images"`
}

// ModelFigures are one model's clean accuracy and attack success.
type ModelFigures struct {
	CleanAccuracy float64 `json:"clean_accuracy"`
	AttackSuccess float64 `json:"attack_success"`
}

// EvaluateBBD runs b on clean (true labels) and each poisoned set (labelled
// with the target), and measures BBD and the two models alone.
func EvaluateBBD(ctx context.Context, b *BBD, clean Examples, poisoned []EvalSet) (*BBDEvaluation, error) {
	e := &BBDEvaluation{Mode: b.Config.Mode(), Targets: b.Config.Targets, Classes: b.N, MaxGap: b.Config.MaxGap, AttackSuccess: map[string]float64{}}
	bl, rl := b.Model.Graph.Operation("bbd/badnet_label"), b.Model.Graph.Operation("bbd/repaired_label")
	if bl == nil || rl == nil {
		return nil, fmt.Errorf("bbd: the model has no bbd/badnet_label and bbd/repaired_label ops")
	}
	// Per set: inputs, BBD right (clean: the true label; poisoned: N), BBD
	// giving the set's label (poisoned: the target), each model alone right,
	// inputs labelled N.
	type counts struct{ n, bbdRight, bbdAsLabelled, bdRight, repRight, flagged, byGap int }
	run := func(ex Examples, poisoned bool) (counts, error) {
		var c counts
		err := eachBatch(ctx, b.Model, ex, func(x []float32, y []int32) error {
			res, err := b.Model.Run(x, len(y), b.Label, bl.Output(0), rl.Output(0))
			if err != nil {
				return err
			}
			for i, want := range y {
				lab, bdl, repl := int(res[0][i]), int(res[1][i]), int(res[2][i])
				if poisoned {
					if lab == b.N {
						c.bbdRight++
					}
				} else if lab == int(want) {
					c.bbdRight++
				}
				if lab == b.N {
					c.flagged++
					if bdl == repl {
						c.byGap++
					}
				}
				if lab == int(want) {
					c.bbdAsLabelled++
				}
				if bdl == int(want) {
					c.bdRight++
				}
				if repl == int(want) {
					c.repRight++
				}
			}
			c.n += len(y)
			return nil
		})
		return c, err
	}
	cc, err := run(clean, false)
	if err != nil {
		return nil, fmt.Errorf("bbd: evaluating on clean data: %w", err)
	}
	var pc counts
	for _, p := range poisoned {
		c, err := run(p.Data, true)
		if err != nil {
			return nil, fmt.Errorf("bbd: evaluating on %s: %w", p.Name, err)
		}
		e.AttackSuccess[p.Name] = ratio(c.bbdAsLabelled, c.n)
		pc.n += c.n
		pc.bbdRight += c.bbdRight
		pc.bdRight += c.bdRight
		pc.repRight += c.repRight
		pc.flagged += c.flagged
		pc.byGap += c.byGap
	}
	if cc.n == 0 || pc.n == 0 {
		return nil, fmt.Errorf("bbd: evaluating needs clean and poisoned inputs, found %d and %d", cc.n, pc.n)
	}
	total := cc.n + pc.n
	e.Images, e.CleanImages, e.PoisonedImages = total, cc.n, pc.n
	e.GapFlaggedClean, e.GapFlaggedPoisoned = cc.byGap, pc.byGap
	e.Accuracy = metrics.Ratio{Hits: cc.bbdRight + pc.bbdRight, Total: total}
	e.CleanAccuracy = metrics.Ratio{Hits: cc.bbdRight, Total: cc.n}
	e.PoisonedAccuracy = metrics.Ratio{Hits: pc.bbdRight, Total: pc.n}
	frr, far := cc.flagged, pc.n-pc.flagged
	e.FRR, e.FAR = ratio(frr, cc.n), ratio(far, pc.n)
	e.FRRTotal, e.FARTotal = ratio(frr, total), ratio(far, total)
	e.BadNet = ModelFigures{CleanAccuracy: ratio(cc.bdRight, cc.n), AttackSuccess: ratio(pc.bdRight, pc.n)}
	e.Repaired = ModelFigures{CleanAccuracy: ratio(cc.repRight, cc.n), AttackSuccess: ratio(pc.repRight, pc.n)}
	e.Predicted = PredictBBD(e.BadNet.CleanAccuracy, e.BadNet.AttackSuccess, e.Repaired.CleanAccuracy, e.Repaired.AttackSuccess, b.N, max(len(b.Config.Targets), 1))
	const eps = 1e-9
	ca, pa := e.CleanAccuracy.Value(), e.PoisonedAccuracy.Value()
	e.InsideEq5 = ca >= e.Predicted.UntargetedClean[0]-eps && ca <= e.Predicted.UntargetedClean[1]+eps
	e.InsideEq6 = pa >= e.Predicted.UntargetedPoisoned[0]-eps && pa <= e.Predicted.UntargetedPoisoned[1]+eps
	return e, nil
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
