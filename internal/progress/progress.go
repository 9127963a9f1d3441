// Package progress draws a small, dependency-free progress bar on a terminal.
//
// A Bar stays invisible for short jobs: it draws nothing until the job has run
// for Options.Delay (2 s by default), then redraws at most every
// Options.Interval (200 ms, i.e. ~5 times a second), and only when its writer
// is a terminal. On anything else (a file, a pipe, a test buffer) it is
// silent, so logs and scripted output are never cluttered with carriage
// returns. Finish ends the line of a bar that was drawn.
//
//	bar := progress.New(os.Stderr, "predict", int64(n))
//	for ... {
//		bar.Add(int64(batch))
//	}
//	bar.Finish()
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Options configures a Bar. Zero fields take the defaults.
type Options struct {
	// Delay before the bar is first drawn (default 2 s).
	Delay time.Duration
	// Interval is the least time between two redraws (default 200 ms).
	Interval time.Duration
	// Width of the bar itself in cells (default 30).
	Width int
	// Force draws even when the writer is not a terminal (for tests).
	Force bool
	// Now is the clock (default time.Now; tests replace it).
	Now func() time.Time
}

// Bar is a progress bar. Its methods are safe for concurrent use, and a nil
// *Bar is a valid, silent bar.
type Bar struct {
	mu       sync.Mutex
	w        io.Writer
	label    string
	total    int64
	done     int64
	opts     Options
	enabled  bool
	start    time.Time
	last     time.Time
	drawn    bool
	finished bool
	lastLen  int
}

// New returns a bar for a job of total units (0 or less when unknown) labelled
// label, drawing on w. It draws only when w is a terminal (see IsTerminal).
func New(w io.Writer, label string, total int64) *Bar {
	return NewWithOptions(w, label, total, Options{})
}

// NewWithOptions is New with explicit options.
func NewWithOptions(w io.Writer, label string, total int64, opts Options) *Bar {
	if opts.Delay <= 0 {
		opts.Delay = 2 * time.Second
	}
	if opts.Interval <= 0 {
		opts.Interval = 200 * time.Millisecond
	}
	if opts.Width <= 0 {
		opts.Width = 30
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Bar{w: w, label: label, total: total, opts: opts,
		enabled: opts.Force || IsTerminal(w), start: opts.Now()}
}

// IsTerminal reports whether w is an *os.File connected to a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || f == nil {
		return false
	}
	return isTerminal(f)
}

// SetTotal changes the number of units of the job (e.g. once it is known).
func (b *Bar) SetTotal(total int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.total = total
	b.mu.Unlock()
}

// Add records n more units done and redraws the bar when it is due.
func (b *Bar) Add(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	if !b.enabled || b.finished {
		return
	}
	now := b.opts.Now()
	if now.Sub(b.start) < b.opts.Delay || (b.drawn && now.Sub(b.last) < b.opts.Interval) {
		return
	}
	b.draw(now)
}

// Finish draws the final state of a bar that was shown and ends its line.
// A bar never shown (short job, not a terminal) stays silent. Safe to call
// more than once.
func (b *Bar) Finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.finished = true
	if !b.drawn {
		return
	}
	b.draw(b.opts.Now())
	fmt.Fprint(b.w, "\n")
}

// draw writes the bar; b.mu is held.
func (b *Bar) draw(now time.Time) {
	b.drawn, b.last = true, now
	line := b.render(now)
	pad := ""
	if n := b.lastLen - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	b.lastLen = len(line)
	fmt.Fprint(b.w, "\r"+line+pad)
}

// render formats the bar's line (without the carriage return).
func (b *Bar) render(now time.Time) string {
	elapsed := now.Sub(b.start)
	var sb strings.Builder
	if b.label != "" {
		sb.WriteString(b.label + " ")
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(b.done) / s
	}
	if b.total > 0 {
		frac := float64(b.done) / float64(b.total)
		frac = max(0, min(frac, 1))
		full := int(frac * float64(b.opts.Width))
		sb.WriteString("[" + strings.Repeat("=", full))
		if full < b.opts.Width {
			sb.WriteString(">" + strings.Repeat(" ", b.opts.Width-full-1))
		}
		fmt.Fprintf(&sb, "] %3d%% %d/%d", int(100*frac), b.done, b.total)
	} else {
		fmt.Fprintf(&sb, "%d", b.done)
	}
	fmt.Fprintf(&sb, " %.0f/s %s", rate, fmtDuration(elapsed))
	if b.total > 0 && rate > 0 && b.done < b.total && !b.finished {
		eta := time.Duration(float64(b.total-b.done) / rate * float64(time.Second))
		sb.WriteString(" ETA " + fmtDuration(eta))
	}
	return sb.String()
}

func fmtDuration(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	if s < 60 {
		return fmt.Sprintf("%ds", s)
	}
	if s < 3600 {
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	}
	return fmt.Sprintf("%dh%02dm", s/3600, s/60%60)
}
