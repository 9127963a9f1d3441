package data

// Batch is one batch of images converted for a network.
type Batch struct {
	// X holds the images as float32(v)/255, shape [N, H, W, C].
	X []float32
	// Labels holds the labels (-1 = unknown), one per image.
	Labels []int32
	// Indices are the positions of the batch's images in the source Images.
	Indices []int
	// N, H, W, C is the shape of X.
	N, H, W, C int
}

// OneHot returns the labels one-hot encoded, shape [N, classes]. A label
// outside [0, classes) is an error.
func (b *Batch) OneHot(classes int) ([]float32, error) {
	if classes <= 0 {
		return nil, argErr("OneHot: %d classes, expected > 0", classes)
	}
	out := make([]float32, len(b.Labels)*classes)
	for i, l := range b.Labels {
		if l < 0 || int(l) >= classes {
			return nil, argErr("OneHot: label %d of image %d is outside [0, %d)", l, b.Indices[i], classes)
		}
		out[i*classes+int(l)] = 1
	}
	return out, nil
}

// Batcher walks an Images in batches, in a given order (for example
// Shuffled(imgs.Len(), seed+uint64(epoch)) for one training epoch). The last
// batch may be smaller.
type Batcher struct {
	imgs  *Images
	order []int
	size  int
	pos   int
}

// NewBatcher returns a Batcher over imgs with batches of size images. order
// lists the image indices to visit; nil means 0..Len()-1 in order.
func NewBatcher(imgs *Images, size int, order []int) (*Batcher, error) {
	if err := imgs.Validate(); err != nil {
		return nil, err
	}
	if size <= 0 {
		return nil, argErr("batch size %d, expected > 0", size)
	}
	n := imgs.Len()
	if order == nil {
		order = make([]int, n)
		for i := range order {
			order[i] = i
		}
	}
	for _, i := range order {
		if i < 0 || i >= n {
			return nil, argErr("batch order holds index %d, out of range for %d images", i, n)
		}
	}
	return &Batcher{imgs: imgs, order: order, size: size}, nil
}

// Len returns the number of batches.
func (b *Batcher) Len() int { return (len(b.order) + b.size - 1) / b.size }

// Next returns the next batch, or false at the end. Each batch is freshly
// allocated.
func (b *Batcher) Next() (Batch, bool) {
	if b.pos >= len(b.order) {
		return Batch{}, false
	}
	end := min(b.pos+b.size, len(b.order))
	idx := b.order[b.pos:end:end]
	b.pos = end
	m := b.imgs
	s := m.Size()
	out := Batch{X: make([]float32, 0, len(idx)*s), Labels: make([]int32, len(idx)), Indices: idx, N: len(idx), H: m.H, W: m.W, C: m.C}
	for k, i := range idx {
		for _, v := range m.Pix[i*s : (i+1)*s] {
			out.X = append(out.X, scale255[v])
		}
		out.Labels[k] = int32(m.Label(i))
	}
	return out, true
}

// Reset starts again from the first batch.
func (b *Batcher) Reset() { b.pos = 0 }
