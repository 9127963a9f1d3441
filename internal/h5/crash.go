package h5

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// Environment variables of the child (see the package documentation).
const (
	// ChildEnv set to "off" reads files in this process (trusted files only).
	ChildEnv = "BBD_H5_CHILD"
	// ChildTimeoutEnv is how long the child may take for one step (a Go
	// duration, e.g. "5m"); DefaultChildTimeout when unset.
	ChildTimeoutEnv = "BBD_H5_CHILD_TIMEOUT"
	// serveEnv makes the program a child (its init serves).
	serveEnv = "BBD_H5_CHILD_SERVE"
)

// DefaultChildTimeout bounds each step of the child (opening the file,
// listing a group, reading a dataset's header, an attribute, or a chunk of
// values): a file that makes libhdf5 loop (or read for longer) is refused.
const DefaultChildTimeout = 2 * time.Minute

// ErrCrashed is matched (errors.Is) by every *CrashError.
var ErrCrashed = errors.New("libhdf5 crashed or hung reading the file")

// CrashError says that libhdf5 crashed, did not finish, or took too much
// memory in the child process that reads the file: the file is malformed (it
// is never opened in this process).
type CrashError struct {
	Path    string        // the file
	Cause   string        // how the child ended: "SIGSEGV", "exit status 3"...
	Timeout time.Duration // if not 0, the child was stopped after this long
	Memory  int64         // if not 0, libhdf5 took this many bytes of memory
	Stage   string        // what it was reading, e.g. "its group structure (/)"
}

func (e *CrashError) Error() string {
	return e.Path + ": " + e.Detail()
}

// Detail is the message without the path.
func (e *CrashError) Detail() string {
	if e.Timeout > 0 {
		s := "expected a readable HDF5 file, found one that libhdf5 did not finish reading within " + e.Timeout.String()
		if e.Stage != "" {
			s += " (it was reading " + e.Stage + ")"
		}
		return s + ": the file is malformed, or needs a longer $" + ChildTimeoutEnv
	}
	if e.Memory > 0 {
		s := fmt.Sprintf("expected a readable HDF5 file, found one for which libhdf5 took %.1f GiB of memory", float64(e.Memory)/(1<<30))
		if e.Stage != "" {
			s += " reading " + e.Stage
		}
		return s + fmt.Sprintf(": the file is malformed (at most %d GiB are allowed)", childMemory>>30)
	}
	s := "expected a readable HDF5 file, found one that crashed libhdf5 (" + e.Cause + ")"
	if e.Stage != "" {
		s += " reading " + e.Stage
	}
	return s + ": the file is malformed"
}

// Is makes errors.Is(err, ErrCrashed) and errors.Is(err, ErrFile) true.
func (e *CrashError) Is(target error) bool { return target == ErrCrashed || target == ErrFile }

// ErrFile is matched (errors.Is) by the errors of a File that are about the
// file as a whole and name it already: a *CrashError, a file that changed
// while it was read, a child that could not be started, a closed File.
// Readers pass them on as they are, where they put an operation's own error
// in context.
var ErrFile = errors.New("reading the HDF5 file failed")

// fileError is an error of a File that names its file (see ErrFile).
type fileError struct {
	msg string
	err error // wrapped, if any
}

func (e *fileError) Error() string        { return e.msg }
func (e *fileError) Unwrap() error        { return e.err }
func (e *fileError) Is(target error) bool { return target == ErrFile }

// init is the child: when the program was started by a File, it serves the
// requests on its stdin and exits at their end, before any other package's
// init that does not come before this one, and before main or the tests.
func init() {
	if _, ok := os.LookupEnv(serveEnv); ok {
		os.Exit(runChild(os.Stdin, os.Stdout))
	}
}

// ChildEnabled reports whether files are read in a child process
// ($BBD_H5_CHILD is not "off").
func ChildEnabled() bool { return !strings.EqualFold(os.Getenv(ChildEnv), "off") }

// childTimeout returns $BBD_H5_CHILD_TIMEOUT, or the default.
func childTimeout() (time.Duration, error) {
	s := os.Getenv(ChildTimeoutEnv)
	if s == "" {
		return DefaultChildTimeout, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("$%s is %q, expected a positive duration such as 5m", ChildTimeoutEnv, s)
	}
	return d, nil
}

// signalLine matches the Go runtime's report of a signal in C code:
// "[signal SIGSEGV: segmentation violation code=...".
var signalLine = regexp.MustCompile(`\[signal (SIG[A-Z]+)|(SIG[A-Z]+): `)

// crashCause names the signal that ended the child (the Go runtime reports a
// fault in C code on stderr and exits with status 2), or its exit status.
func crashCause(st *os.ProcessState, stderr string) string {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return signalName(ws.Signal())
	}
	if m := signalLine.FindAllStringSubmatch(stderr, -1); m != nil {
		last := m[len(m)-1]
		return last[1] + last[2]
	}
	return fmt.Sprintf("exit status %d", st.ExitCode())
}

func signalName(s syscall.Signal) string {
	for _, n := range []struct {
		s    syscall.Signal
		name string
	}{{syscall.SIGSEGV, "SIGSEGV"}, {syscall.SIGBUS, "SIGBUS"}, {syscall.SIGABRT, "SIGABRT"},
		{syscall.SIGKILL, "SIGKILL"}, {syscall.SIGFPE, "SIGFPE"}, {syscall.SIGILL, "SIGILL"}} {
		if s == n.s {
			return n.name
		}
	}
	return s.String()
}

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// tail keeps the last tailBytes bytes written to it.
type tail struct{ b []byte }

const tailBytes = 64 << 10

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > tailBytes {
		t.b = append(t.b[:0], t.b[len(t.b)-tailBytes:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	s := t.b
	if i := bytes.IndexByte(s, '\n'); i >= 0 && len(t.b) == tailBytes {
		s = s[i+1:] // drop a partial first line
	}
	return string(s)
}
