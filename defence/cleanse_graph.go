package defence

import (
	"fmt"
	"math"

	tf "github.com/galeone/tensorflow/tensorflow/go"

	"github.com/bbd-workbench/bbd/tfmodels"
)

// cleanseGraph is one TensorFlow graph optimising the triggers of up to K
// labels at once: a batch of raw masks [K, H, W, Cm] and patterns [K, H, W,
// C], the first k (fed) of them stamped on the same B images into a [k*B, H,
// W, C] batch read by the frozen net, and Adam written out as ops so that
// every slot has its own step count (a slot is refilled with a new label
// while the others go on).
type cleanseGraph struct {
	m          *tfmodels.Model
	h, w, c    int
	cm         int // mask channels: 1 or C
	k          int // slots
	classes    int
	in         tf.Output
	maskRaw    *tfmodels.Variable
	patRaw     *tfmodels.Variable
	slotsVar   []*tfmodels.Variable // mask m, mask v, pattern m, pattern v
	active     tf.Output            // int32 [4]: {k', -1, -1, -1}, the slots in use
	batchShape tf.Output            // int32 [2]: {k', B}
	labels     tf.Output            // int32 [k'*B]
	costs      tf.Output            // float [k']
	lrt        tf.Output            // float [K]: Adam's bias-corrected learning rate per slot (0: frozen)
	ceSum      tf.Output            // float [k']: summed cross-entropy per slot
	hits       tf.Output            // float [k']: images labelled the target per slot
	reg        tf.Output            // float [k']: |m|_1 per slot (divided by Cm)
	train      *tf.Operation        // runs one Adam update of every slot

	// evaluation of given masks and patterns (no variables)
	evMask, evPat    tf.Output // float [k, H, W, Cm], [k, H, W, C]
	evShape, evLabel tf.Output
	evHits           tf.Output
	evK              tf.Output // int32 scalar: how many top logits
	evTopK           tf.Output // int32 [k*B, K]: the labels of the K largest logits
}

// newCleanseGraph builds the graph for arch with weights (frozen), K slots.
func newCleanseGraph(arch *tfmodels.Architecture, weights tfmodels.Weights, k int, mask3D bool, cfg *CleanseConfig) (cg *cleanseGraph, err error) {
	il, err := arch.InputLayer()
	if err != nil {
		return nil, err
	}
	if len(il.Shape) != 3 {
		return nil, fmt.Errorf("cleanse: input layer shape %v is not [H, W, C]", il.Shape)
	}
	h, w, c := il.Shape[0], il.Shape[1], il.Shape[2]
	cm := 1
	if mask3D {
		cm = c
	}
	g := tf.NewGraph()
	in, err := tfmodels.AddInput(g, "input", [3]int{h, w, c})
	if err != nil {
		return nil, err
	}
	cg = &cleanseGraph{h: h, w: w, c: c, cm: cm, k: k, in: in}
	if cg.maskRaw, err = tfmodels.AddVariable(g, "cleanse/mask_raw", []int64{int64(k), int64(h), int64(w), int64(cm)}, true); err != nil {
		return nil, err
	}
	if cg.patRaw, err = tfmodels.AddVariable(g, "cleanse/pattern_raw", []int64{int64(k), int64(h), int64(w), int64(c)}, true); err != nil {
		return nil, err
	}
	for _, name := range []string{"mask_m", "mask_v", "pattern_m", "pattern_v"} {
		shape := cg.maskRaw.Shape
		if name[0] == 'p' {
			shape = cg.patRaw.Shape
		}
		v, err := tfmodels.AddVariable(g, "cleanse/adam/"+name, shape, false)
		if err != nil {
			return nil, err
		}
		cg.slotsVar = append(cg.slotsVar, v)
	}
	o := tfmodels.NewOps(g, "cleanse")
	eps := cfg.Epsilon
	squash := func(raw tf.Output) tf.Output { // tanh(raw) / (2 - eps) + 0.5
		return o.Op("AddV2", nil, o.Op("Mul", nil, o.Op("Tanh", nil, raw), o.Const(float32(1/(2-eps)))), o.Const(float32(0.5)))
	}
	cg.active = o.Placeholder("active", tf.Int32, tf.MakeShape(4))
	zero4 := o.Const([]int32{0, 0, 0, 0})
	mask := squash(o.Op("Slice", nil, cg.maskRaw.Value, zero4, cg.active))
	pat := squash(o.Op("Slice", nil, cg.patRaw.Value, zero4, cg.active))
	stamped := cg.stamp(o, mask, pat)
	cg.batchShape = o.Placeholder("batch_shape", tf.Int32, tf.MakeShape(2))
	cg.labels = o.Placeholder("labels", tf.Int32, tf.MakeShape(-1))
	cg.costs = o.Placeholder("costs", tf.Float, tf.MakeShape(-1))
	cg.lrt = o.Placeholder("lr_t", tf.Float, tf.MakeShape(int64(k)))
	if err := o.Err(); err != nil {
		return nil, err
	}
	net, err := tfmodels.AddNet(g, arch, stamped, tfmodels.NetOptions{Scope: "net", Weights: weights, Frozen: true})
	if err != nil {
		return nil, err
	}
	cg.classes = net.NumClasses
	_, per := o.CrossEntropy(net.Logits, cg.labels, net.NumClasses)
	cg.ceSum = o.Sum(o.Op("Reshape", nil, per, cg.batchShape), 1)
	cg.hits = cg.hitsOf(o, net.Logits, cg.labels, cg.batchShape)
	cg.reg = o.Op("Mul", nil, o.Sum(o.Op("Abs", nil, mask), 1, 2, 3), o.Const(float32(1/float64(cm))))
	// Per slot: mean cross-entropy over the batch + cost * |m|_1; summed over
	// the slots, so that each slot's gradient is its own.
	bsz := o.Op("Cast", map[string]interface{}{"SrcT": tf.Int32, "DstT": tf.Float},
		o.Op("StridedSlice", map[string]interface{}{"shrink_axis_mask": int64(1)}, cg.batchShape, o.Const([]int32{1}), o.Const([]int32{2}), o.Const([]int32{1})))
	loss := o.Sum(o.Op("AddV2", nil, o.Op("RealDiv", nil, cg.ceSum, bsz), o.Op("Mul", nil, cg.costs, cg.reg)))

	// The frozen net is evaluated again on given masks and patterns.
	cg.evMask = o.Placeholder("eval_mask", tf.Float, tf.MakeShape(-1, int64(h), int64(w), int64(cm)))
	cg.evPat = o.Placeholder("eval_pattern", tf.Float, tf.MakeShape(-1, int64(h), int64(w), int64(c)))
	cg.evShape = o.Placeholder("eval_shape", tf.Int32, tf.MakeShape(2))
	cg.evLabel = o.Placeholder("eval_labels", tf.Int32, tf.MakeShape(-1))
	evStamped := cg.stamp(o, cg.evMask, cg.evPat)
	if err := o.Err(); err != nil {
		return nil, err
	}
	evNet, err := tfmodels.AddNet(g, arch, evStamped, tfmodels.NetOptions{Scope: "eval", Weights: weights, Frozen: true})
	if err != nil {
		return nil, err
	}
	cg.evHits = cg.hitsOf(o, evNet.Logits, cg.evLabel, cg.evShape)
	cg.evK = o.Placeholder("eval_k", tf.Int32, tf.ScalarShape())
	if top := o.Operation("TopKV2", map[string]interface{}{"sorted": true}, []tf.Input{evNet.Logits, cg.evK}); top != nil {
		cg.evTopK = top.Output(1)
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	// The evaluation copy reads a stamped tensor, not the placeholder: the
	// session runs without Grappler's remapper (see noRemapperSession).
	so, err := noRemapperSession()
	if err != nil {
		return nil, err
	}
	cg.m, err = tfmodels.NewModel(g, in, []*tfmodels.Net{net, evNet}, tfmodels.ModelOptions{Session: so})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			cg.m.Close()
		}
	}()
	grads, err := cg.m.Gradients(loss, cg.maskRaw.Value, cg.patRaw.Value)
	if err != nil {
		return nil, fmt.Errorf("cleanse: gradients: %w", err)
	}
	// Adam (Keras 2.2 form): m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
	// var -= lr_t * m / (sqrt(v) + eps), lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)
	// fed per slot.
	b1, b2 := float32(cfg.Beta1), float32(cfg.Beta2)
	lrt := o.Op("Reshape", nil, cg.lrt, o.Const([]int32{-1, 1, 1, 1}))
	var assigns []*tf.Operation
	for i, v := range []*tfmodels.Variable{cg.maskRaw, cg.patRaw} {
		mv, vv := cg.slotsVar[2*i], cg.slotsVar[2*i+1]
		gr := grads[i]
		nm := o.Op("AddV2", nil, o.Op("Mul", nil, mv.Value, o.Const(b1)), o.Op("Mul", nil, gr, o.Const(1-b1)))
		nv := o.Op("AddV2", nil, o.Op("Mul", nil, vv.Value, o.Const(b2)), o.Op("Mul", nil, o.Op("Square", nil, gr), o.Const(1-b2)))
		upd := o.Op("RealDiv", nil, o.Op("Mul", nil, nm, lrt), o.Op("AddV2", nil, o.Op("Sqrt", nil, nv), o.Const(float32(eps))))
		nvar := o.Op("Sub", nil, v.Value, upd)
		for _, a := range []struct {
			h tf.Output
			x tf.Output
		}{{mv.Handle, nm}, {vv.Handle, nv}, {v.Handle, nvar}} {
			assigns = append(assigns, o.Operation("AssignVariableOp", map[string]interface{}{"dtype": tf.Float}, []tf.Input{a.h, a.x}))
		}
	}
	cg.train = o.Operation("NoOp", nil, nil, assigns...)
	if err := o.Err(); err != nil {
		return nil, err
	}
	for _, v := range append([]*tfmodels.Variable{cg.maskRaw, cg.patRaw}, cg.slotsVar...) {
		if err := cg.m.AssignVariable(v, make([]float32, v.Size())); err != nil {
			return nil, err
		}
	}
	return cg, nil
}

// stamp builds x' = x + m * (p - x) for every mask m [k, H, W, Cm] and
// pattern p [k, H, W, C] on every image x [B, H, W, C]: [k*B, H, W, C],
// slot-major.
func (cg *cleanseGraph) stamp(o *tfmodels.Ops, mask, pat tf.Output) tf.Output {
	h, w, c, cm := int32(cg.h), int32(cg.w), int32(cg.c), int32(cg.cm)
	mB := o.Op("Reshape", nil, mask, o.Const([]int32{-1, 1, h, w, cm}))
	pB := o.Op("Reshape", nil, pat, o.Const([]int32{-1, 1, h, w, c}))
	xB := o.Op("Reshape", nil, cg.in, o.Const([]int32{1, -1, h, w, c}))
	x := o.Op("AddV2", nil, xB, o.Op("Mul", nil, mB, o.Op("Sub", nil, pB, xB)))
	return o.Op("Reshape", nil, x, o.Const([]int32{-1, h, w, c}))
}

// hitsOf counts per slot the images whose most probable label is the target.
func (cg *cleanseGraph) hitsOf(o *tfmodels.Ops, logits, labels, shape tf.Output) tf.Output {
	pred := o.Op("ArgMax", map[string]interface{}{"output_type": tf.Int32}, logits, o.Const(int32(1)))
	eq := o.Op("Cast", map[string]interface{}{"SrcT": tf.Bool, "DstT": tf.Float}, o.Op("Equal", nil, pred, labels))
	return o.Sum(o.Op("Reshape", nil, eq, shape), 1)
}

// Close frees the session.
func (cg *cleanseGraph) Close() { cg.m.Close() }

// squash is tanh(raw) / (2 - eps) + 0.5 in Go (the graph's mapping).
func squash(raw float32, eps float64) float32 {
	return float32(math.Tanh(float64(raw))/(2-eps) + 0.5)
}

// unsquash inverts squash for values in [0, 1] (clipped as visualizer.py's
// reset_state does).
func unsquash(v float64, eps float64) float32 {
	v = min(max(v, 0), 1)
	return float32(math.Atanh((v - 0.5) * (2 - eps)))
}
