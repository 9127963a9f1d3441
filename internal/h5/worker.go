package h5

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// A worker is a child process that reads files for this one: the program
// re-executed once (loading libtensorflow, when the program links it, costs
// most of a second) and serving the requests of every File of the process,
// one at a time. It ends at the end of its stdin (when the parent closes it
// or dies).
type worker struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	inBuf  *bufio.Writer
	enc    *gob.Encoder
	out    *bufio.Reader
	dec    *gob.Decoder
	stderr *tail
	opened int            // files opened in it over its life
	open   map[*File]bool // files open in it now
}

// workerFiles is how many files a worker opens before a new one is started
// (bounding what a long run of malformed files can leak in libhdf5).
const workerFiles = 256

// current is the running worker; its lock is held for a whole request, so
// requests are served one at a time.
var current struct {
	sync.Mutex
	w *worker
}

// children counts the child processes started, requests the requests sent
// to them (for the tests).
var children, requests atomic.Int64

func startWorker() (*worker, error) {
	exe := "/proc/self/exe" // this program, even if its file was replaced
	if _, err := os.Stat(exe); err != nil {
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(exe)
	cmd.Args = []string{"bbd-h5-child"}
	cmd.Env = append(withoutEnv(os.Environ(), serveEnv), serveEnv+"=1", "GOTRACEBACK=single")
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	w := &worker{cmd: cmd, in: in, inBuf: bufio.NewWriter(in), out: bufio.NewReaderSize(out, 1<<20), stderr: &tail{}, open: map[*File]bool{}}
	w.enc = gob.NewEncoder(w.inBuf)
	w.dec = gob.NewDecoder(w.out) // a bufio.Reader: gob reads no further than each answer
	cmd.Stderr = w.stderr
	cmd.WaitDelay = time.Second // should anything else hold its pipes
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	children.Add(1)
	return w, nil
}

// errGone is a worker that did not answer: it died (or was killed).
var errGone = errors.New("the child process ended")

// call sends r to w and reads the answer, killing w after timeout. An error
// means w is gone (timedOut says whether it was killed for the timeout).
func (w *worker) call(r *request, timeout time.Duration) (a *response, timedOut bool, err error) {
	requests.Add(1)
	if err := w.enc.Encode(r); err != nil {
		return nil, false, errGone
	}
	if err := w.inBuf.Flush(); err != nil {
		return nil, false, errGone
	}
	type result struct {
		a   *response
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var a response
		if err := w.dec.Decode(&a); err != nil {
			ch <- result{nil, errGone}
			return
		}
		if a.DataLen < 0 || a.DataLen > maxAnswerBytes {
			ch <- result{nil, fmt.Errorf("the child answered %d bytes, expected at most %d", a.DataLen, maxAnswerBytes)}
			return
		}
		if a.DataLen > 0 {
			if cap(r.into) >= a.DataLen {
				a.data = r.into[:a.DataLen]
			} else {
				a.data = make([]byte, a.DataLen)
			}
			if _, err := io.ReadFull(w.out, a.data); err != nil {
				ch <- result{nil, errGone}
				return
			}
		}
		ch <- result{&a, nil}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case res := <-ch:
		return res.a, false, res.err
	case <-timer.C:
		w.cmd.Process.Kill()
		<-ch
		return nil, true, errGone
	}
}

// stop ends w (closing its input ends a worker waiting for a request; one
// that is not is killed) and returns how it ended (nil if it did not start).
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

// retire stops the current worker; the Files open in it are opened again
// in the next one when they are next used.
func retire() *os.ProcessState {
	w := current.w
	current.w = nil
	if w == nil {
		return nil
	}
	return w.stop()
}
