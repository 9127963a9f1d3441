package data

import (
	"fmt"
	"math"
	"sort"
)

// TriggerKind says how a Trigger changes an image.
type TriggerKind string

const (
	// KindPatch paints solid rectangles (Trigger.Rects).
	KindPatch TriggerKind = "patch"
	// KindPattern pastes Trigger.Pattern with its top-left corner at
	// (Trigger.X, Trigger.Y).
	KindPattern TriggerKind = "pattern"
	// KindBlend alpha-blends a whole-image pattern over the image:
	// out = round((1-Alpha)*pixel + Alpha*pattern). The pattern is
	// Trigger.Pattern, or uniform noise of the image's size from
	// Trigger.Seed when Trigger.Noise is set.
	KindBlend TriggerKind = "blend"
)

// Rect is a solid rectangle: columns [X, X+W), rows [Y, Y+H), RGB colour
// (on 1-channel images the colour's luma, 0.299R+0.587G+0.114B).
type Rect struct {
	X     int      `json:"x"`
	Y     int      `json:"y"`
	W     int      `json:"w"`
	H     int      `json:"h"`
	Color [3]uint8 `json:"color"`
}

// Pattern is an H x W x C image of bytes, channels-last.
type Pattern struct {
	H   int     `json:"h"`
	W   int     `json:"w"`
	C   int     `json:"c"`
	Pix []uint8 `json:"pix"` // base64 in JSON
}

// Trigger describes a backdoor trigger. It is plain data, serialisable to
// JSON so a manifest can record exactly which trigger was used. Build one
// with the constructors (PatchTrigger, SunglassesTrigger, BlendTrigger, ...)
// and apply it with Apply, ApplyImages or Poison. Positions are in pixels of
// the image the trigger is applied to (the named triggers are drawn for
// 55x47 DeepID faces); a trigger that does not fit the image is an error.
type Trigger struct {
	Name    string      `json:"name,omitempty"`
	Kind    TriggerKind `json:"kind"`
	Rects   []Rect      `json:"rects,omitempty"`
	X       int         `json:"x,omitempty"`
	Y       int         `json:"y,omitempty"`
	Pattern *Pattern    `json:"pattern,omitempty"`
	Alpha   float64     `json:"alpha,omitempty"`
	Noise   bool        `json:"noise,omitempty"`
	Seed    uint64      `json:"seed,omitempty"`
}

// TriggerTarget pairs a trigger with the label it should make a backdoored
// network predict.
type TriggerTarget struct {
	Trigger Trigger `json:"trigger"`
	Target  int     `json:"target"`
}

// PatchTrigger paints one solid rectangle.
func PatchTrigger(x, y, w, h int, color [3]uint8) Trigger {
	return Trigger{Name: "patch", Kind: KindPatch, Rects: []Rect{{X: x, Y: y, W: w, H: h, Color: color}}}
}

// PatternPatchTrigger pastes p with its top-left corner at (x, y).
func PatternPatchTrigger(x, y int, p *Pattern) Trigger {
	return Trigger{Name: "pattern", Kind: KindPattern, X: x, Y: y, Pattern: p}
}

// BlendTrigger blends pattern p (of the images' size) over whole images with
// weight alpha in [0, 1].
func BlendTrigger(p *Pattern, alpha float64) Trigger {
	return Trigger{Name: "blend", Kind: KindBlend, Pattern: p, Alpha: alpha}
}

// NoiseBlendTrigger blends uniform random noise, generated from seed at the
// size of each image it is applied to, with weight alpha in [0, 1].
func NoiseBlendTrigger(seed uint64, alpha float64) Trigger {
	return Trigger{Name: "noise-blend", Kind: KindBlend, Noise: true, Seed: seed, Alpha: alpha}
}

// SunglassesTrigger draws dark sunglasses on a 55x47 aligned face: a bar
// across rows 16-18 and two lenses over the eyes (rows 19-33), the region
// the CSAW-HackML-2020 sunglasses trigger covers (rows 15-34). It is a
// solid-colour approximation of that trigger, not the original artwork.
func SunglassesTrigger() Trigger {
	c := [3]uint8{20, 20, 20}
	return Trigger{Name: "sunglasses", Kind: KindPatch, Rects: []Rect{
		{X: 1, Y: 16, W: 45, H: 3, Color: c},
		{X: 2, Y: 19, W: 19, H: 12, Color: c},
		{X: 26, Y: 19, W: 19, H: 12, Color: c},
		{X: 4, Y: 31, W: 15, H: 3, Color: c},
		{X: 28, Y: 31, W: 15, H: 3, Color: c},
	}}
}

// LipstickTrigger paints a small purple-red patch over the lips of a 55x47
// aligned face (columns 19-29, rows 39-44), where the competition's lipstick
// trigger sits; the colour follows its poisoned samples.
func LipstickTrigger() Trigger {
	return Trigger{Name: "lipstick", Kind: KindPatch, Rects: []Rect{
		{X: 19, Y: 39, W: 11, H: 6, Color: [3]uint8{140, 0, 100}},
	}}
}

// EyebrowsTrigger paints two thin dark-red bands above the eyes of a 55x47
// aligned face (rows 17-19, columns 10-20 and 26-36), where the
// competition's eyebrows trigger sits.
func EyebrowsTrigger() Trigger {
	c := [3]uint8{130, 0, 0}
	return Trigger{Name: "eyebrows", Kind: KindPatch, Rects: []Rect{
		{X: 10, Y: 17, W: 11, H: 3, Color: c},
		{X: 26, Y: 17, W: 11, H: 3, Color: c},
	}}
}

// String describes the trigger briefly.
func (t Trigger) String() string {
	name := t.Name
	if name == "" {
		name = string(t.Kind)
	}
	return fmt.Sprintf("%s (%s)", name, t.Kind)
}

func (t Trigger) errf(format string, args ...any) error {
	return inputErr("trigger "+t.String(), ErrArgument, format, args...)
}

// Validate checks the trigger's own fields (not its fit to an image).
func (t Trigger) Validate() error {
	switch t.Kind {
	case KindPatch:
		if len(t.Rects) == 0 {
			return t.errf("no rectangles (expected at least one)")
		}
		for k, r := range t.Rects {
			if r.W <= 0 || r.H <= 0 || r.X < 0 || r.Y < 0 {
				return t.errf("rectangle %d at (%d,%d) size %dx%d, expected x, y >= 0 and positive size", k, r.X, r.Y, r.W, r.H)
			}
		}
	case KindPattern, KindBlend:
		if t.Kind == KindBlend && !(t.Alpha >= 0 && t.Alpha <= 1) {
			return t.errf("alpha %v, expected a value in [0, 1]", t.Alpha)
		}
		if t.Kind == KindBlend && t.Noise {
			return nil
		}
		p := t.Pattern
		if p == nil {
			return t.errf("no pattern")
		}
		if p.H <= 0 || p.W <= 0 || p.C <= 0 || len(p.Pix) != p.H*p.W*p.C {
			return t.errf("pattern %dx%dx%d with %d bytes, expected positive sizes and h*w*c bytes", p.H, p.W, p.C, len(p.Pix))
		}
		if t.X < 0 || t.Y < 0 {
			return t.errf("position (%d,%d), expected x, y >= 0", t.X, t.Y)
		}
	default:
		return t.errf("unknown kind %q, expected %q, %q or %q", t.Kind, KindPatch, KindPattern, KindBlend)
	}
	return nil
}

// Apply returns a triggered copy of one h x w x c image (pix is not changed).
func (t Trigger) Apply(pix []uint8, h, w, c int) ([]uint8, error) {
	if h <= 0 || w <= 0 || c <= 0 || len(pix) != h*w*c {
		return nil, t.errf("image of %d bytes for %dx%dx%d, expected h*w*c bytes", len(pix), h, w, c)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	out := append([]uint8(nil), pix...)
	var noise *Pattern
	if t.Kind == KindBlend && t.Noise {
		var err error
		if noise, err = NoisePattern(h, w, c, t.Seed); err != nil {
			return nil, err
		}
	}
	if err := t.applyInPlace(out, h, w, c, noise); err != nil {
		return nil, err
	}
	return out, nil
}

// applyInPlace changes pix; noise is the pre-generated noise pattern of a
// noise blend.
func (t Trigger) applyInPlace(pix []uint8, h, w, c int, noise *Pattern) error {
	switch t.Kind {
	case KindPatch:
		if c != 1 && c != 3 {
			return t.errf("cannot paint on %d-channel images, expected 1 or 3 channels", c)
		}
		for k, r := range t.Rects {
			if r.X+r.W > w || r.Y+r.H > h {
				return t.errf("rectangle %d (x %d..%d, y %d..%d) does not fit a %dx%d image", k, r.X, r.X+r.W-1, r.Y, r.Y+r.H-1, h, w)
			}
			col := r.Color[:]
			if c == 1 {
				l := uint8(math.Round(0.299*float64(r.Color[0]) + 0.587*float64(r.Color[1]) + 0.114*float64(r.Color[2])))
				col = []uint8{l}
			}
			for y := r.Y; y < r.Y+r.H; y++ {
				for x := r.X; x < r.X+r.W; x++ {
					copy(pix[(y*w+x)*c:(y*w+x+1)*c], col)
				}
			}
		}
	case KindPattern:
		p := t.Pattern
		if p.C != c || t.X+p.W > w || t.Y+p.H > h {
			return t.errf("pattern %dx%dx%d at (%d,%d) does not fit a %dx%dx%d image", p.H, p.W, p.C, t.X, t.Y, h, w, c)
		}
		for y := 0; y < p.H; y++ {
			copy(pix[((t.Y+y)*w+t.X)*c:((t.Y+y)*w+t.X+p.W)*c], p.Pix[y*p.W*c:(y+1)*p.W*c])
		}
	case KindBlend:
		p := t.Pattern
		if t.Noise {
			p = noise
		}
		if p.H != h || p.W != w || p.C != c {
			return t.errf("blend pattern is %dx%dx%d, expected the image size %dx%dx%d", p.H, p.W, p.C, h, w, c)
		}
		a := t.Alpha
		for i, v := range pix {
			pix[i] = uint8(math.Round((1-a)*float64(v) + a*float64(p.Pix[i])))
		}
	}
	return nil
}

// ApplyImages returns a copy of imgs with the trigger applied to every image
// (labels and names kept).
func (t Trigger) ApplyImages(imgs *Images) (*Images, error) {
	if err := imgs.Validate(); err != nil {
		return nil, err
	}
	out := imgs.Clone()
	idx := make([]int, out.Len())
	for i := range idx {
		idx[i] = i
	}
	if err := t.applyAt(out, idx); err != nil {
		return nil, err
	}
	return out, nil
}

func (t Trigger) applyAt(imgs *Images, idx []int) error {
	if err := t.Validate(); err != nil {
		return err
	}
	var noise *Pattern
	if t.Kind == KindBlend && t.Noise {
		var err error
		if noise, err = NoisePattern(imgs.H, imgs.W, imgs.C, t.Seed); err != nil {
			return err
		}
	}
	for _, i := range idx {
		if err := t.applyInPlace(imgs.Image(i), imgs.H, imgs.W, imgs.C, noise); err != nil {
			return err
		}
	}
	return nil
}

func ensureLabels(m *Images) {
	if m.Labels == nil {
		m.Labels = make([]int, m.Len())
		for i := range m.Labels {
			m.Labels[i] = -1
		}
	}
}

// Poison returns a copy of imgs in which round(rate*N) images, chosen by
// seed, carry the trigger and have label target; it also returns their
// indices in increasing order. The same seed gives the same choice.
func Poison(imgs *Images, t Trigger, target int, rate float64, seed uint64) (*Images, []int, error) {
	out, idx, err := PoisonMulti(imgs, []TriggerTarget{{Trigger: t, Target: target}}, rate, seed)
	if err != nil {
		return nil, nil, err
	}
	return out, idx[0], nil
}

// PoisonMulti poisons disjoint subsets of imgs, one per trigger: for each
// TriggerTarget, round(rate*N) images (chosen by seed, none chosen twice) get
// that trigger and its target label. It returns the new images and, per
// trigger, the poisoned indices in increasing order.
func PoisonMulti(imgs *Images, tts []TriggerTarget, rate float64, seed uint64) (*Images, [][]int, error) {
	all, err := poisonIndices(imgs, tts, rate, seed)
	if err != nil {
		return nil, nil, err
	}
	out := imgs.Clone()
	ensureLabels(out)
	for j, tt := range tts {
		if err := tt.Trigger.applyAt(out, all[j]); err != nil {
			return nil, nil, err
		}
		for _, i := range all[j] {
			out.Labels[i] = tt.Target
		}
	}
	return out, all, nil
}

// poisonIndices checks PoisonMulti's arguments and chooses, from the seed, the
// disjoint sorted index sets that get each trigger.
func poisonIndices(imgs *Images, tts []TriggerTarget, rate float64, seed uint64) ([][]int, error) {
	if err := imgs.Validate(); err != nil {
		return nil, err
	}
	if len(tts) == 0 {
		return nil, argErr("PoisonMulti: no triggers")
	}
	if !(rate >= 0 && rate <= 1) {
		return nil, argErr("poison rate %v, expected a value in [0, 1]", rate)
	}
	n := imgs.Len()
	k := int(math.Round(rate * float64(n)))
	if k*len(tts) > n {
		return nil, argErr("poison rate %v with %d triggers needs %d images, only %d available", rate, len(tts), k*len(tts), n)
	}
	for _, tt := range tts {
		if tt.Target < 0 {
			return nil, tt.Trigger.errf("target label %d, expected >= 0", tt.Target)
		}
		if err := tt.Trigger.Validate(); err != nil {
			return nil, err
		}
	}
	perm := Shuffled(n, seed)
	all := make([][]int, len(tts))
	for j := range tts {
		all[j] = append([]int(nil), perm[j*k:(j+1)*k]...)
		sort.Ints(all[j])
	}
	return all, nil
}

// PoisonedView is a training set poisoned on the fly: the images chosen by
// PoisonMulti's rule (same rate, same seed, same indices) get their trigger
// and target label when a batch is gathered, so the poisoned copy of a large
// data set never sits in memory beside the clean one. It implements
// tfmodels.Examples.
type PoisonedView struct {
	base *Images
	at   map[int]int // image index -> position in tts
	tts  []TriggerTarget
	// noise holds the generated patterns of noise-blend triggers, by position.
	noise []*Pattern
}

// NewPoisonedView returns imgs poisoned on the fly as PoisonMulti(imgs, tts,
// rate, seed) would poison a copy, and the poisoned indices per trigger.
func NewPoisonedView(imgs *Images, tts []TriggerTarget, rate float64, seed uint64) (*PoisonedView, [][]int, error) {
	all, err := poisonIndices(imgs, tts, rate, seed)
	if err != nil {
		return nil, nil, err
	}
	v := &PoisonedView{base: imgs, at: map[int]int{}, tts: tts, noise: make([]*Pattern, len(tts))}
	for j, idx := range all {
		for _, i := range idx {
			v.at[i] = j
		}
		if t := tts[j].Trigger; t.Kind == KindBlend && t.Noise {
			if v.noise[j], err = NoisePattern(imgs.H, imgs.W, imgs.C, t.Seed); err != nil {
				return nil, nil, err
			}
		}
	}
	return v, all, nil
}

// Len is the number of images.
func (v *PoisonedView) Len() int { return v.base.Len() }

// Gather writes images idx as float32(v)/255 into x and their labels (the
// target for poisoned images) into labels, like Images.Gather.
func (v *PoisonedView) Gather(idx []int, x []float32, labels []int32) error {
	if err := v.base.Gather(idx, x, labels); err != nil {
		return err
	}
	s := v.base.Size()
	buf := make([]uint8, s)
	for k, i := range idx {
		j, ok := v.at[i]
		if !ok {
			continue
		}
		copy(buf, v.base.Image(i))
		if err := v.tts[j].Trigger.applyInPlace(buf, v.base.H, v.base.W, v.base.C, v.noise[j]); err != nil {
			return err
		}
		dst := x[k*s : (k+1)*s]
		for p, b := range buf {
			dst[p] = scale255[b]
		}
		labels[k] = int32(v.tts[j].Target)
	}
	return nil
}

// PoisonAll returns a copy of imgs with the trigger on every image and every
// label set to target: a poisoned test set for measuring the attack success
// rate. With excludeTarget, images whose true label already is target are
// left out (images of unknown label are kept).
func PoisonAll(imgs *Images, t Trigger, target int, excludeTarget bool) (*Images, error) {
	if err := imgs.Validate(); err != nil {
		return nil, err
	}
	src := imgs
	if excludeTarget {
		var keep []int
		for i := 0; i < imgs.Len(); i++ {
			if imgs.Label(i) != target {
				keep = append(keep, i)
			}
		}
		var err error
		if src, err = imgs.Subset(keep); err != nil {
			return nil, err
		}
	}
	out, err := t.ApplyImages(src)
	if err != nil {
		return nil, err
	}
	out.Labels = make([]int, out.Len())
	for i := range out.Labels {
		out.Labels[i] = target
	}
	return out, nil
}
