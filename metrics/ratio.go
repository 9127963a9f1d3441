package metrics

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Errors wrapped by the errors of this package; test with errors.Is.
var (
	// ErrLength: slices that must have one entry per input differ in length.
	ErrLength = errors.New("mismatched lengths")
	// ErrEmpty: a figure needs inputs of a kind there are none of.
	ErrEmpty = errors.New("no inputs")
	// ErrRange: an argument is out of its range.
	ErrRange = errors.New("out of range")
)

func lengthErr(fn string, what1 string, n1 int, what2 string, n2 int) error {
	return fmt.Errorf("metrics.%s: %d %s for %d %s: %w", fn, n1, what1, n2, what2, ErrLength)
}

// Ratio is a counted figure: Hits of Total inputs. Its JSON form is
// {"hits": 4581, "total": 5000, "value": 0.9162}; "value" is informative and
// ignored when decoding.
type Ratio struct {
	Hits  int `json:"hits"`
	Total int `json:"total"`
}

// Value is Hits / Total, and 0 when Total is 0 (a figure over no inputs is
// reported as 0 with Total 0, never NaN).
func (r Ratio) Value() float64 {
	if r.Total == 0 {
		return 0
	}
	return float64(r.Hits) / float64(r.Total)
}

// Add returns the ratio over the inputs of both: hits and totals summed, e.g.
// to accumulate a figure batch by batch.
func (r Ratio) Add(o Ratio) Ratio {
	return Ratio{Hits: r.Hits + o.Hits, Total: r.Total + o.Total}
}

// String formats the ratio as "0.9162 (4581/5000)".
func (r Ratio) String() string {
	return strconv.FormatFloat(r.Value(), 'f', 4, 64) + " (" + strconv.Itoa(r.Hits) + "/" + strconv.Itoa(r.Total) + ")"
}

// Format makes a Ratio print as its String with %v and %s, and as its Value
// with the floating-point verbs (%f, %.4f, %-8.3f, %e, %g...), so that
// fmt.Printf("%.4f", r) prints "0.9162".
func (r Ratio) Format(f fmt.State, verb rune) {
	switch verb {
	case 'e', 'E', 'f', 'F', 'g', 'G', 'x', 'X', 'b':
		fmt.Fprintf(f, fmt.FormatString(f, verb), r.Value())
	case 'v', 's':
		io.WriteString(f, r.String())
	default:
		fmt.Fprintf(f, "%%!%c(metrics.Ratio=%s)", verb, r.String())
	}
}

// MarshalJSON adds the value to the counts.
func (r Ratio) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Hits  int     `json:"hits"`
		Total int     `json:"total"`
		Value float64 `json:"value"`
	}{r.Hits, r.Total, r.Value()})
}
