package h5

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A worker is a preflight child that reads files one after another: the
// program re-executed once (loading libtensorflow, when the program links
// it, costs most of a second) rather than once per file. The parent writes a
// file's absolute path and a NUL to its stdin; it answers on stdout with a
// line per stage and lineDone. It ends at the end of its stdin (when the
// parent closes it or dies).
type worker struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr *tail
	served int // files answered
}

// workerFiles is how many files a worker reads before a new one is started
// (bounding what a long run of malformed files can leak in libhdf5).
const workerFiles = 256

// current is the running worker; its lock is held for a whole request, so
// files are read one at a time.
var current struct {
	sync.Mutex
	w *worker
}

// preflightInWorker reads abs in the worker (started if needed); keep is
// false for a verdict that may differ next time (no child started).
func preflightInWorker(path, abs string) (err error, keep bool) {
	timeout, err := preflightTimeout()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err), false
	}
	current.Lock()
	defer current.Unlock()
	for retried := false; ; retried = true {
		if current.w == nil {
			w, err := startWorker()
			if err != nil {
				return fmt.Errorf("%s: cannot read the file in a child process first (%v); set %s=off for trusted files", path, err, PreflightEnv), false
			}
			current.w = w
		}
		w := current.w
		requests.Add(1)
		a, timedOut := w.read(abs, timeout)
		stage := a.stage
		if a.done {
			w.served++
			if a.recycle || w.served >= workerFiles {
				w.stop()
				current.w = nil
			}
			if a.memory > 0 {
				return &CrashError{Path: path, Cause: "memory", Memory: a.memory, Stage: stage}, true
			}
			return nil, true
		}
		st := w.stop()
		current.w = nil
		switch {
		case timedOut: // kept: a file is not given a second timeout in a process
			return &CrashError{Path: path, Cause: "stopped", Timeout: timeout, Stage: stage}, true
		case w.served > 0 && !retried:
			continue // it had read other files: a new child gives the verdict
		case st == nil:
			return fmt.Errorf("%s: cannot read the file in a child process first (it did not start); set %s=off for trusted files", path, PreflightEnv), false
		}
		return &CrashError{Path: path, Cause: crashCause(st, w.stderr.String()), Stage: stage}, true
	}
}

func startWorker() (*worker, error) {
	exe := "/proc/self/exe" // this program, even if its file was replaced
	if _, err := os.Stat(exe); err != nil {
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(exe)
	cmd.Args = []string{"bbd-h5-preflight"}
	cmd.Env = append(withoutEnv(os.Environ(), childEnv), childEnv+"=1", "GOTRACEBACK=single")
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	w := &worker{cmd: cmd, in: in, out: bufio.NewReader(out), stderr: &tail{}}
	cmd.Stderr = w.stderr
	cmd.WaitDelay = time.Second // should anything else hold its pipes
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	children.Add(1)
	return w, nil
}

// answer is what a worker said about a file: the last stage it reported,
// whether it finished (and asks to be replaced), and the memory libhdf5 took
// when that was too much.
type answer struct {
	stage         string
	done, recycle bool
	memory        int64
}

// read sends abs to w and reads the answer, stopping w after timeout.
func (w *worker) read(abs string, timeout time.Duration) (a answer, timedOut bool) {
	if _, err := io.WriteString(w.in, abs+"\x00"); err != nil {
		return answer{}, false // it is gone
	}
	ch := make(chan answer, 1)
	go func() {
		var a answer
		for {
			line, err := w.out.ReadString('\n')
			line = strings.TrimSuffix(line, "\n")
			if s, ok := strings.CutPrefix(line, lineStage); ok {
				a.stage = s
			}
			if s, ok := strings.CutPrefix(line, lineMemory); ok {
				a.memory, _ = strconv.ParseInt(s, 10, 64)
			}
			if line == lineDone || line == lineDoneRecycle {
				a.done, a.recycle = true, line == lineDoneRecycle
				break
			}
			if err != nil {
				break
			}
		}
		ch <- a
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case a := <-ch:
		return a, false
	case <-timer.C:
		w.cmd.Process.Kill()
		return <-ch, true
	}
}

// stop ends w (closing its input ends a worker waiting for a file; one that
// is not is killed) and returns how it ended (nil if it did not start).
func (w *worker) stop() *os.ProcessState {
	w.in.Close()
	exited := make(chan struct{})
	go func() {
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			w.cmd.Process.Kill()
		}
	}()
	io.Copy(io.Discard, w.out)
	err := w.cmd.Wait()
	close(exited)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) && w.cmd.ProcessState == nil {
		return nil
	}
	return w.cmd.ProcessState
}
