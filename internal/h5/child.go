package h5

import (
	"bufio"
	"encoding/gob"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// childMemory is the most memory libhdf5 may take for one step (the child's
// peak resident memory beyond the step's start): a malformed file can make
// HDF5 1.10 allocate gigabytes (a global heap of 4 GB was found).
const childMemory = 2 << 30

// runChild is the child process: it decodes requests from in, carries each
// out and encodes the answer (and its values) on out, until the end of in.
// What the program itself prints on stdout (an init that prints) goes to
// stderr instead: stdout carries the answers only. A crash ends it; the
// parent reports it.
func runChild(in io.Reader, out *os.File) int {
	closeInherited()
	runtime.LockOSThread() // HDF5's error-printing setting is per thread
	if fd, err := syscall.Dup(int(out.Fd())); err == nil {
		syscall.CloseOnExec(fd)
		if syscall.Dup3(2, int(out.Fd()), 0) == nil {
			out = os.NewFile(uintptr(fd), "answers")
		}
	}
	s := newServer()
	timeout, err := childTimeout()
	if err != nil {
		timeout = DefaultChildTimeout
	}
	dec := gob.NewDecoder(bufio.NewReader(in))
	w := bufio.NewWriterSize(out, 1<<20)
	enc := gob.NewEncoder(w)
	for {
		var r request
		if err := dec.Decode(&r); err != nil {
			return 0
		}
		// The parent stops the child after the timeout; should the parent
		// be gone, the child stops itself a little later (a file can make
		// libhdf5 loop).
		stop := time.AfterFunc(timeout+timeout/10, func() { os.Exit(3) })
		rss := resetPeakRSS()
		a := s.do(&r)
		stop.Stop()
		if peak, ok := peakRSS(); ok && peak-rss > childMemory {
			a = &response{Memory: peak - rss}
		}
		if enc.Encode(a) != nil {
			return 0
		}
		if _, err := w.Write(a.data); err != nil || w.Flush() != nil {
			return 0
		}
	}
}

// resetPeakRSS makes the peak resident memory the current one (Linux
// clear_refs) and returns it.
func resetPeakRSS() int64 {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	rss, _ := peakRSS()
	return rss
}

// peakRSS returns the process's peak resident memory (VmHWM) in bytes.
func peakRSS() (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

// closeInherited closes the descriptors beyond stdin, stdout and stderr that
// the parent left open without close-on-exec (a go test fuzzing worker's
// pipes to its coordinator, say): a child that outlives its parent must not
// hold them. Descriptors this process opened itself are close-on-exec (the
// Go runtime opens every one so) and are kept.
func closeInherited() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
		if errno == 0 && flags&syscall.FD_CLOEXEC == 0 {
			syscall.Close(fd)
		}
	}
}
