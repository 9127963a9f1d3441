package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	tf "github.com/galeone/tensorflow/tensorflow/go"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/internal/progress"
	"github.com/bbd-workbench/bbd/metrics"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// source is one input of predict: images already read (an image file or a
// folder) or an HDF5 file streamed in batches.
type source struct {
	arg  string
	dir  bool
	imgs *data.Images
	h5   *data.H5Reader
	n    int
	acc  metrics.Ratio // over the source's labelled images
	// beyond counts true labels the model cannot output (>= its classes,
	// or > N for a BBD model), counted as wrong; maxBeyond is the largest.
	beyond, maxBeyond int
}

// prediction is one line of predict's --json output.
type prediction struct {
	Name        string   `json:"name"`
	Label       int      `json:"label"`
	Poisoned    bool     `json:"poisoned,omitempty"`    // a BBD model's label N
	Probability *float32 `json:"probability,omitempty"` // absent for a BBD model's label N
	TrueLabel   *int     `json:"true_label,omitempty"`
}

// summary is the last line of predict's --json output: one entry per
// source, accuracies never summed over sources.
type summary struct {
	Images  int             `json:"images"`
	Sources []sourceSummary `json:"sources"`
}

type sourceSummary struct {
	Source   string   `json:"source"`
	Images   int      `json:"images"`
	Labelled int      `json:"labelled"`
	Correct  int      `json:"correct"`
	Accuracy *float64 `json:"accuracy,omitempty"` // absent without labelled images
}

func runPredict(c *cmdEnv, args []string) error {
	modelPath := c.flags.String("model", "", "model: a SavedModel directory or a Keras .h5 file (required)")
	arch := c.flags.String("arch", "", "architecture of a weights-only Keras file (deepid)")
	batch := c.flags.Int("batch", 128, "inference batch size (images per TensorFlow run)")
	resize := c.flags.Bool("resize", false, "resize images of another size to the model's input size (bilinear) instead of failing")
	recursive := c.flags.Bool("recursive", false, "read folders recursively: each folder holding images and each HDF5 file is a source of its own")
	quiet := c.flags.Bool("quiet", false, "print only the accuracy lines (or, with --json, only the summary)")
	asJSON := c.flags.Bool("json", false, "print one JSON object per image and a final summary object (one entry per source)")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if *modelPath == "" {
		return usagef("--model is required")
	}
	if len(pos) == 0 {
		return usagef("expected at least one input: an image, a folder of images or an HDF5 data file")
	}
	if *batch <= 0 {
		return usagef("--batch must be positive, got %d", *batch)
	}
	// A model with a "label" output (a BBD defence) is run as it is: freezing
	// keeps only the first net's probabilities.
	labelModel := hasLabelOutput(*modelPath)
	m, _, err := loadModel(*modelPath, modelOptions{Arch: *arch, BatchSize: *batch, Frozen: !labelModel})
	if err != nil {
		return err
	}
	defer m.Close()
	var labelOut tf.Output
	if labelModel {
		if labelOut = m.Outputs["label"]; labelOut.Op == nil {
			labelModel = false
		}
	}

	// Open and check every input before printing anything.
	var sources []*source
	defer func() {
		for _, s := range sources {
			if s.h5 != nil {
				s.h5.Close()
			}
		}
	}()
	total := 0
	for _, arg := range pos {
		args := []string{arg}
		if *recursive {
			if args, err = walkSources(arg); err != nil {
				return err
			}
		}
		for _, a := range args {
			s, err := openSource(a, m.InputShape, *resize)
			if err != nil {
				if !*recursive && hasSubfolder(a) && !hasImages(a) {
					return fmt.Errorf("%v (it has subfolders: use --recursive to read them)", err)
				}
				return err
			}
			sources = append(sources, s)
			total += s.n
		}
	}

	out := bufio.NewWriter(c.stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	// No bar when the per-image lines go to the same terminal: they would
	// tear it apart.
	var bar *progress.Bar
	if *quiet || !progress.IsTerminal(c.stdout) {
		bar = progress.New(c.stderr, "predict: images", int64(total))
	}
	defer bar.Finish()
	sum := summary{Sources: []sourceSummary{}}
	for _, s := range sources {
		for start := 0; start < s.n; start += *batch {
			n := min(*batch, s.n-start)
			imgs, err := s.batch(start, n, m.InputShape, *resize)
			if err != nil {
				return err
			}
			x, err := imgs.Float32(0, n)
			if err != nil {
				return fmt.Errorf("input %s: %w", s.arg, err)
			}
			var labels []int
			var probs []float32
			if labelModel {
				outs, err := m.Run(x, n, labelOut, m.Probabilities)
				if err != nil {
					return fmt.Errorf("input %s: %w", s.arg, err)
				}
				labels = make([]int, n)
				for i, v := range outs[0] {
					labels[i] = int(v)
				}
				probs = outs[1]
			} else {
				if probs, err = m.Predict(x, n); err != nil {
					return fmt.Errorf("input %s: %w", s.arg, err)
				}
				labels = tfmodels.Labels(probs, m.NumClasses)
			}
			truths := make([]int, n) // -1: unlabelled
			outputs := m.NumClasses  // labels the model can give
			if labelModel {
				outputs++ // N, poisoned
			}
			for i := range truths {
				truths[i] = imgs.Label(i)
				if truths[i] >= outputs {
					s.beyond++
					s.maxBeyond = max(s.maxBeyond, truths[i])
				}
			}
			// A BBD model's label N ("poisoned") is right only where the true
			// label is N.
			r, err := metrics.Accuracy(labels, truths)
			if err != nil {
				return fmt.Errorf("input %s: %w", s.arg, err)
			}
			s.acc = s.acc.Add(r)
			sum.Images += n
			for i, l := range labels {
				if *quiet {
					continue
				}
				poisoned := labelModel && l == m.NumClasses
				var p float32
				if !poisoned && l >= 0 && l < m.NumClasses {
					p = probs[i*m.NumClasses+l]
				}
				truth := truths[i]
				name := s.name(start+i, imgs.Name(i))
				switch {
				case *asJSON:
					pr := prediction{Name: name, Label: l, Poisoned: poisoned}
					if !poisoned {
						pr.Probability = &p
					}
					if truth >= 0 {
						pr.TrueLabel = &truth
					}
					if err := enc.Encode(pr); err != nil {
						return err
					}
				case poisoned:
					fmt.Fprintf(out, "%s\t%d (poisoned)\n", name, l)
				default:
					fmt.Fprintf(out, "%s\t%d\t%.6f\n", name, l, p)
				}
			}
			bar.Add(int64(n))
		}
	}
	bar.Finish()
	for _, s := range sources {
		if s.beyond > 0 {
			fmt.Fprintf(c.stderr, "bbd: warning: input %s: %d true labels are beyond the model's %d classes (largest %d): counted as wrong\n",
				s.arg, s.beyond, m.NumClasses, s.maxBeyond)
		}
	}
	for _, s := range sources {
		ss := sourceSummary{Source: s.arg, Images: s.n, Labelled: s.acc.Total, Correct: s.acc.Hits}
		if s.acc.Total > 0 {
			v := s.acc.Value()
			ss.Accuracy = &v
		}
		sum.Sources = append(sum.Sources, ss)
		if *asJSON || s.acc.Total == 0 {
			continue
		}
		if len(sources) == 1 {
			fmt.Fprintf(out, "accuracy: %v\n", s.acc) // 0.xxxx (k/n)
		} else {
			fmt.Fprintf(out, "accuracy %s: %v\n", s.arg, s.acc)
		}
	}
	if *asJSON {
		if err := enc.Encode(sum); err != nil {
			return err
		}
	}
	return out.Flush()
}

// hasLabelOutput reports whether the model at path is a SavedModel whose
// serving_default signature has a "label" output (a BBD defence).
func hasLabelOutput(path string) bool {
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		return false
	}
	sigs, err := readSignatures(path)
	if err != nil {
		return false // loadModel reports it
	}
	_, ok := sigs["serving_default"].GetOutputs()["label"]
	return ok
}

// walkSources returns the sources under arg for --recursive: arg itself
// when it is a file, else every folder of the tree (arg included) that
// holds images, and every HDF5 file, in lexical order.
func walkSources(arg string) ([]string, error) {
	fi, err := os.Stat(arg)
	if err != nil || !fi.IsDir() {
		return []string{arg}, nil // openSource reports errors
	}
	var out []string
	err = filepath.WalkDir(arg, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("input %s: %w", p, unwrapPathError(err))
		}
		if d.IsDir() {
			if hasImages(p) {
				out = append(out, p)
			}
			return nil
		}
		if d.Type().IsRegular() && isH5Name(d.Name()) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("input %s: no images (.png, .jpg, .jpeg) or HDF5 files (.h5, .hdf5) in the folder or its subfolders", arg)
	}
	return out, nil
}

func isH5Name(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".h5" || ext == ".hdf5"
}

// hasImages reports whether dir holds image files (by name).
func hasImages(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if !e.IsDir() && data.IsImageFileName(e.Name()) {
			return true
		}
	}
	return false
}

// hasSubfolder reports whether dir has a subfolder.
func hasSubfolder(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.IsDir() {
			return true
		}
	}
	return false
}

// openSource opens one input of predict and checks it against the model's
// input shape.
func openSource(arg string, shape [3]int, resize bool) (*source, error) {
	fi, err := os.Stat(arg)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("input %s: no such file or directory", arg)
		}
		return nil, fmt.Errorf("input %s: %w", arg, unwrapPathError(err))
	}
	h, w, c := shape[0], shape[1], shape[2]
	opts := data.ImageOptions{H: h, W: w, Resize: resize}
	s := &source{arg: arg}
	switch {
	case fi.IsDir():
		s.dir = true
		s.imgs, err = data.ReadImageDir(arg, opts)
	default:
		var isH5 bool
		isH5, err = data.IsHDF5(arg)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", arg, unwrapPathError(err))
		}
		if isH5 {
			if s.h5, err = data.OpenH5(arg); err != nil {
				return nil, inputError(arg, err)
			}
			sh := s.h5.Shape()
			s.n = sh[0]
			if (sh[1] != h || sh[2] != w) && !resize {
				s.h5.Close()
				return nil, fmt.Errorf("input %s: images are %dx%d, the model takes %dx%d (use --resize to resize them)", arg, sh[1], sh[2], h, w)
			}
			if err := checkChannels(sh[3], c); err != nil {
				s.h5.Close()
				return nil, fmt.Errorf("input %s: %w", arg, err)
			}
			return s, nil
		}
		if !data.IsImageFileName(arg) {
			return nil, fmt.Errorf("input %s: not an image (.png, .jpg, .jpeg) or HDF5 file", arg)
		}
		s.imgs, err = data.ReadImageFile(arg, opts)
	}
	if err != nil {
		return nil, inputError(arg, err)
	}
	if s.imgs, err = adaptChannels(s.imgs, c); err != nil {
		return nil, fmt.Errorf("input %s: %w", arg, err)
	}
	s.n = s.imgs.Len()
	return s, nil
}

// inputError makes sure err names arg and adds a hint for size errors.
func inputError(arg string, err error) error {
	msg := err.Error()
	if !containsPath(msg, arg) {
		msg = "input " + arg + ": " + msg
	}
	if errors.Is(err, data.ErrSize) && !strings.Contains(msg, "--resize") {
		msg += " (use --resize to resize images to the model's input size)"
	}
	return errors.New(msg)
}

func containsPath(msg, p string) bool {
	return len(p) > 0 && (strings.Contains(msg, p) || strings.Contains(msg, filepath.Clean(p)))
}

// batch returns images [start, start+n) of the source, at the model's size.
func (s *source) batch(start, n int, shape [3]int, resize bool) (*data.Images, error) {
	if s.h5 == nil {
		return s.imgs.Slice(start, start+n)
	}
	imgs, err := s.h5.ReadBatch(start, n)
	if err != nil {
		return nil, inputError(s.arg, err)
	}
	if resize && (imgs.H != shape[0] || imgs.W != shape[1]) {
		if imgs, err = data.Resize(imgs, shape[0], shape[1], data.Bilinear); err != nil {
			return nil, inputError(s.arg, err)
		}
	}
	if imgs, err = adaptChannels(imgs, shape[2]); err != nil {
		return nil, fmt.Errorf("input %s: %w", s.arg, err)
	}
	return imgs, nil
}

// name is the name predict prints for image i of the source.
func (s *source) name(i int, imgName string) string {
	switch {
	case s.h5 != nil:
		return fmt.Sprintf("%s[%d]", s.arg, i)
	case s.dir && imgName != "":
		return filepath.Join(s.arg, imgName)
	}
	return s.arg
}

func checkChannels(have, want int) error {
	if have == want || (have == 1 && want == 3) || (have == 3 && want == 1) {
		return nil
	}
	return fmt.Errorf("images have %d channels, the model takes %d", have, want)
}

// adaptChannels converts gray images to RGB (replicated) or RGB to gray
// (luma 0.299R+0.587G+0.114B, rounded) to match a model's c channels.
func adaptChannels(imgs *data.Images, c int) (*data.Images, error) {
	if imgs.C == c {
		return imgs, nil
	}
	if err := checkChannels(imgs.C, c); err != nil {
		return nil, err
	}
	out, err := data.NewImages(imgs.Len(), imgs.H, imgs.W, c)
	if err != nil {
		return nil, err
	}
	copy(out.Labels, imgs.Labels)
	out.Names = imgs.Names
	px := imgs.H * imgs.W * imgs.Len()
	for i := range px {
		if c == 3 {
			v := imgs.Pix[i]
			out.Pix[3*i], out.Pix[3*i+1], out.Pix[3*i+2] = v, v, v
		} else {
			r, g, b := float64(imgs.Pix[3*i]), float64(imgs.Pix[3*i+1]), float64(imgs.Pix[3*i+2])
			out.Pix[i] = uint8(0.299*r + 0.587*g + 0.114*b + 0.5)
		}
	}
	return out, nil
}
