package data

import "math"

// Split shuffles imgs with seed and cuts the shuffled order into parts of the
// given sizes (copies, in shuffled order). A size of -1 (at most one) takes
// all images not used by the other parts; the sizes may leave images unused.
// For the competition's protocol, e.g. a defender's clean validation set and
// a clean test set: Split(fashionTest, []int{5000, -1}, seed).
func Split(imgs *Images, sizes []int, seed uint64) ([]*Images, error) {
	if err := imgs.Validate(); err != nil {
		return nil, err
	}
	n := imgs.Len()
	total, rest := 0, -1
	for k, s := range sizes {
		switch {
		case s == -1 && rest == -1:
			rest = k
		case s < 0:
			return nil, argErr("Split: size %d of part %d is invalid (expected >= 0, or -1 once for the rest)", s, k)
		default:
			total += s
		}
	}
	if total > n {
		return nil, argErr("Split: sizes %v need %d images, only %d available", sizes, total, n)
	}
	sz := append([]int(nil), sizes...)
	if rest >= 0 {
		sz[rest] = n - total
	}
	perm := Shuffled(n, seed)
	out := make([]*Images, len(sz))
	pos := 0
	for k, s := range sz {
		part, err := imgs.Subset(perm[pos : pos+s])
		if err != nil {
			return nil, err
		}
		out[k] = part
		pos += s
	}
	return out, nil
}

// SplitFractions is Split with sizes given as fractions of imgs.Len(),
// rounded to the nearest integer; when the fractions sum to 1 (within 1e-9)
// the last part takes the rest, so every image is used exactly once.
func SplitFractions(imgs *Images, fractions []float64, seed uint64) ([]*Images, error) {
	n := imgs.Len()
	sum := 0.0
	sizes := make([]int, len(fractions))
	for k, f := range fractions {
		if !(f >= 0 && f <= 1) {
			return nil, argErr("SplitFractions: fraction %v of part %d is not in [0, 1]", f, k)
		}
		sum += f
		sizes[k] = int(math.Round(f * float64(n)))
	}
	if sum > 1+1e-9 {
		return nil, argErr("SplitFractions: fractions %v sum to %v, expected at most 1", fractions, sum)
	}
	if len(sizes) > 0 && math.Abs(sum-1) <= 1e-9 {
		sizes[len(sizes)-1] = -1
	}
	return Split(imgs, sizes, seed)
}

// Stratified returns a copy of the first perClass images of each label
// (labels 0..classes-1) in a seeded shuffled order: a class-balanced subset.
// Classes with fewer images contribute all they have.
func Stratified(imgs *Images, classes, perClass int, seed uint64) (*Images, error) {
	if err := imgs.Validate(); err != nil {
		return nil, err
	}
	if imgs.Labels == nil {
		return nil, argErr("Stratified: the images have no labels")
	}
	if classes <= 0 || perClass < 0 {
		return nil, argErr("Stratified: classes %d, perClass %d (expected > 0 and >= 0)", classes, perClass)
	}
	count := make([]int, classes)
	var idx []int
	for _, i := range Shuffled(imgs.Len(), seed) {
		l := imgs.Labels[i]
		if l >= 0 && l < classes && count[l] < perClass {
			count[l]++
			idx = append(idx, i)
		}
	}
	return imgs.Subset(idx)
}
