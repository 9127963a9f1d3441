package progress

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newForced(buf *bytes.Buffer, total int64) (*Bar, *fakeClock) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	return NewWithOptions(buf, "job", total, Options{Force: true, Now: c.now, Width: 10}), c
}

func TestSilentBeforeDelay(t *testing.T) {
	var buf bytes.Buffer
	b, c := newForced(&buf, 100)
	for range 50 {
		c.advance(30 * time.Millisecond) // 1.5 s in all
		b.Add(1)
	}
	b.Finish()
	if buf.Len() != 0 {
		t.Fatalf("a job shorter than the delay drew %q", buf.String())
	}
}

func TestRedrawRateLimited(t *testing.T) {
	var buf bytes.Buffer
	b, c := newForced(&buf, 1000)
	c.advance(2 * time.Second)
	// 100 updates over 2 s: at most 2 s / 200 ms + 1 = 11 redraws.
	for range 100 {
		b.Add(10)
		c.advance(20 * time.Millisecond)
	}
	out := buf.String()
	draws := strings.Count(out, "\r")
	if draws < 5 || draws > 11 {
		t.Fatalf("%d redraws for 100 updates in 2 s, want 5..11:\n%q", draws, out)
	}
	b.Finish()
	b.Finish() // idempotent
	out = buf.String()
	if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("Finish should end the line once: %q", out)
	}
	last := out[strings.LastIndex(out, "\r")+1:]
	if !strings.Contains(last, "[==========] 100% 1000/1000") || strings.Contains(last, "ETA") {
		t.Fatalf("final line %q", last)
	}
	b.Add(1) // after Finish: silent
	if buf.String() != out {
		t.Fatal("Add after Finish drew")
	}
}

func TestRenderPartialAndUnknownTotal(t *testing.T) {
	var buf bytes.Buffer
	b, c := newForced(&buf, 200)
	c.advance(5 * time.Second)
	b.Add(50)
	if got := buf.String(); !strings.Contains(got, "job [==>       ]  25% 50/200 10/s 5s ETA 15s") {
		t.Fatalf("got %q", got)
	}
	buf.Reset()
	u, c2 := newForced(&buf, 0)
	c2.advance(3 * time.Second)
	u.Add(30)
	if got := buf.String(); got != "\rjob 30 10/s 3s" {
		t.Fatalf("unknown total: got %q", got)
	}
}

func TestNotTerminalIsSilent(t *testing.T) {
	var buf bytes.Buffer
	c := &fakeClock{t: time.Unix(0, 0)}
	b := NewWithOptions(&buf, "job", 10, Options{Now: c.now})
	c.advance(time.Minute)
	b.Add(5)
	b.Finish()
	if buf.Len() != 0 {
		t.Fatalf("bar drew on a buffer: %q", buf.String())
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Fatal("a regular file is not a terminal")
	}
	var nilBar *Bar
	nilBar.Add(1)
	nilBar.SetTotal(3)
	nilBar.Finish()
}
