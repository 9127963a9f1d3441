package data

import "testing"

// The reference divides float pixel values by 255; float32(v)/255 must agree
// with the float64 route for every byte.
func TestScale255MatchesReference(t *testing.T) {
	for v := 0; v < 256; v++ {
		if a, b := scale255[v], float32(float64(v)/255); a != b {
			t.Errorf("v=%d: float32 division %v, float64 route %v", v, a, b)
		}
	}
}

func TestShuffledIsAPermutation(t *testing.T) {
	p := Shuffled(1000, 3)
	seen := make([]bool, 1000)
	for _, v := range p {
		if seen[v] {
			t.Fatal("repeated index")
		}
		seen[v] = true
	}
}
