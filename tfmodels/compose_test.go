package tfmodels_test

import (
	"slices"
	"testing"

	tf "github.com/galeone/tensorflow/tensorflow/go"

	"github.com/bbd-workbench/bbd/tfmodels"
)

// TestTriggerInFrontOfNet places a trainable [H, W, 1] pattern in front of a
// real BadNet (x' = clip(x + pattern), broadcast over the channels), minimises
// the cross-entropy of x' to one label over the pattern alone, and checks that
// the pattern moves, the loss falls and the net's weights do not change.
func TestTriggerInFrontOfNet(t *testing.T) {
	kf, err := tfmodels.ReadKerasH5(badnetPath("sunglasses"), nil)
	if err != nil {
		t.Fatal(err)
	}
	g := tf.NewGraph()
	in, err := tfmodels.AddInput(g, "input", [3]int{55, 47, 3})
	if err != nil {
		t.Fatal(err)
	}
	pattern, err := tfmodels.AddVariable(g, "trigger/pattern", []int64{55, 47, 1}, true)
	if err != nil {
		t.Fatal(err)
	}
	o := tfmodels.NewOps(g, "trigger")
	stamped := o.Op("ClipByValue", nil, o.Op("AddV2", nil, in, pattern.Value), o.Const(float32(0)), o.Const(float32(1)))
	labels := o.Placeholder("labels", tf.Int32, tf.MakeShape(-1))
	if err := o.Err(); err != nil {
		t.Fatal(err)
	}
	net, err := tfmodels.AddNet(g, kf.Architecture, stamped, tfmodels.NetOptions{Scope: "badnet", Weights: kf.Weights})
	if err != nil {
		t.Fatal(err)
	}
	loss, _ := o.CrossEntropy(net.Logits, labels, net.NumClasses)
	if err := o.Err(); err != nil {
		t.Fatal(err)
	}
	m, err := tfmodels.NewModel(g, in, []*tfmodels.Net{net}, tfmodels.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.AssignVariable(pattern, make([]float32, pattern.Size())); err != nil {
		t.Fatal(err)
	}
	w0, err := m.GetWeights()
	if err != nil {
		t.Fatal(err)
	}
	imgs := realFaces(t, "clean")
	x, _ := imgs.Float32(0, imgs.Len())
	xt, _ := tf.NewTensor(x)
	if err := xt.Reshape([]int64{int64(imgs.Len()), 55, 47, 3}); err != nil {
		t.Fatal(err)
	}
	const target = 7
	y := slices.Repeat([]int32{target}, imgs.Len())
	yt, _ := tf.NewTensor(y)
	z, err := m.Minimize(loss, []*tfmodels.Variable{pattern}, tfmodels.OptimizerSettings{Kind: tfmodels.Adam, LearningRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	var first, last float32
	for i := 0; i < 30; i++ {
		res, err := z.Step(map[tf.Output]*tf.Tensor{in: xt, labels: yt}, loss)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = res[0].Value().(float32)
		}
		last = res[0].Value().(float32)
	}
	t.Logf("loss to label %d: %.4f -> %.4f after %d steps", target, first, last, z.Steps())
	if !(last < first/2) {
		t.Errorf("the trigger did not learn: loss %g -> %g", first, last)
	}
	p, err := m.VariableValue(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(p, func(v float32) bool { return v != 0 }) {
		t.Error("the pattern did not move")
	}
	w1, err := m.GetWeights()
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range w0 {
		if !slices.Equal(w.Values, w1[name].Values) {
			t.Errorf("%s changed, but only the pattern was trained", name)
		}
	}
	// The same Minimizer comes back for the same loss and variables, reset.
	z2, err := m.Minimize(loss, []*tfmodels.Variable{pattern}, tfmodels.OptimizerSettings{Kind: tfmodels.Adam, LearningRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	if z2 != z || z2.Steps() != 0 {
		t.Errorf("Minimize again: same minimizer %v, steps %d; want the same one, reset", z2 == z, z2.Steps())
	}
	// Gradients of any output with respect to any tensor.
	grads, err := m.Gradients(loss, pattern.Value, in)
	if err != nil {
		t.Fatal(err)
	}
	if got := grads[0].Shape().String(); got != "[55, 47, 1]" {
		t.Errorf("d loss / d pattern has shape %s", got)
	}
	unrelated := tfmodels.NewOps(g, "unrelated").Const(float32(1))
	if _, err := m.Gradients(loss, unrelated); err == nil {
		t.Error("a gradient with respect to a tensor the loss does not depend on should be an error")
	}
}

// TestMasksStayZero: channel masks on a conv layer and kernel masks on conv
// and dense kernels keep what they zero at zero through training, and come
// back from export (see the exporter tests) unchanged.
func TestMasksStayZero(t *testing.T) {
	ex := realFaces(t, "clean")
	m, err := tfmodels.ImportKerasH5(badnetPath("anonymous_1"), nil, tfmodels.BuildOptions{
		ChannelMasks: []string{"conv_4"}, KernelMasks: []string{"conv_3", "fc_2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	zeroSome(t, m)
	before := maskedOutputs(t, m, ex)
	if _, err := m.Train(ex, tfmodels.TrainSettings{Optimizer: tfmodels.OptimizerSettings{Kind: tfmodels.SGD, LearningRate: 1e-3, Momentum: 0.9},
		Epochs: 2, BatchSize: 16, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	checkMasked(t, m, ex, before)
}

// zeroSome zeroes every third channel of conv_4 and every other kernel weight
// of conv_3 and fc_2.
func zeroSome(t *testing.T, m *tfmodels.Model) {
	t.Helper()
	w := tfmodels.Weights{}
	for _, name := range []string{"conv_4/channel_mask", "conv_3/kernel_mask", "fc_2/kernel_mask"} {
		v, err := m.Variable(name)
		if err != nil {
			t.Fatal(err)
		}
		vals := make([]float32, v.Size())
		for i := range vals {
			if (name == "conv_4/channel_mask" && i%3 != 0) || (name != "conv_4/channel_mask" && i%2 == 0) {
				vals[i] = 1
			}
		}
		w[name] = &tfmodels.WeightTensor{Shape: v.Shape, Values: vals}
	}
	if err := m.SetWeights(w); err != nil {
		t.Fatal(err)
	}
}

type maskedState struct {
	masks  tfmodels.Weights
	conv3K []float32 // conv_3's kernel where its mask is zero
}

func maskedOutputs(t *testing.T, m *tfmodels.Model, ex interface {
	Float32(int, int) ([]float32, error)
	Len() int
}) maskedState {
	t.Helper()
	w, err := m.GetWeights()
	if err != nil {
		t.Fatal(err)
	}
	st := maskedState{masks: tfmodels.Weights{}}
	for name, v := range w {
		if name == "conv_4/channel_mask" || name == "conv_3/kernel_mask" || name == "fc_2/kernel_mask" {
			st.masks[name] = v
		}
	}
	for i, mv := range w["conv_3/kernel_mask"].Values {
		if mv == 0 {
			st.conv3K = append(st.conv3K, w["conv_3/kernel"].Values[i])
		}
	}
	return st
}

// checkMasked checks the masks did not change, the pruned conv_3 weights did
// not move (their gradient is zero), and conv_4's masked channels output zero.
func checkMasked(t *testing.T, m *tfmodels.Model, ex interface {
	Float32(int, int) ([]float32, error)
	Len() int
}, before maskedState) {
	t.Helper()
	after := maskedOutputs(t, m, ex)
	for name, v := range before.masks {
		if !slices.Equal(v.Values, after.masks[name].Values) {
			t.Errorf("mask %s changed", name)
		}
	}
	if !slices.Equal(before.conv3K, after.conv3K) {
		t.Error("pruned conv_3 weights moved")
	}
	out, err := m.Layer("conv_4")
	if err != nil {
		t.Fatal(err)
	}
	x, _ := ex.Float32(0, ex.Len())
	res, err := m.Run(x, ex.Len(), out)
	if err != nil {
		t.Fatal(err)
	}
	nonzero := 0
	for i, v := range res[0] {
		c := i % 80
		if c%3 == 0 && v != 0 {
			t.Fatalf("conv_4 channel %d outputs %g although masked", c, v)
		}
		if c%3 != 0 && v != 0 {
			nonzero++
		}
	}
	if nonzero == 0 {
		t.Error("conv_4's unmasked channels are all zero too")
	}
}

// TestLabelsNoClasses: no classes give no labels (it once divided by zero).
func TestLabelsNoClasses(t *testing.T) {
	if got := tfmodels.Labels([]float32{0.2, 0.8}, 0); got != nil {
		t.Errorf("Labels(p, 0) = %v, want nil", got)
	}
	if got := tfmodels.Labels([]float32{0.2, 0.8, 0.9, 0.1}, 2); !slices.Equal(got, []int{1, 0}) {
		t.Errorf("Labels = %v, want [1 0]", got)
	}
}
