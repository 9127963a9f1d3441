package defence

import (
	"context"

	tf "github.com/galeone/tensorflow/tensorflow/go"

	"github.com/bbd-workbench/bbd/tfmodels"
)

type tfOutput = tf.Output

// eachBatch calls fn with consecutive batches of ex (m.BatchSize examples,
// channels-last float32, pixels in [0, 1], and their labels), stopping at the
// first error or when ctx is done.
func eachBatch(ctx context.Context, m *tfmodels.Model, ex Examples, fn func(x []float32, labels []int32) error) error {
	h, w, c := m.InputShape[0], m.InputShape[1], m.InputShape[2]
	bs := m.BatchSize
	if bs <= 0 {
		bs = tfmodels.DefaultBatchSize
	}
	total := ex.Len()
	x := make([]float32, bs*h*w*c)
	labels := make([]int32, bs)
	idx := make([]int, 0, bs)
	for start := 0; start < total; start += bs {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(bs, total-start)
		idx = idx[:0]
		for i := start; i < start+n; i++ {
			idx = append(idx, i)
		}
		if err := ex.Gather(idx, x[:n*h*w*c], labels[:n]); err != nil {
			return err
		}
		if err := fn(x[:n*h*w*c], labels[:n]); err != nil {
			return err
		}
	}
	return nil
}
