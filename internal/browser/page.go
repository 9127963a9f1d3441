package browser

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Page is one tab of a headless Chromium started by Open, driven through the
// Chrome DevTools Protocol over --remote-debugging-pipe.
type Page struct {
	proc    *process
	conn    *conn
	session string
	cancel  context.CancelFunc
}

// Open starts Chromium, opens url in a width x height viewport and waits
// until the document has loaded (readyState "complete"; a script-built page
// may need WaitFor after that). Chromium is killed when ctx ends (after
// DefaultTimeout when ctx has no deadline) or Close is called.
func Open(ctx context.Context, url string, width, height int) (*Page, error) {
	ctx, cancel := withTimeout(ctx)
	// fd 3: Chromium reads the protocol from it; fd 4: Chromium writes to it.
	toR, toW, err := os.Pipe()
	if err != nil {
		cancel()
		return nil, err
	}
	fromR, fromW, err := os.Pipe()
	if err != nil {
		cancel()
		toR.Close()
		toW.Close()
		return nil, err
	}
	proc, err := start(ctx, []string{"--remote-debugging-pipe"}, nil, toR, fromW)
	toR.Close()
	fromW.Close()
	if err != nil {
		cancel()
		toW.Close()
		fromR.Close()
		return nil, err
	}
	p := &Page{proc: proc, conn: newConn(toW, fromR), cancel: cancel}
	if err := p.open(ctx, url, width, height); err != nil {
		p.Close()
		return nil, fmt.Errorf("opening %s in chromium: %w\n%s", url, err, proc.stderr)
	}
	return p, nil
}

func (p *Page) open(ctx context.Context, url string, width, height int) error {
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := p.conn.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		return err
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := p.conn.call(ctx, "", "Target.attachToTarget",
		map[string]any{"targetId": target.TargetID, "flatten": true}, &attached); err != nil {
		return err
	}
	p.session = attached.SessionID
	if err := p.call(ctx, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false,
	}, nil); err != nil {
		return err
	}
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	if err := p.call(ctx, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return err
	}
	if nav.ErrorText != "" {
		return errors.New(nav.ErrorText)
	}
	return p.WaitFor(ctx, `document.readyState === "complete" && location.href !== "about:blank"`)
}

func (p *Page) call(ctx context.Context, method string, params, result any) error {
	return p.conn.call(ctx, p.session, method, params, result)
}

// Eval evaluates the JavaScript expression expr in the page, awaits it when
// it is a promise, and decodes its value (JSON) into out (nil: ignored). A
// thrown exception is an error.
func (p *Page) Eval(ctx context.Context, expr string, out any) error {
	var r struct {
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception *struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := p.call(ctx, "Runtime.evaluate", map[string]any{
		"expression": expr, "returnByValue": true, "awaitPromise": true,
	}, &r); err != nil {
		return err
	}
	if e := r.ExceptionDetails; e != nil {
		if e.Exception != nil && e.Exception.Description != "" {
			return fmt.Errorf("javascript: %s", e.Exception.Description)
		}
		return fmt.Errorf("javascript: %s", e.Text)
	}
	if out == nil {
		return nil
	}
	if len(r.Result.Value) == 0 {
		return fmt.Errorf("javascript: %s has no JSON value (type %s)", expr, r.Result.Type)
	}
	return json.Unmarshal(r.Result.Value, out)
}

// PollInterval is how often WaitFor evaluates its condition.
var PollInterval = 200 * time.Millisecond

// WaitFor evaluates the JavaScript expression cond every PollInterval until
// it is true, or fails when ctx ends with the last value or error seen.
func (p *Page) WaitFor(ctx context.Context, cond string) error {
	var last string
	for {
		var ok any
		if err := p.Eval(ctx, cond, &ok); err != nil {
			// During a navigation the execution context comes and goes.
			last = "error: " + err.Error()
		} else if ok == true {
			return nil
		} else {
			last = fmt.Sprintf("value %v", ok)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last %s)", cond, ctx.Err(), last)
		case <-p.proc.done:
			return fmt.Errorf("waiting for %s: %w (last %s)", cond, errClosed, last)
		case <-time.After(PollInterval):
		}
	}
}

// Screenshot returns a PNG of the viewport.
func (p *Page) Screenshot(ctx context.Context) ([]byte, error) {
	var r struct {
		Data string `json:"data"`
	}
	if err := p.call(ctx, "Page.captureScreenshot", map[string]any{"format": "png"}, &r); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(r.Data)
}

// DOM returns the page's current DOM serialized as HTML.
func (p *Page) DOM(ctx context.Context) (string, error) {
	var s string
	err := p.Eval(ctx, "document.documentElement.outerHTML", &s)
	return s, err
}

// Image is one <img> of a page.
type Image struct {
	Src     string `json:"src"`     // its URL; data: URLs are cut after 64 characters
	Width   int    `json:"width"`   // natural (decoded) size in pixels; 0 when nothing decoded
	Height  int    `json:"height"`  //
	Decoded bool   `json:"decoded"` // its decode() promise resolved
	Error   string `json:"error"`   // why decode() failed
}

// Loaded reports whether the image was fetched and decoded to a picture of
// non-zero size: what a person sees as a figure rather than a broken icon.
func (im Image) Loaded() bool { return im.Decoded && im.Width > 0 && im.Height > 0 }

// imagesJS makes every <img> load now (lazy ones included, as if scrolled
// to), waits until each has decoded or failed, and describes them.
const imagesJS = `(async () => {
  const imgs = Array.from(document.images);
  for (const i of imgs) i.loading = "eager";
  const res = await Promise.allSettled(imgs.map(i => i.decode()));
  return imgs.map((i, k) => {
    let src = i.currentSrc || i.src;
    if (src.startsWith("data:") && src.length > 64) src = src.slice(0, 64) + "...";
    return {src, width: i.naturalWidth, height: i.naturalHeight,
      decoded: res[k].status === "fulfilled",
      error: res[k].status === "rejected" ? String(res[k].reason) : ""};
  });
})()`

// Images waits until every <img> of the page has loaded or failed and
// describes each, in document order.
func (p *Page) Images(ctx context.Context) ([]Image, error) {
	var imgs []Image
	if err := p.Eval(ctx, imagesJS, &imgs); err != nil {
		return nil, err
	}
	return imgs, nil
}

// Close closes Chromium (killing what is left of it), removes its profile and
// returns nil or why Chromium had failed.
func (p *Page) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = p.conn.call(ctx, "", "Browser.close", nil, nil)
	cancel()
	p.proc.stop(5 * time.Second)
	p.conn.close()
	p.cancel()
	return nil
}

// Screenshot opens url in a width x height viewport, waits for its images and
// returns a PNG of the viewport.
func Screenshot(ctx context.Context, url string, width, height int) ([]byte, error) {
	p, err := Open(ctx, url, width, height)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if _, err := p.Images(ctx); err != nil {
		return nil, err
	}
	return p.Screenshot(ctx)
}

// Images opens url and describes its <img> elements once each has loaded or
// failed (see Page.Images).
func Images(ctx context.Context, url string) ([]Image, error) {
	p, err := Open(ctx, url, 1280, 1024)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	return p.Images(ctx)
}

// ImagesLoaded opens url and counts its <img> elements (total) and those that
// loaded (Image.Loaded). A report shows every figure when loaded == total > 0.
func ImagesLoaded(ctx context.Context, url string) (loaded, total int, err error) {
	imgs, err := Images(ctx, url)
	if err != nil {
		return 0, 0, err
	}
	for _, im := range imgs {
		if im.Loaded() {
			loaded++
		}
	}
	return loaded, len(imgs), nil
}

// conn is a DevTools protocol connection over Chromium's debugging pipe:
// JSON messages, each ended by a NUL byte.
type conn struct {
	w   *os.File
	r   *os.File
	wmu sync.Mutex

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan message
	err     error         // why reading stopped
	done    chan struct{} // closed when reading stopped
}

type message struct {
	ID        int64           `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    any             `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    string `json:"data"`
	} `json:"error,omitempty"`
}

func newConn(w, r *os.File) *conn {
	c := &conn{w: w, r: r, pending: map[int64]chan message{}, done: make(chan struct{})}
	go c.read()
	return c
}

// read delivers replies to their callers; events are not needed and dropped.
func (c *conn) read() {
	br := bufio.NewReaderSize(c.r, 1<<20)
	var err error
	for {
		var b []byte
		b, err = br.ReadBytes(0)
		if err != nil {
			break
		}
		var m message
		if json.Unmarshal(b[:len(b)-1], &m) != nil || m.ID == 0 {
			continue
		}
		c.mu.Lock()
		ch := c.pending[m.ID]
		delete(c.pending, m.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
	c.mu.Lock()
	c.err = fmt.Errorf("%w (%v)", errClosed, err)
	c.mu.Unlock()
	close(c.done)
}

// call sends method with params in session ("" for the browser) and decodes
// the reply's result into result (nil: ignored).
func (c *conn) call(ctx context.Context, session, method string, params, result any) error {
	ch := make(chan message, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()
	b, err := json.Marshal(message{ID: id, SessionID: session, Method: method, Params: params})
	if err != nil {
		return err
	}
	c.wmu.Lock()
	_, err = c.w.Write(append(b, 0))
	c.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return fmt.Errorf("%s: %s %s", method, m.Error.Message, m.Error.Data)
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	case <-c.done:
		return fmt.Errorf("%s: %w", method, c.err)
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// close closes both ends (a blocked read returns) and waits for the reader.
func (c *conn) close() {
	c.w.Close()
	c.r.Close()
	<-c.done
}
