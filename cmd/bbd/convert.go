package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bbd-workbench/bbd/exporter"
)

func runConvert(c *cmdEnv, args []string) error {
	arch := c.flags.String("arch", "", "architecture of a weights-only Keras file (deepid); default: the file's own, DeepID for weights-only files")
	overwrite := c.flags.Bool("overwrite", false, "replace an existing destination (atomically)")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("expected <keras.h5> <savedmodel-dir>, got %d arguments", len(pos))
	}
	src, dst := pos[0], pos[1]
	// Refuse early, before the (slow) import, when the destination exists
	// (and, with --overwrite, is not a SavedModel: nothing else is replaced).
	if err := exporter.CheckDestination(dst, exporter.Options{Overwrite: *overwrite}); err != nil {
		return destinationError(dst, *overwrite, err)
	}
	kind, err := checkModelPath(src)
	if err != nil {
		return err
	}
	if kind != kindKerasH5 {
		return fmt.Errorf("model %s: is a SavedModel directory, convert takes a Keras .h5 file", src)
	}
	m, _, err := loadModel(src, modelOptions{Arch: *arch})
	if err != nil {
		return err
	}
	defer m.Close()
	if err := exporter.WriteModel(dst, m, exporter.Options{Overwrite: *overwrite}); err != nil {
		if errors.Is(err, exporter.ErrExists) {
			return destinationError(dst, *overwrite, err)
		}
		if !strings.Contains(err.Error(), dst) {
			err = fmt.Errorf("writing %s: %w", dst, err)
		}
		return err
	}
	layers, err := m.Layers()
	if err != nil {
		return fmt.Errorf("model %s: %w", src, err)
	}
	w := c.stdout
	fmt.Fprintf(w, "read %s: Keras HDF5, architecture %s\n", src, m.Arch.Name)
	fmt.Fprintf(w, "wrote %s: SavedModel (tag %s, signatures %s and layers)\n", dst, exporter.ServeTag, exporter.DefaultSignature)
	fmt.Fprintf(w, "input: %dx%dx%d (pixels in [0, 1]), classes: %d\n", m.InputShape[0], m.InputShape[1], m.InputShape[2], m.NumClasses)
	printLayers(w, layers)
	fmt.Fprintf(w, "parameters: %s\n", thousands(m.ParamCount()))
	return nil
}

// destinationError explains a refused destination.
func destinationError(dst string, overwrite bool, err error) error {
	if !errors.Is(err, exporter.ErrExists) {
		return err
	}
	if !overwrite {
		return fmt.Errorf("destination %s exists: nothing written (use --overwrite to replace it)", dst)
	}
	return fmt.Errorf("destination %s exists and is not a SavedModel: nothing written (--overwrite replaces only a SavedModel folder)", dst)
}
