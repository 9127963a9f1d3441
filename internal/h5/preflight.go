package h5

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Environment variables of the preflight (see the package documentation).
const (
	// PreflightEnv set to "off" turns the preflight off (trusted files only).
	PreflightEnv = "BBD_H5_PREFLIGHT"
	// PreflightTimeoutEnv is how long the child may take (a Go duration,
	// e.g. "5m"); DefaultPreflightTimeout when unset.
	PreflightTimeoutEnv = "BBD_H5_PREFLIGHT_TIMEOUT"
	// childEnv makes the program a preflight child (its init serves).
	childEnv = "BBD_H5_PREFLIGHT_CHILD"
)

// DefaultPreflightTimeout bounds the child's walk: a file that makes libhdf5
// loop (or read for longer) is refused.
const DefaultPreflightTimeout = 2 * time.Minute

// ErrCrashed is matched (errors.Is) by every *CrashError.
var ErrCrashed = errors.New("libhdf5 crashed or hung reading the file")

// CrashError says that libhdf5 crashed (or did not finish) in the child
// process that read the file first: the file is malformed, and it was not
// opened in this process.
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
		return s + ": the file is malformed, or needs a longer $" + PreflightTimeoutEnv
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

// Is makes errors.Is(err, ErrCrashed) true.
func (e *CrashError) Is(target error) bool { return target == ErrCrashed }

// The child's lines on stdout; other output of the program (an init that
// prints) is ignored. It ends each file with lineDone, or lineDoneRecycle when
// libhdf5 kept objects open (the parent then starts a new child).
const (
	linePrefix      = "bbd-h5-preflight: "
	lineStage       = linePrefix + "reading "
	lineDone        = linePrefix + "done"
	lineDoneRecycle = lineDone + ", recycle"
	lineMemory      = linePrefix + "memory "
)

// init is the child: when the program was started by Preflight, it reads the
// files named on stdin, printing its progress, and exits at the end of its
// input, before any other package's init that does not come before this
// one, and before main or the tests.
func init() {
	if _, ok := os.LookupEnv(childEnv); ok {
		os.Exit(runChild(os.Stdin, os.Stdout))
	}
}

// preflightCache remembers the verdict on each file version (path, device,
// inode, size, modification time) this process has checked.
var preflightCache = struct {
	sync.Mutex
	m map[fileVersion]*verdict
}{m: map[fileVersion]*verdict{}}

// maxCached bounds the cache (a fuzzer checks a new file per input).
const maxCached = 4096

type fileVersion struct {
	path       string
	dev, ino   uint64
	size, nsec int64
}

type verdict struct {
	done chan struct{}
	err  error
}

// children counts the child processes started, requests the files sent to
// them (for the tests).
var children, requests atomic.Int64

// PreflightEnabled reports whether Preflight runs a child ($BBD_H5_PREFLIGHT
// is not "off").
func PreflightEnabled() bool { return !strings.EqualFold(os.Getenv(PreflightEnv), "off") }

// Preflight reads the HDF5 file at path in a child process first: the
// program re-executed, opening the file, walking its groups (hard links),
// reading the attributes the readers read, the headers of its datasets and
// their values (all of them up to a budget, the first and last rows and the
// chunk index beyond), which is everything bbd's readers do with it. A child
// that dies (libhdf5 crashed), does not finish within the timeout, or sees
// libhdf5 take more than 2 GiB of memory for the file gives a *CrashError
// naming the file (as path spells it); a child that finishes gives nil, even
// when it found errors (the in-process read reports them). Each version of a file is
// checked once per process. One child reads the files of a process one after
// another (see worker); a file it dies on after reading others is read
// again by a new child, which gives the verdict. Errors reaching the file
// (missing, unreadable) are left to the in-process open; a child that cannot
// be started is an error naming $BBD_H5_PREFLIGHT. With
// $BBD_H5_PREFLIGHT=off it does nothing.
func Preflight(path string) error {
	if !PreflightEnabled() {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil
	}
	st, err := os.Stat(abs)
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	key := fileVersion{path: abs, size: st.Size(), nsec: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		key.dev, key.ino = uint64(sys.Dev), uint64(sys.Ino)
	}
	c := &preflightCache
	c.Lock()
	if v, ok := c.m[key]; ok {
		c.Unlock()
		<-v.done
		if crash, ok := v.err.(*CrashError); ok {
			named := *crash // checked under another spelling of the path, maybe
			named.Path = path
			return &named
		}
		return v.err
	}
	if len(c.m) >= maxCached {
		clear(c.m)
	}
	v := &verdict{done: make(chan struct{})}
	c.m[key] = v
	c.Unlock()

	var keep bool
	v.err, keep = preflightInWorker(path, abs)
	close(v.done)
	if !keep {
		c.Lock()
		if c.m[key] == v {
			delete(c.m, key)
		}
		c.Unlock()
	}
	return v.err
}

// preflightTimeout returns $BBD_H5_PREFLIGHT_TIMEOUT, or the default.
func preflightTimeout() (time.Duration, error) {
	s := os.Getenv(PreflightTimeoutEnv)
	if s == "" {
		return DefaultPreflightTimeout, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("$%s is %q, expected a positive duration such as 5m", PreflightTimeoutEnv, s)
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
