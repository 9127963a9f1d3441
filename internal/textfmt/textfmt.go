// Package textfmt formats numbers for people: the CLI's tables and the
// notebooks share it.
package textfmt

import (
	"strconv"
	"strings"
)

// Thousands formats n with comma thousands separators: 601643 -> "601,643".
func Thousands(n int) string {
	s := strconv.Itoa(n)
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return sign + b.String()
}
