package defence

import (
	"fmt"

	tf "github.com/galeone/tensorflow/tensorflow/go"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// AlphaAuto, as STRIPConfig.Alpha (with OverlayBlend), makes NewSTRIP choose
// the blend's weight from the overlay pool, clean data only, by this rule:
//
//	the largest Alpha of AutoAlphaGrid (scanned upwards, stopping at the
//	first that fails) at which at most a share FRR (Threshold.FRR, 0.05
//	by default) of the clean inputs lose their own label in the majority
//	of their M overlaid copies.
//
// Why: a blend must be light enough for a trigger to survive it (keep the
// poisoned input's label in nearly every copy, hence an entropy near zero)
// and as heavy as possible otherwise, so that clean inputs' predictions
// scatter and their entropies move away from zero. The poisoned data that
// would tell how strongly a trigger dominates is not the defender's; the rule
// assumes only that a trigger dominates the blends at least as well as the
// weakest clean inputs but a share FRR do, the share STRIP's threshold gives
// up anyway. It is not STRIP's rule and not the simpler "the median clean
// input keeps its label" (which assumes a trigger as strong as typical clean
// content): on the zoo's multi-trigger BadNet the small eyebrows and
// lipstick triggers are weaker than typical clean content, the median rule
// picks 0.4 and lets 79 % of the eyebrows inputs through (README, input
// filtering). The choice scores up to AutoAlphaInputs pool images per grid
// step (the pool is also where the overlays come from); STRIP.AlphaChoice
// reports it. It costs a few times the scoring of those images.
const AlphaAuto = -1.0

// AutoAlphaGrid is the grid AlphaAuto chooses from, ascending.
var AutoAlphaGrid = []float64{0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5}

// AutoAlphaInputs is the number of pool images AlphaAuto's choice scores
// (all of a smaller pool).
const AutoAlphaInputs = 200

// AlphaStep is one grid step of AlphaAuto's choice.
type AlphaStep struct {
	Alpha float64 `json:"alpha"`
	// Lost is the share of the clean inputs whose own label (the model's
	// label of the input itself) is kept by fewer than half of their
	// overlaid copies.
	Lost float64 `json:"lost"`
}

// AlphaChoice is how AlphaAuto chose the blend's weight.
type AlphaChoice struct {
	Alpha   float64     `json:"alpha"`    // the weight chosen
	MaxLost float64     `json:"max_lost"` // the largest Lost allowed (Threshold.FRR)
	Inputs  int         `json:"inputs"`   // the pool images scored per step
	Steps   []AlphaStep `json:"steps"`    // the steps scanned, ascending
}

// chooseAlpha runs AlphaAuto's rule for model m with the overlays ov on
// inputs drawn from pool.
func chooseAlpha(m *tfmodels.Model, pool Examples, cfg STRIPConfig, ov *tf.Tensor) (*AlphaChoice, error) {
	sh := m.InputShape
	per := sh[0] * sh[1] * sh[2]
	n := min(AutoAlphaInputs, pool.Len())
	idx := data.Shuffled(pool.Len(), cfg.Seed^0xa1fa)[:n]
	x := make([]float32, n*per)
	if err := pool.Gather(idx, x, make([]int32, n)); err != nil {
		return nil, fmt.Errorf("strip: choosing alpha: %w", err)
	}
	ch := &AlphaChoice{Alpha: AutoAlphaGrid[0], MaxLost: cfg.Threshold.FRR, Inputs: n}
	for i, a := range AutoAlphaGrid {
		c := cfg
		c.Alpha = a
		lost, err := alphaLost(m, c, ov, x, n)
		if err != nil {
			return nil, fmt.Errorf("strip: choosing alpha: %w", err)
		}
		ch.Steps = append(ch.Steps, AlphaStep{Alpha: a, Lost: lost})
		if lost > ch.MaxLost {
			break
		}
		ch.Alpha = AutoAlphaGrid[i]
	}
	return ch, nil
}

// alphaLost is the share of the n inputs x whose label fewer than half of
// their copies overlaid by cfg keep.
func alphaLost(m *tfmodels.Model, cfg STRIPConfig, ov *tf.Tensor, x []float32, n int) (float64, error) {
	sg, err := newSTRIPGraph(m, cfg, func(o *tfmodels.Ops) tf.Output { return o.Const(ov) })
	if err != nil {
		return 0, err
	}
	defer sg.cg.Close()
	per := len(x) / n
	step := sg.cg.inputsPerRun(1 + cfg.Overlays)
	lost := 0
	for st := 0; st < n; st += step {
		e := min(st+step, n)
		res, err := sg.cg.run(x[st*per:e*per], e-st, nil, sg.cg.labels)
		if err != nil {
			return 0, err
		}
		rows, err := tensorInt32Rows(res[0]) // [1+M, B]
		if err != nil {
			return 0, err
		}
		for i := 0; i < e-st; i++ {
			keep := 0
			for c := 1; c < len(rows); c++ {
				if rows[c][i] == rows[0][i] {
					keep++
				}
			}
			if 2*keep < len(rows)-1 {
				lost++
			}
		}
	}
	return float64(lost) / float64(n), nil
}

// AlphaChoice reports how AlphaAuto chose the blend's weight (Config().Alpha);
// nil when the configuration fixed it.
func (s *STRIP) AlphaChoice() *AlphaChoice { return s.alpha }
