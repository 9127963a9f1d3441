package defence

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/internal/testzoo"
	"github.com/bbd-workbench/bbd/tfmodels"
	"github.com/bbd-workbench/bbd/zoo"
)

// acZooTrainingSet returns the training set a BadNet of the zoo was trained
// on, poisoned on the fly, and which examples are poisoned (zoo.TrainingSet).
func acZooTrainingSet(t *testing.T, cfg zoo.Config, badnet string) (tfmodels.Examples, []bool) {
	t.Helper()
	view, idx, err := zoo.TrainingSet(cfg, badnet)
	if err != nil {
		t.Fatal(err)
	}
	poisoned := make([]bool, view.Len())
	for _, ii := range idx {
		for _, i := range ii {
			poisoned[i] = true
		}
	}
	return view, poisoned
}

// TestActivationClusteringZoo is the acceptance test: activation clustering
// of the reduced zoo's sunglasses BadNet on its own poisoned training set
// flags the target class, and only it, with recall >= 0.9 at precision >=
// 0.8 of the poisoned examples.
func TestActivationClusteringZoo(t *testing.T) {
	dir, man := testzoo.Reduced(t)
	const badnet = "sunglasses"
	view, poisoned := acZooTrainingSet(t, man.Config, badnet)
	for _, b := range man.BadNets {
		if b.Name == badnet && b.Poisoned != acCount(poisoned) {
			t.Fatalf("rebuilt training set has %d poisoned images, the manifest %d", acCount(poisoned), b.Poisoned)
		}
	}
	loaded, err := tfmodels.LoadSavedModel(filepath.Join(dir, badnet), tfmodels.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	m, err := loaded.Freeze()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ac, err := NewActivationClustering(ActivationClusteringConfig{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r, err := ac.Run(context.Background(), m, view)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Evaluate(poisoned); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d examples, layer %s (%d units), %d passes, %v", badnet, r.Examples, r.Layer, r.Units, r.Passes, time.Since(start).Round(time.Millisecond))
	for _, c := range r.Classes {
		t.Logf("class %d: size %d, clusters %v, silhouette %.3f, outlying %.2f, poisoned %v, explained %.2f, %+v",
			c.Class, c.Size, c.ClusterSizes, c.Silhouette, c.Outlying, c.Poisoned, c.Explained, *c.Detection)
	}
	e := r.Evaluation
	t.Logf("overall: precision %v, recall %v", e.Precision, e.Recall)
	if r.Layer != DeepIDActivationLayer || r.Units != 960 {
		t.Errorf("layer %s with %d units, expected flatten_2 with 960", r.Layer, r.Units)
	}
	target := 0 // the sunglasses BadNet's target (zoo.Specs)
	for _, a := range mustAttacks(t, man, badnet) {
		target = a.Target
	}
	if len(r.Flagged) != 1 || r.Flagged[0] != target {
		t.Errorf("flagged classes %v, expected only the target %d", r.Flagged, target)
	}
	tc, ok := r.ClassReport(target)
	if !ok {
		t.Fatalf("no class %d", target)
	}
	d := *tc.Detection
	prec, rec := precision(d).Value(), d.TPR().Value()
	t.Logf("target class %d: precision %.4f (%d/%d), recall %.4f (%d/%d)", target, prec, d.TP, d.TP+d.FP, rec, d.TP, d.TP+d.FN)
	if rec < 0.9 || prec < 0.8 {
		t.Errorf("target class: recall %.4f, precision %.4f; expected >= 0.9 and >= 0.8", rec, prec)
	}
	if e.Recall.Value() < 0.9 || e.Precision.Value() < 0.8 {
		t.Errorf("overall: recall %v, precision %v; expected >= 0.9 and >= 0.8", e.Recall, e.Precision)
	}
	if r.FlaggedExamples != len(r.FlaggedIndices()) || r.FlaggedExamples != d.TP+d.FP {
		t.Errorf("flagged examples %d, indices %d, target-class flags %d", r.FlaggedExamples, len(r.FlaggedIndices()), d.TP+d.FP)
	}
}

func acCount(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

// acRandomRows returns n rows of d correlated activations with a decaying
// spectrum.
func acRandomRows(rng *rand.Rand, n, d int) []float32 {
	rows := make([]float32, n*d)
	scale := make([]float64, d)
	for j := range scale {
		scale[j] = math.Pow(0.8, float64(j%40)) + 0.01
	}
	mix := make([]float64, d*d)
	for i := range mix {
		mix[i] = rng.NormFloat64() / math.Sqrt(float64(d))
	}
	for i := 0; i < n; i++ {
		z := make([]float64, d)
		for j := range z {
			z[j] = rng.NormFloat64() * scale[j]
		}
		for j := 0; j < d; j++ {
			var s float64
			for t := 0; t < d; t++ {
				s += mix[j*d+t] * z[t]
			}
			rows[i*d+j] = float32(s + 3)
		}
	}
	return rows
}

// TestTopEigenSubspaceMatchesFull: subspace iteration finds the top
// eigenpairs a full decomposition finds.
func TestTopEigenSubspaceMatchesFull(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, d, k = 600, 300, 10
	acc := &classAcc{}
	acc.init(d)
	acc.cov.s = mat.NewSymDense(d, nil) // scatter from the start
	for i, rows := 0, acRandomRows(rng, n, d); i < n; i++ {
		acc.add(rows[i*d : (i+1)*d])
	}
	cov := acc.cov.covariance()
	vals, vecs := topEigen(cov, k, 7)
	var e mat.EigenSym
	if !e.Factorize(cov, true) {
		t.Fatal("factorize")
	}
	all := e.Values(nil)
	var full mat.Dense
	e.VectorsTo(&full)
	for i := 0; i < k; i++ {
		want := all[d-1-i]
		if math.Abs(vals[i]-want) > 1e-8*all[d-1] {
			t.Errorf("eigenvalue %d: %g, full decomposition %g", i, vals[i], want)
		}
		var dot float64
		for j := 0; j < d; j++ {
			dot += vecs.At(j, i) * full.At(j, d-1-i)
		}
		if math.Abs(math.Abs(dot)-1) > 1e-6 {
			t.Errorf("eigenvector %d: |cos| %.9f with the full decomposition's", i, math.Abs(dot))
		}
	}
}

// TestGramPathMatchesCovariance: a class analysed through the Gram matrix
// of its kept rows (n <= d, one pass) gets the projections the covariance
// path (second pass) gives.
func TestGramPathMatchesCovariance(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n, d, k = 90, 150, 10
	rows := acRandomRows(rng, n, d)
	gram, cov := &classAcc{}, &classAcc{}
	gram.init(d)
	cov.init(d)
	cov.cov.s = mat.NewSymDense(d, nil)
	for i := 0; i < n; i++ {
		gram.add(rows[i*d : (i+1)*d])
		cov.add(rows[i*d : (i+1)*d])
	}
	if gram.cov.s != nil || len(gram.rows) != n*d {
		t.Fatal("the small class did not keep its rows")
	}
	pg, err := gram.fit(k, 1)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := cov.fit(k, 1)
	if err != nil {
		t.Fatal(err)
	}
	if pg.proj == nil || pc.proj != nil {
		t.Fatal("expected projections from the Gram path only")
	}
	if math.Abs(pg.explained-pc.explained) > 1e-9 {
		t.Errorf("explained variance %g (Gram) vs %g (covariance)", pg.explained, pc.explained)
	}
	z := make([]float64, k)
	worst := 0.0
	for i := 0; i < n; i++ {
		pc.project(rows[i*d:(i+1)*d], z)
		for t := 0; t < k; t++ {
			worst = math.Max(worst, math.Abs(z[t]-pg.proj[i*k+t]))
		}
	}
	if worst > 1e-6 {
		t.Errorf("projections differ by up to %g", worst)
	}
	// A class growing past d switches to its scatter matrix, keeping the
	// same statistics.
	big, ref := &classAcc{}, &classAcc{}
	big.init(20)
	ref.init(20)
	ref.cov.s = mat.NewSymDense(20, nil)
	more := acRandomRows(rng, 50, 20)
	for i := 0; i < 50; i++ {
		big.add(more[i*20 : (i+1)*20])
		ref.add(more[i*20 : (i+1)*20])
	}
	if big.rows != nil || big.cov.s == nil {
		t.Fatal("no switch to the scatter matrix")
	}
	a, b := big.cov.covariance(), ref.cov.covariance()
	if !mat.EqualApprox(a, b, 1e-9) {
		t.Error("scatter matrices differ after the switch")
	}
}

// TestSilhouetteAndKMeans: two well separated groups on a line; the exact
// silhouette by hand, and a sampled one close to it.
func TestSilhouetteAndKMeans(t *testing.T) {
	z := []float64{0, 1, 10, 11}
	assign, cent := kMeans(z, 1, 2, 3, 100, rand.New(rand.NewPCG(1, 1)))
	if assign[0] != assign[1] || assign[2] != assign[3] || assign[0] == assign[2] {
		t.Fatalf("assignments %v", assign)
	}
	if c := cent[assign[0]][0]; c != 0.5 {
		t.Errorf("centroid %g, expected 0.5", c)
	}
	s, used := silhouette(z, 1, assign, 2, 100, nil)
	want := ((10.5-1)/10.5 + (9.5-1)/9.5) / 2
	if math.Abs(s-want) > 1e-12 || used != 4 {
		t.Errorf("silhouette %.12f over %d points, expected %.12f over 4", s, used, want)
	}
	// Many points: the sampled score is near the exact one.
	rng := rand.New(rand.NewPCG(2, 2))
	var big []float64
	for i := 0; i < 3000; i++ {
		c := float64(i%2) * 4
		big = append(big, c+rng.NormFloat64(), rng.NormFloat64())
	}
	assign, _ = kMeans(big, 2, 2, 2, 100, rng)
	exact, _ := silhouette(big, 2, assign, 2, 5000, rng)
	sampled, n := silhouette(big, 2, assign, 2, 500, rng)
	if n != 500 || math.Abs(exact-sampled) > 0.03 {
		t.Errorf("sampled silhouette %.4f over %d points, exact %.4f", sampled, n, exact)
	}
	// One cluster only: 0.
	if s, _ := silhouette(z, 1, []int{0, 0, 0, 0}, 2, 10, nil); s != 0 {
		t.Errorf("silhouette of one cluster %g", s)
	}
}

func TestActivationClusteringConfig(t *testing.T) {
	d := DefaultActivationClusteringConfig()
	if d.Components != 10 || d.Clusters != 2 || d.Analysis != ACSilhouette || d.SizeThreshold != 0.35 || d.SegmentBy != SegmentByLabel {
		t.Errorf("defaults %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Error(err)
	}
	for _, bad := range []ActivationClusteringConfig{
		{Clusters: 1}, {Components: -1}, {Analysis: "distance"}, {SizeThreshold: 1.5},
		{SilhouetteThreshold: -0.1}, {SegmentBy: "truth"}, {Restarts: -2}, {SilhouetteSample: 1},
	} {
		err := bad.Validate()
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v, expected ErrConfig", bad, err)
		}
		if _, err := NewActivationClustering(bad); !errors.Is(err, ErrConfig) {
			t.Errorf("NewActivationClustering(%+v): %v", bad, err)
		}
	}
}

// TestPCA2DZoo: Figure 9 on the reduced zoo's sunglasses BadNet: clean
// validation and poisoned test inputs, one point each, pulled apart along
// the first principal component of flatten_2.
func TestPCA2DZoo(t *testing.T) {
	dir, _ := testzoo.Reduced(t)
	m, err := tfmodels.LoadSavedModel(filepath.Join(dir, "sunglasses"), tfmodels.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var sets []Examples
	for _, f := range []string{"clean_validation_data.h5", "sunglasses_sunglasses_poisoned_data.h5"} {
		imgs, err := data.ReadH5(filepath.Join(dir, "data", f))
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, imgs)
	}
	p, err := PCA2D(context.Background(), m, "", sets...)
	if err != nil {
		t.Fatal(err)
	}
	var mean [2]float64
	for s, pts := range p.Points {
		if len(pts) != sets[s].Len() {
			t.Fatalf("set %d: %d points for %d inputs", s, len(pts), sets[s].Len())
		}
		for _, v := range pts {
			mean[s] += v[0] / float64(len(pts))
		}
	}
	t.Logf("%s (%d units): explained %.3f, first-component means clean %.2f, poisoned %.2f", p.Layer, p.Units, p.Explained, mean[0], mean[1])
	if p.Layer != DeepIDActivationLayer || p.Units != 960 || p.Explained[0] < p.Explained[1] || p.Explained[0]+p.Explained[1] > 1 {
		t.Errorf("layer %s, %d units, explained %v", p.Layer, p.Units, p.Explained)
	}
	if math.Abs(mean[0]-mean[1]) < 4 {
		t.Errorf("clean and poisoned means %.2f and %.2f on the first component: not apart", mean[0], mean[1])
	}
}

func mustAttacks(t *testing.T, man *zoo.Manifest, badnet string) []zoo.Attack {
	t.Helper()
	a, err := man.Attacks(badnet)
	if err != nil || len(a) == 0 {
		t.Fatalf("attacks of %s: %v (%d)", badnet, err, len(a))
	}
	return a
}
