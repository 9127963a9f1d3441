package textfmt_test

import (
	"fmt"
	"testing"

	"github.com/bbd-workbench/bbd/internal/textfmt"
)

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 601643: "601,643", -1234567: "-1,234,567"} {
		if got := textfmt.Thousands(n); got != want {
			t.Errorf("Thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func ExampleThousands() {
	fmt.Println(textfmt.Thousands(601643))
	// Output: 601,643
}
