package defence

import (
	"context"
	"errors"
	"fmt"

	"github.com/bbd-workbench/bbd/metrics"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// Examples is labelled data a defence reads in batches: the defender's clean
// data, or inputs to screen. *data.Images implements it.
type Examples = tfmodels.Examples

// InputDetector flags poisoned inputs at inference time.
type InputDetector interface {
	// Name is the method's name ("strip", "bbd-untargeted"...).
	Name() string
	// Detect scores n images x (channels-last, pixels in [0, 1]) and flags
	// the poisoned ones.
	Detect(ctx context.Context, x []float32, n int) (*Detection, error)
}

// Detection is what an InputDetector says of a batch of inputs.
type Detection struct {
	Method string `json:"method"`
	// Scores are the method's own per-input scores (STRIP: mean entropy).
	Scores []float64 `json:"scores"`
	// Direction says which end of the scores is poisoned (STRIP: lower).
	Direction metrics.Direction `json:"direction"`
	// Threshold separates the scores: an input is flagged when its score is
	// on the poisoned side of it (strictly below, or strictly above).
	Threshold float64 `json:"threshold"`
	// Flags are true for the inputs judged poisoned.
	Flags []bool `json:"flags"`
	// Labels are the labels the defended model gives each input, where the
	// detector computes them (nil otherwise).
	Labels []int `json:"labels,omitempty"`
	// Queries are the model evaluations spent on each input where they vary
	// (adaptive STRIP: the overlays scored); nil otherwise.
	Queries []int `json:"queries,omitempty"`
}

// Mitigator repairs a model: the result behaves like the original on clean
// inputs but no longer obeys the trigger.
type Mitigator interface {
	Name() string
	// Mitigate returns a repaired copy of m (m itself is left unchanged)
	// and a report of what was done, from the defender's clean data.
	Mitigate(ctx context.Context, m *tfmodels.Model, clean Examples) (*tfmodels.Model, Report, error)
}

// Report is a mitigator's account of a repair; each mitigator has its own
// concrete type (for JSON output).
type Report interface {
	// Method is the mitigator's name.
	Method() string
}

// Scanner inspects a model label by label for a backdoor.
type Scanner interface {
	Name() string
	Scan(ctx context.Context, m *tfmodels.Model, clean Examples) (*ScanReport, error)
}

// ScanReport is a scanner's per-label findings.
type ScanReport struct {
	Method string `json:"method"`
	// Labels has one finding per scanned label.
	Labels []LabelFinding `json:"labels"`
	// Flagged lists the labels judged backdoor targets.
	Flagged []int `json:"flagged"`
}

// LabelFinding is what a scanner found for one label.
type LabelFinding struct {
	Label int `json:"label"`
	// Score is the method's measure (Neural Cleanse: the reversed mask's L1
	// norm; small means suspicious).
	Score float64 `json:"score"`
	// AnomalyIndex is the label's outlier index among all labels (Neural
	// Cleanse: MAD-based; above 2 is flagged).
	AnomalyIndex float64 `json:"anomaly_index"`
	Flagged      bool    `json:"flagged"`
	// Exact is false where the scan stopped early and Score is a bound.
	Exact bool `json:"exact"`
}

// ErrConfig is wrapped by every Validate error.
var ErrConfig = errors.New("invalid defence configuration")

// configError names the bad field of a Config.
func configError(method, field string, expected string, found interface{}) error {
	return fmt.Errorf("%w: %s %s: expected %s, found %v", ErrConfig, method, field, expected, found)
}
