package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	tf "github.com/galeone/tensorflow/tensorflow/go"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/internal/pyrun"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// benchPython is what bench_predict.py (embedded from internal/pyrun)
// reports.
type benchPython struct {
	TFVersion    string    `json:"tf_version"`
	KerasPredict float64   `json:"keras_predict"`
	KerasSeconds []float64 `json:"keras_predict_seconds"`
	TFFunction   float64   `json:"tf_function"`
	TFFuncSecs   []float64 `json:"tf_function_seconds"`
	Labels       []int     `json:"labels"`
	MaxDiff      float64   `json:"max_diff_paths"`
}

// The benchmark's default inputs, looked for in the current folder and its
// parents (bbd is run from the module root, beside ../shared).
var (
	benchModel = filepath.Join("shared", "badnets", "sunglasses_bd_weights.h5")
	benchFaces = filepath.Join("shared", "real-faces", "clean")
)

func runBench(c *cmdEnv, args []string) error {
	n := c.flags.Int("n", 2048, "number of images (the real faces repeated)")
	batch := c.flags.Int("batch", 128, "batch size, the same for every path")
	model := c.flags.String("model", "", "Keras weights-only .h5 file of a DeepID BadNet (default: "+benchModel+" in the current folder or the nearest parent holding it)")
	faces := c.flags.String("faces", "", "folder of 55x47 face images to repeat (default: "+benchFaces+", found the same way)")
	runs := c.flags.Int("runs", 3, "timed runs per path and round (the best counts), after one warm-up run")
	rounds := c.flags.Int("rounds", 3, "rounds of Go then Python timings; medians over rounds are reported (machine load drifts)")
	noPython := c.flags.Bool("no-python", false, "time only the Go path")
	intra := c.flags.Int("intra", 0, "TensorFlow intra-op threads for Go (0: TensorFlow's default)")
	inter := c.flags.Int("inter", 0, "TensorFlow inter-op threads for Go (0: TensorFlow's default)")
	train := c.flags.Bool("train", false, "time training (one epoch, Go Train vs Keras fit) instead of inference")
	prune := c.flags.String("prune", "", "time a whole fine-pruning sweep of this white-box model (a zoo BadNet folder) instead, beside Keras fit")
	clean := c.flags.String("clean", "", "with --prune: the clean data (default: data/clean_validation_data.h5 beside the model's folder)")
	strip := c.flags.Bool("strip", false, "time STRIP (overlaid images scored per second) against plain inference, in Go and Python, instead")
	stripInputs := c.flags.Int("inputs", 40, "with --strip: STRIP inputs per pass (the faces repeated)")
	stripOverlays := c.flags.Int("overlays", 100, "with --strip: overlays per input (M)")
	cleanse := c.flags.Bool("cleanse", false, "time Neural Cleanse instead: the plain scan's seconds per label and the fast full scan (every label) of --model")
	cleansePlain := c.flags.Int("cleanse-plain", 4, "with --cleanse: labels of the plain scan (one at a time)")
	cleanseSteps := c.flags.Int("cleanse-steps", 300, "with --cleanse: most steps per label")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("bench takes no arguments, got %q", pos)
	}
	if *prune != "" {
		return benchPrune(c.stdout, *prune, *clean, *noPython)
	}
	if *n <= 0 || *batch <= 0 || *runs <= 0 || *rounds <= 0 {
		return usagef("--n, --batch, --runs and --rounds must be positive")
	}
	if *n > maxBenchImages || *batch > maxBatch {
		return usagef("--n is at most %d and --batch at most %d", maxBenchImages, maxBatch)
	}
	if *model, err = defaultInput(*model, "--model", benchModel); err != nil {
		return err
	}
	if *faces, err = defaultInput(*faces, "--faces", benchFaces); err != nil {
		return err
	}
	if *cleanse {
		return benchCleanse(c.stdout, *model, *faces, *cleansePlain, *cleanseSteps)
	}

	imgs, err := data.ReadImageDir(*faces, data.DeepIDImageOptions(false))
	if err != nil {
		return inputError(*faces, err)
	}
	faceX, err := imgs.Float32(0, imgs.Len())
	if err != nil {
		return err
	}
	x := make([]float32, *n*imgs.Size())
	for i := 0; i < len(x); i += len(faceX) {
		copy(x[i:], faceX)
	}

	sess, err := sessionOptions(*intra, *inter)
	if err != nil {
		return err
	}
	if _, err := checkModelPath(*model); err != nil {
		return err
	}
	if *strip {
		return benchStrip(c.stdout, *model, imgs, *stripInputs, *stripOverlays, *batch, *runs, *rounds, sess, *noPython)
	}
	if *train {
		return benchTrain(c.stdout, *model, imgs, *n, *batch, *runs, *rounds, sess, *noPython)
	}
	// Inference runs on the frozen model, as bbd predict does.
	m, err := tfmodels.ImportKerasH5(*model, tfmodels.DeepID(), tfmodels.BuildOptions{Source: *model, BatchSize: *batch, Session: sess, Frozen: true})
	if err != nil {
		return modelError(*model, err)
	}
	defer m.Close()

	w := c.stdout
	fmt.Fprintf(w, "bbd bench: %s (DeepID, %s parameters), %d images (%d real faces of %s repeated), batch %d, %d rounds of Go then Python, each path best of %d runs after a warm-up run; medians over rounds\n",
		*model, thousands(m.ParamCount()), *n, imgs.Len(), *faces, *batch, *rounds, *runs)

	var goLabels []int
	var goRates, kerasRates, fnRates, ratios []float64
	var py *benchPython
	for range *rounds {
		goRate, err := bestRate(*n, *runs, func() error {
			probs, err := m.Predict(x, *n)
			goLabels = tfmodels.Labels(probs, m.NumClasses)
			return err
		})
		if err != nil {
			return err
		}
		goRates = append(goRates, goRate)
		if *noPython {
			continue
		}
		if py, err = benchPy(*model, x, *n, imgs, *batch, *runs); err != nil {
			return err
		}
		kerasRates = append(kerasRates, py.KerasPredict)
		fnRates = append(fnRates, py.TFFunction)
		ratios = append(ratios, goRate/max(py.KerasPredict, py.TFFunction))
	}
	goRate := median(goRates)
	t := benchTable{base: goRate}
	t.row(fmt.Sprintf("Go: tfmodels Predict, frozen (libtensorflow %s)", tf.Version()), goRate)
	if py != nil {
		t.row(fmt.Sprintf("Python: Keras model.predict (TF %s)", py.TFVersion), median(kerasRates))
		t.row(fmt.Sprintf("Python: tf.function over batches (TF %s)", py.TFVersion), median(fnRates))
	}
	t.write(w)
	if py != nil {
		fmt.Fprintf(w, "Go / faster Python path, per round: %s; median %.2f\n", fmtRatios(ratios), median(ratios))
		agree := 0
		for i := range min(len(goLabels), len(py.Labels)) {
			if goLabels[i] == py.Labels[i] {
				agree++
			}
		}
		fmt.Fprintf(w, "predicted labels, Go vs Python: %d/%d agree\n", agree, *n)
	}
	return nil
}

// maxBenchImages bounds --n (the images are held in memory as float32).
const maxBenchImages = 1 << 16

// defaultInput returns path when given, else rel found in the current folder
// or the nearest of its parents that has it, or an error naming the flag.
func defaultInput(path, flagName, rel string) (string, error) {
	if path != "" {
		return path, nil
	}
	dir := "."
	for range 8 {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		abs, err := filepath.Abs(dir)
		if err != nil || filepath.Dir(abs) == abs {
			break
		}
		dir = filepath.Join(dir, "..")
	}
	return "", fmt.Errorf("bench: no %s in the current folder or its parents: pass %s", rel, flagName)
}

// benchTable prints "path, images/s, Go / path" rows, aligned.
type benchTable struct {
	base float64 // the Go rate
	rows [][3]string
}

func (t *benchTable) row(path string, rate float64) {
	t.rows = append(t.rows, [3]string{path, fmt.Sprintf("%.0f", rate), fmt.Sprintf("%.2f", t.base/rate)})
}

func (t *benchTable) write(w io.Writer) {
	rows := append([][3]string{{"path", "images/s", "Go / path"}}, t.rows...)
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%-*s  %8s  %9s\n", width, r[0], r[1], r[2])
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtRatios(v []float64) string {
	parts := make([]string, len(v))
	for i, r := range v {
		parts[i] = fmt.Sprintf("%.2f", r)
	}
	return strings.Join(parts, ", ")
}

// bestRate runs f once to warm up, then runs times, and returns the best
// images/s.
func bestRate(n, runs int, f func() error) (float64, error) {
	if err := f(); err != nil {
		return 0, err
	}
	best := time.Duration(0)
	for range runs {
		t0 := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		if d := time.Since(t0); best == 0 || d < best {
			best = d
		}
	}
	return float64(n) / best.Seconds(), nil
}

// benchPy writes x to a temporary .npy file and runs bench_predict.py on it.
func benchPy(model string, x []float32, n int, imgs *data.Images, batch, runs int) (*benchPython, error) {
	if _, err := pyrun.Python(); err != nil {
		return nil, fmt.Errorf("%v (or use --no-python)", err)
	}
	xf, err := tempNpy(x, []int{n, imgs.H, imgs.W, imgs.C})
	if err != nil {
		return nil, err
	}
	defer os.Remove(xf)
	var py benchPython
	if err := pyrun.RunEmbedded(&py, "bench_predict.py", model, xf, fmt.Sprint(batch), fmt.Sprint(runs)); err != nil {
		return nil, fmt.Errorf("python benchmark: %w", err)
	}
	return &py, nil
}

// writeNpy writes float32 values as a NumPy .npy file (format 1.0).
func writeNpy(f *os.File, x []float32, shape []int) error {
	dims := ""
	for _, d := range shape {
		dims += fmt.Sprintf("%d, ", d)
	}
	dims = dims[:len(dims)-2]
	if len(shape) == 1 {
		dims += "," // a 1-tuple
	}
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", dims)
	// Magic (6) + version (2) + length (2) + header, padded with spaces and a
	// newline to a multiple of 64 bytes.
	for (10+len(header)+1)%64 != 0 {
		header += " "
	}
	header += "\n"
	w := bufio.NewWriter(f)
	w.WriteString("\x93NUMPY\x01\x00")
	binary.Write(w, binary.LittleEndian, uint16(len(header)))
	w.WriteString(header)
	if err := binary.Write(w, binary.LittleEndian, x); err != nil {
		return err
	}
	return w.Flush()
}
