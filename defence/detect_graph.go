package defence

import (
	"context"
	"fmt"
	"math"

	tf "github.com/galeone/tensorflow/tensorflow/go"
	pb "github.com/galeone/tensorflow/tensorflow/go/core/protobuf/for_core_protos_go_proto"
	"google.golang.org/protobuf/proto"

	"github.com/bbd-workbench/bbd/tfmodels"
)

// copyGraph is the graph piece the black-box input detectors (STRIP,
// SCALE-UP, TeCo) share: it turns a batch of B inputs into copies (the input
// itself, then K transformed copies: overlaid, scaled, corrupted), runs the
// defended model on all of them in one batch and exposes the probabilities
// of every copy, reshaped [1+K, B, classes] (copy-major), for the detector's
// own scoring ops. Nothing is copied per copy in Go: the copies exist only
// inside TensorFlow.
//
// Two ways to reach the model:
//
//   - white-box (a bbd model with variables): the net is built a second time
//     into this graph, frozen (weights as constants, the faster form), reading
//     the copies tensor directly. One Session.Run scores a batch.
//   - black-box (a foreign SavedModel, or a frozen bbd model, whose net cannot
//     be re-wired onto a new input): three Session.Runs per batch, passing
//     *tf.Tensor values between them without copying them into Go slices:
//     this graph makes the copies, the model's own session classifies them
//     (fed to its input placeholder), and this graph scores the
//     probabilities, which are fed to a placeholder standing for the net.
//     The model's graph is not modified.
type copyGraph struct {
	model   *tfmodels.Model // the defended model
	own     *tfmodels.Model // white-box: the model owning g, sess and the frozen net
	g       *tf.Graph
	sess    *tf.Session
	ops     *tfmodels.Ops
	input   tf.Output // the "input" placeholder, float32 [-1, H, W, C]
	copies  tf.Output // [(1+K)*B, H, W, C], copy-major, copy 0 the input itself
	probs   tf.Output // [(1+K)*B, classes]: the net's output (white-box) or a placeholder (black-box)
	perCopy tf.Output // probs as [1+K, B, classes]
	labels  tf.Output // int32 [1+K, B]: the label of every copy
	shape   [3]int
	classes int
	// images is the number of images per Session.Run the inputs per run are
	// chosen from.
	images   int
	whiteBox bool
}

// transformFunc adds the ops that turn the input batch x [B, H, W, C] into
// the copies [(1+K)*B, H, W, C], copy-major, copy 0 being x itself.
type transformFunc func(o *tfmodels.Ops, x tf.Output) tf.Output

// newCopyGraph builds the copies of m's input by transform and the
// probabilities of every copy; the caller adds its scoring ops with cg.ops and
// then calls open. images is the number of images per Session.Run (zero:
// tfmodels.DefaultBatchSize). remapper false turns Grappler's remapper off in
// a white-box session (see below and noRemapperSession).
func newCopyGraph(scope string, m *tfmodels.Model, images int, remapper bool, transform transformFunc) (cg *copyGraph, err error) {
	defer recoverTF(&err, "building the "+scope+" graph")
	if m == nil {
		return nil, fmt.Errorf("%s: no model", scope)
	}
	if images <= 0 {
		images = tfmodels.DefaultBatchSize
	}
	cg = &copyGraph{model: m, g: tf.NewGraph(), shape: m.InputShape, classes: m.NumClasses, images: images}
	if cg.classes <= 0 {
		return nil, fmt.Errorf("%s: the model has no class count", scope)
	}
	input, err := tfmodels.AddInput(cg.g, "input", m.InputShape)
	if err != nil {
		return nil, err
	}
	cg.input = input
	cg.ops = tfmodels.NewOps(cg.g, scope)
	o := cg.ops
	cg.copies = transform(o, input)
	if err := o.Err(); err != nil {
		return nil, err
	}
	// The copies keep the static shape [-1, H, W, C] (Grappler's optimizers
	// need it) without a Reshape or EnsureShape in front of the net: with
	// libtensorflow 2.21's oneDNN optimizations (on by default on x86),
	// Grappler's remapper mis-fuses DeepID's fc_2 MatMul + BiasAdd + add_1
	// AddV2 + activation_1 Relu whenever the net's input is a Reshape or an
	// EnsureShape of the placeholder: it leaves a node with an empty op, logs
	// "tfg_optimizer ... Node net/activation_1/Relu has an empty op name" and
	// "remapper failed: NOT_FOUND: Op type not registered ”", and Grappler
	// discards the whole remapper pass. (Reproduced in Python TensorFlow 2.21
	// on the exported filter's graph with the net's input rewired: the
	// placeholder, Identity, Mul, Tile, ConcatV2 or Unpack of it run
	// silently; Reshape or EnsureShape of it, even to its own shape, log the
	// errors.) The detectors' sessions and every loader of the exported
	// filter (Python TensorFlow, tfgo, tfmodels.LoadSavedModel) run with the
	// default session options, remapper on, so that they run the same
	// optimised graph and score bit for bit alike. TeCo's copies trip the
	// remapper even so (some pairs of its corruptions do: contrast with
	// brightness or impulse noise, blur with pixelation; contrast with
	// Gaussian noise does not), so its session keeps the remapper off.
	if !imageShape(cg.copies.Shape(), m.InputShape) {
		return nil, fmt.Errorf("%s: the copies have the static shape %v, expected [-1 %d %d %d]", scope, cg.copies.Shape(), m.InputShape[0], m.InputShape[1], m.InputShape[2])
	}
	cg.whiteBox = m.WhiteBox() && !m.Frozen() && m.Arch != nil
	if cg.whiteBox {
		w, err := m.GetWeights()
		if err != nil {
			return nil, err
		}
		masks := m.Masks()
		net, err := tfmodels.AddNet(cg.g, m.Arch, cg.copies, tfmodels.NetOptions{Scope: "net", Weights: w, Frozen: true,
			Masks: masks[tfmodels.MaskOutput], ChannelMasks: masks[tfmodels.MaskChannel], KernelMasks: masks[tfmodels.MaskKernel]})
		if err != nil {
			return nil, err
		}
		cg.probs = net.Probabilities
		var so *tf.SessionOptions
		if !remapper {
			if so, err = noRemapperSession(); err != nil {
				return nil, err
			}
		}
		cg.own, err = tfmodels.NewModel(cg.g, input, []*tfmodels.Net{net}, tfmodels.ModelOptions{Session: so})
		if err != nil {
			return nil, err
		}
		cg.sess = cg.own.Session
	} else {
		cg.probs = o.Placeholder(scope+"/model_probabilities", tf.Float, tf.MakeShape(-1, int64(cg.classes)))
	}
	// [1+K, B, classes], B read from the input's shape.
	b := o.Op("Slice", nil, o.Op("Shape", map[string]interface{}{"out_type": tf.Int32}, input), o.Const([]int32{0}), o.Const([]int32{1}))
	shape := o.Op("ConcatV2", nil, tf.OutputList{o.Const([]int32{-1}), b, o.Const([]int32{int32(cg.classes)})}, o.Const(int32(0)))
	cg.perCopy = o.Op("Reshape", nil, cg.probs, shape)
	cg.labels = o.Op("ArgMax", map[string]interface{}{"output_type": tf.Int32}, cg.perCopy, o.Const(int32(2)))
	if err := o.Err(); err != nil {
		cg.Close()
		return nil, err
	}
	return cg, nil
}

// imageShape reports whether s is statically [?, H, W, C] of shape.
func imageShape(s tf.Shape, shape [3]int) bool {
	if s.NumDimensions() != 4 {
		return false
	}
	for i, d := range shape {
		if s.Size(i+1) != int64(d) {
			return false
		}
	}
	return true
}

// noRemapperSession returns session options with Grappler's remapper off,
// for graphs on which the remapper mis-fuses the net (a net reading a
// Reshape or EnsureShape of the input, TeCo's copies: see newCopyGraph;
// Neural Cleanse's evaluation copy). It changes no result: on such graphs
// the remapper pass fails and is discarded anyway (TF_ENABLE_ONEDNN_OPTS=0
// silences the errors too). STRIP's and SCALE-UP's copy graphs avoid those
// ops instead and run with the default options, as the exported STRIP
// filter's loaders do.
func noRemapperSession() (*tf.SessionOptions, error) {
	cfg, err := proto.Marshal(&pb.ConfigProto{GraphOptions: &pb.GraphOptions{RewriteOptions: &pb.RewriterConfig{Remapping: pb.RewriterConfig_OFF}}})
	if err != nil {
		return nil, err
	}
	return &tf.SessionOptions{Config: cfg}, nil
}

// open opens the session of a black-box copy graph, once every op is added.
func (cg *copyGraph) open() error {
	if cg.sess != nil {
		return nil
	}
	s, err := tf.NewSession(cg.g, nil)
	if err != nil {
		return fmt.Errorf("opening a session: %w", err)
	}
	cg.sess = s
	return nil
}

// inputsPerRun is the number of inputs scored per Session.Run when each
// input has copies images (itself included): at least one.
func (cg *copyGraph) inputsPerRun(copies int) int {
	return max(1, cg.images/max(1, copies))
}

// run runs fetches on n inputs x (n*H*W*C values), with extra feeds.
func (cg *copyGraph) run(x []float32, n int, feeds map[tf.Output]*tf.Tensor, fetches ...tf.Output) (res []*tf.Tensor, err error) {
	defer recoverTF(&err, "running the detector")
	if cg.sess == nil {
		return nil, fmt.Errorf("running the detector: closed")
	}
	t, err := imageTensor(x, n, cg.shape)
	if err != nil {
		return nil, err
	}
	all := map[tf.Output]*tf.Tensor{cg.input: t}
	for k, v := range feeds {
		all[k] = v
	}
	if cg.whiteBox {
		return cg.sess.Run(all, fetches, nil)
	}
	copies, err := cg.sess.Run(all, []tf.Output{cg.copies}, nil)
	if err != nil {
		return nil, fmt.Errorf("making the copies: %w", err)
	}
	probs, err := cg.model.Session.Run(map[tf.Output]*tf.Tensor{cg.model.Input: copies[0]}, []tf.Output{cg.model.Probabilities}, nil)
	if err != nil {
		return nil, fmt.Errorf("running the model on the copies: %w", err)
	}
	if sh := probs[0].Shape(); len(sh) != 2 || sh[1] != int64(cg.classes) {
		return nil, fmt.Errorf("running the model on the copies: probabilities of shape %v, expected [-1, %d]", sh, cg.classes)
	}
	all[cg.probs] = probs[0]
	return cg.sess.Run(all, fetches, nil)
}

// Close frees the graph's session (not the defended model's).
func (cg *copyGraph) Close() error {
	if cg == nil {
		return nil
	}
	var err error
	switch {
	case cg.own != nil:
		err = cg.own.Close()
	case cg.sess != nil:
		err = cg.sess.Close()
	}
	cg.own, cg.sess = nil, nil
	return err
}

// imageTensor checks x (n images of shape, finite values) and makes a tensor.
func imageTensor(x []float32, n int, shape [3]int) (*tf.Tensor, error) {
	per := shape[0] * shape[1] * shape[2]
	if n <= 0 || len(x) != n*per {
		return nil, fmt.Errorf("detector input: expected %d images of %dx%dx%d (%d values), found %d values", n, shape[0], shape[1], shape[2], n*per, len(x))
	}
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("detector input: non-finite pixel value %v in image %d", v, i/per)
		}
	}
	t, err := tf.NewTensor(x)
	if err == nil {
		err = t.Reshape([]int64{int64(n), int64(shape[0]), int64(shape[1]), int64(shape[2])})
	}
	return t, err
}

// broadcastCopies returns x [B, H, W, C] combined with each of k per-copy
// tensors c [K, H, W, C] (or [K, 1, 1, 1]) by f, copy-major, after x itself:
// [(1+K)*B, H, W, C]. The combination happens inside TensorFlow: copy i of
// the K*B combines x[i mod B] and c[i div B], both gathered, and f works
// elementwise on the two.
//
// Gathering rather than broadcasting [1, B, ...] against [K, 1, ...] and
// reshaping keeps the copies' static shape [-1, H, W, C] with no Reshape or
// EnsureShape in front of the net: a net fed by either trips Grappler's
// oneDNN remapper (see newCopyGraph), which made the exported STRIP filter log
// errors in Python TensorFlow, tfgo and bbd.
func broadcastCopies(o *tfmodels.Ops, x, c tf.Output, f func(xb, cb tf.Output) tf.Output) tf.Output {
	dim0 := func(t tf.Output) tf.Output { // scalar int32: t's first dimension
		return o.Op("GatherV2", nil, o.Op("Shape", map[string]interface{}{"out_type": tf.Int32}, t), o.Const(int32(0)), o.Const(int32(0)))
	}
	b := dim0(x)
	i := o.Op("Range", nil, o.Const(int32(0)), o.Op("Mul", nil, dim0(c), b), o.Const(int32(1)))
	xg := o.Op("GatherV2", nil, x, o.Op("FloorMod", nil, i, b), o.Const(int32(0))) // [K*B, H, W, C]
	cg := o.Op("GatherV2", nil, c, o.Op("FloorDiv", nil, i, b), o.Const(int32(0))) // [K*B, ...]
	return o.Op("ConcatV2", nil, tf.OutputList{x, f(xg, cg)}, o.Const(int32(0)))
}

// tensorFloat32s returns the values of a float32 tensor of rank 1 or 2,
// row-major.
func tensorFloat32s(t *tf.Tensor) ([]float32, error) {
	switch v := t.Value().(type) {
	case []float32:
		return v, nil
	case [][]float32:
		var out []float32
		for _, r := range v {
			out = append(out, r...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("expected a float32 tensor of rank 1 or 2, found %v %v", t.DataType(), t.Shape())
}

// tensorInt32Rows returns an int32 tensor of rank 2.
func tensorInt32Rows(t *tf.Tensor) ([][]int32, error) {
	v, ok := t.Value().([][]int32)
	if !ok {
		return nil, fmt.Errorf("expected an int32 tensor of rank 2, found %v %v", t.DataType(), t.Shape())
	}
	return v, nil
}

// recoverTF turns a panic of the TensorFlow bindings into an error.
func recoverTF(err *error, what string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: tensorflow: %v", what, r)
	}
}

// checkContext returns ctx's error, if it is done.
func checkContext(ctx context.Context) error {
	if ctx == nil {
		return nil
	}
	return ctx.Err()
}
