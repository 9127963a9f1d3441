package data

import (
	"errors"
	"fmt"

	"github.com/bbd-workbench/bbd/internal/safefs"
)

// Kinds of input errors; test them with errors.Is.
var (
	// ErrNotHDF5: the file does not start with the HDF5 signature.
	ErrNotHDF5 = errors.New("not an HDF5 file")
	// ErrFormat: the file is of the right kind but its content is not the
	// expected one (missing dataset, wrong rank or shape, bad magic number,
	// truncated file, undecodable image).
	ErrFormat = errors.New("unexpected format")
	// ErrSize: an image has the wrong size.
	ErrSize = errors.New("wrong image size")
	// ErrValue: a pixel or label value is invalid (NaN, out of range, not an
	// integer).
	ErrValue = errors.New("invalid value")
	// ErrExists: the destination exists and overwriting was not asked for,
	// or it is not of the kind that is replaced. The same value as
	// exporter.ErrExists.
	ErrExists = safefs.ErrExists
	// ErrNoImages: a directory holds no images.
	ErrNoImages = errors.New("no images")
	// ErrArgument: a function argument is invalid (bad range, rate, shape).
	ErrArgument = errors.New("invalid argument")
)

// InputError describes a bad data input: Path names it (a file, a directory,
// or a description such as "images"), Msg says what was expected and what was
// found. Kind is one of the Err* values of this package; Err is an optional
// underlying cause (for example an *fs.PathError); with Msg empty, Err's
// message is the whole message (an *h5.CrashError, which names the file).
// Bad models and tensors
// given to models are reported by tfmodels.InputError instead (no Kind).
type InputError struct {
	Path string
	Kind error
	Msg  string
	Err  error
}

func (e *InputError) Error() string {
	if e.Msg == "" && e.Err != nil {
		return e.Err.Error() // a cause that names the input itself
	}
	s := e.Msg
	if e.Path != "" {
		s = e.Path + ": " + s
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns Kind and Err, so errors.Is matches either.
func (e *InputError) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

func inputErr(path string, kind error, format string, args ...any) error {
	return &InputError{Path: path, Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

func wrapErr(path string, kind, cause error, format string, args ...any) error {
	return &InputError{Path: path, Kind: kind, Msg: fmt.Sprintf(format, args...), Err: cause}
}

func argErr(format string, args ...any) error {
	return &InputError{Kind: ErrArgument, Msg: fmt.Sprintf(format, args...)}
}
