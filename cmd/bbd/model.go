package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	tf "github.com/galeone/tensorflow/tensorflow/go"
	pb "github.com/galeone/tensorflow/tensorflow/go/core/protobuf/for_core_protos_go_proto"
	"google.golang.org/protobuf/proto"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// modelOptions says how to load a model.
type modelOptions struct {
	Arch      string // "" (the file's own, DeepID for weights-only files) or "deepid"
	BatchSize int
	Session   *tf.SessionOptions
	// Frozen: white-box models come back frozen (weights as constants), the
	// faster form for inference only.
	Frozen bool
}

// archFlag returns the architecture --arch names (nil: the file's own).
func archFlag(name string) (*tfmodels.Architecture, error) {
	switch strings.ToLower(name) {
	case "":
		return nil, nil
	case "deepid":
		return tfmodels.DeepID(), nil
	}
	return nil, usagef("unknown architecture %q for --arch (known: deepid)", name)
}

// modelKind says what a model path holds.
type modelKind int

const (
	kindSavedModel modelKind = iota
	kindKerasH5
)

// checkModelPath checks that path exists and is a SavedModel directory or an
// HDF5 file, and says which.
func checkModelPath(path string) (modelKind, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("model %s: no such file or directory", path)
		}
		return 0, fmt.Errorf("model %s: %w", path, unwrapPathError(err))
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(path, "saved_model.pb")); err != nil {
			return 0, fmt.Errorf("model %s: not a SavedModel directory (no saved_model.pb)", path)
		}
		return kindSavedModel, nil
	}
	ok, err := data.IsHDF5(path)
	if err != nil {
		return 0, fmt.Errorf("model %s: %w", path, unwrapPathError(err))
	}
	if !ok {
		return 0, fmt.Errorf("model %s: not an HDF5 file (expected a Keras .h5 model or a SavedModel directory)", path)
	}
	return kindKerasH5, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// maxBatch bounds --batch: TensorFlow's memory grows with the batch (about
// 0.3 MB per DeepID image), and a batch of an HDF5 file is read at once.
const maxBatch = 4096

// loadModel loads a SavedModel directory or a Keras HDF5 file.
func loadModel(path string, opts modelOptions) (*tfmodels.Model, modelKind, error) {
	if opts.BatchSize > maxBatch {
		return nil, 0, usagef("--batch %d: expected at most %d (memory grows with the batch; the results do not change)", opts.BatchSize, maxBatch)
	}
	kind, err := checkModelPath(path)
	if err != nil {
		return nil, kind, err
	}
	arch, err := archFlag(opts.Arch)
	if err != nil {
		return nil, kind, err
	}
	var m *tfmodels.Model
	switch kind {
	case kindSavedModel:
		if arch != nil {
			return nil, kind, usagef("--arch applies to Keras HDF5 files, not to the SavedModel %s", path)
		}
		m, err = tfmodels.LoadSavedModel(path, tfmodels.LoadOptions{BatchSize: opts.BatchSize, Session: opts.Session})
		if err == nil && opts.Frozen && m.WhiteBox() {
			var frozen *tfmodels.Model
			frozen, err = m.Freeze()
			m.Close()
			m = frozen
		}
	default:
		m, err = tfmodels.ImportKerasH5(path, arch, tfmodels.BuildOptions{Source: path, BatchSize: opts.BatchSize, Session: opts.Session, Frozen: opts.Frozen})
	}
	if err != nil {
		return nil, kind, modelError(path, err)
	}
	return m, kind, nil
}

// modelError makes sure an error loading the model at path names it.
func modelError(path string, err error) error {
	if strings.Contains(err.Error(), path) {
		return err
	}
	return fmt.Errorf("model %s: %w", path, err)
}

// readSignatures returns the signatures of the MetaGraph tagged "serve" of
// a SavedModel (through tfmodels.ReadMetaGraph, bbd's one saved_model.pb
// reader).
func readSignatures(dir string) (map[string]*pb.SignatureDef, error) {
	mg, err := tfmodels.ReadMetaGraph(dir, "serve")
	if err != nil {
		return nil, modelError(dir, err)
	}
	return mg.SignatureDef, nil
}

// sessionOptions returns TensorFlow session options with the given thread
// pool sizes (0 = TensorFlow's choice), or nil when both are 0.
func sessionOptions(intra, inter int) (*tf.SessionOptions, error) {
	if intra == 0 && inter == 0 {
		return nil, nil
	}
	cfg, err := proto.Marshal(&pb.ConfigProto{
		IntraOpParallelismThreads: int32(intra),
		InterOpParallelismThreads: int32(inter),
	})
	if err != nil {
		return nil, err
	}
	return &tf.SessionOptions{Config: cfg}, nil
}
