package data

import (
	"math"
	"math/rand/v2"
)

// newRand returns the package's deterministic generator for seed: PCG
// (math/rand/v2) with a fixed second word. Only Uint64 is used from it, so
// results do not depend on the algorithms of rand.Rand's helper methods.
func newRand(seed uint64) *rand.PCG {
	return rand.NewPCG(seed, 0x9e3779b97f4a7c15)
}

// uintn returns a uniform value in [0, n) (n > 0) by rejection sampling.
func uintn(r *rand.PCG, n uint64) uint64 {
	if n&(n-1) == 0 {
		return r.Uint64() & (n - 1)
	}
	limit := math.MaxUint64 - math.MaxUint64%n
	for {
		v := r.Uint64()
		if v < limit {
			return v % n
		}
	}
}

// Shuffled returns a permutation of 0..n-1 determined by seed (Fisher-Yates
// driven by PCG). The same (n, seed) gives the same permutation on every
// platform. For per-epoch shuffling use a different seed per epoch, e.g.
// Shuffled(n, seed+uint64(epoch)).
func Shuffled(n int, seed uint64) []int {
	if n <= 0 {
		return []int{}
	}
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	r := newRand(seed)
	for i := n - 1; i > 0; i-- {
		j := int(uintn(r, uint64(i+1)))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// NoisePattern returns an h x w x c pattern of uniform random bytes
// determined by seed.
func NoisePattern(h, w, c int, seed uint64) (*Pattern, error) {
	if h <= 0 || w <= 0 || c <= 0 {
		return nil, argErr("NoisePattern: invalid size %dx%dx%d", h, w, c)
	}
	r := newRand(seed)
	pix := make([]uint8, h*w*c)
	for i := 0; i < len(pix); i += 8 {
		v := r.Uint64()
		for k := 0; k < 8 && i+k < len(pix); k++ {
			pix[i+k] = uint8(v >> (8 * k))
		}
	}
	return &Pattern{H: h, W: w, C: c, Pix: pix}, nil
}
