package browser

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needChromium fails the test, naming `make setup`, when Chromium is missing.
func needChromium(t *testing.T) {
	t.Helper()
	if _, err := Path(); err != nil {
		t.Fatal(err)
	}
}

// pngBytes is a w x h PNG filled with c.
func pngBytes(t *testing.T, w, h int, c color.Color) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// writePage writes files into a temporary folder and returns the file:// URL
// of the first one.
func writePage(t *testing.T, files ...[2]string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f[0]), []byte(f[1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return "file://" + filepath.Join(dir, files[0][0])
}

func TestPathOverride(t *testing.T) {
	t.Setenv(EnvChromium, "/nonexistent/chromium")
	if _, err := Path(); err == nil || !strings.Contains(err.Error(), EnvChromium) {
		t.Fatalf("Path with a missing $%s: %v, want an error naming it", EnvChromium, err)
	}
	t.Setenv(EnvChromium, "")
	p, err := Path()
	if err != nil {
		if !strings.Contains(err.Error(), "make setup") {
			t.Fatalf("error %q does not name `make setup`", err)
		}
		t.Fatal(err)
	}
	t.Logf("chromium: %s", p)
}

func TestDumpDOM(t *testing.T) {
	needChromium(t)
	url := writePage(t, [2]string{"a.html", `<html><body><p id="x">static</p>
<script>setTimeout(() => { document.getElementById("x").textContent = "set by a timer"; }, 1000);</script>
</body></html>`})
	start := time.Now()
	dom, err := DumpDOM(context.Background(), url, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("DumpDOM took %s", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(dom, `<p id="x">set by a timer</p>`) {
		t.Fatalf("the timer's text is not in the DOM (virtual time did not run):\n%s", dom)
	}
}

func TestDumpDOMMissingFile(t *testing.T) {
	needChromium(t)
	// Chromium prints nothing for a page it cannot load: an error, not an empty DOM.
	if dom, err := DumpDOM(context.Background(), "file:///nonexistent/page.html", time.Second); err == nil {
		t.Fatalf("DumpDOM of a missing file succeeded: %q", dom)
	}
}

func TestImagesLoaded(t *testing.T) {
	needChromium(t)
	red := pngBytes(t, 30, 20, color.RGBA{255, 0, 0, 255})
	dataURI := "data:image/png;base64," + base64.StdEncoding.EncodeToString(red)
	svg := `<svg xmlns="http://www.w3.org/2000/svg" width="40" height="10"><rect width="40" height="10" fill="blue"/></svg>`
	page := fmt.Sprintf(`<html><body>
<img id="data" src="%s">
<img id="file" src="fig.png">
<img id="svg" src="fig.svg">
<div style="height: 5000px"></div>
<img id="lazy" loading="lazy" src="fig.png">
<img id="missing" src="missing.png">
<img id="corrupt" src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB">
<img id="internet" src="http://example.invalid/fig.png">
</body></html>`, dataURI)
	url := writePage(t, [2]string{"index.html", page}, [2]string{"fig.png", string(red)}, [2]string{"fig.svg", svg})
	start := time.Now()
	imgs, err := Images(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Images took %s", time.Since(start).Round(time.Millisecond))
	want := []bool{true, true, true, true, false, false, false}
	if len(imgs) != len(want) {
		t.Fatalf("got %d images, want %d: %+v", len(imgs), len(want), imgs)
	}
	for i, im := range imgs {
		if im.Loaded() != want[i] {
			t.Errorf("image %d (%s): Loaded() = %v, want %v (%+v)", i, im.Src, im.Loaded(), want[i], im)
		}
	}
	if imgs[0].Width != 30 || imgs[0].Height != 20 {
		t.Errorf("data: image decoded to %dx%d, want 30x20", imgs[0].Width, imgs[0].Height)
	}
	if len(imgs[0].Src) > 70 {
		t.Errorf("data: URL not shortened: %d characters", len(imgs[0].Src))
	}
	loaded, total, err := ImagesLoaded(context.Background(), url)
	if err != nil || loaded != 4 || total != 7 {
		t.Fatalf("ImagesLoaded = %d, %d, %v; want 4, 7, nil", loaded, total, err)
	}
}

// TestOverHTTP loads a page and its image from a server on the loopback
// interface (the host resolver rules must not block it).
func TestOverHTTP(t *testing.T) {
	needChromium(t)
	fig := pngBytes(t, 8, 8, color.Black)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<html><body><img src="/fig.png"></body></html>`)
	})
	mux.HandleFunc("/fig.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Write(fig)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, url := range []string{srv.URL, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)} {
		loaded, total, err := ImagesLoaded(context.Background(), url)
		if err != nil || loaded != 1 || total != 1 {
			t.Errorf("ImagesLoaded(%s) = %d, %d, %v; want 1, 1, nil", url, loaded, total, err)
		}
	}
}

func TestScreenshot(t *testing.T) {
	needChromium(t)
	url := writePage(t, [2]string{"a.html", `<html><body style="margin:0; background:rgb(0,128,0)"></body></html>`})
	b, err := Screenshot(context.Background(), url, 320, 200)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if got := img.Bounds().Size(); got != image.Pt(320, 200) {
		t.Errorf("screenshot is %v, want 320x200", got)
	}
	r, g, bl, _ := img.At(160, 100).RGBA()
	if r>>8 != 0 || g>>8 != 128 || bl>>8 != 0 {
		t.Errorf("screenshot centre pixel is (%d,%d,%d), want the page's green (0,128,0)", r>>8, g>>8, bl>>8)
	}
}

// TestPageWaitForAndClose waits for a script-built page, checks Eval's
// values and errors, and that Close leaves no Chromium process behind.
func TestPageWaitForAndClose(t *testing.T) {
	needChromium(t)
	url := writePage(t, [2]string{"a.html", `<html><body><script>
setTimeout(() => { const d = document.createElement("div"); d.id = "late"; d.textContent = "built"; document.body.append(d); }, 700);
</script></body></html>`})
	ctx := context.Background()
	p, err := Open(ctx, url, 800, 600)
	if err != nil {
		t.Fatal(err)
	}
	pgid := p.proc.cmd.Process.Pid
	if err := p.WaitFor(ctx, `document.getElementById("late") !== null`); err != nil {
		t.Fatal(err)
	}
	var text string
	if err := p.Eval(ctx, `document.getElementById("late").textContent`, &text); err != nil || text != "built" {
		t.Errorf("Eval = %q, %v; want \"built\"", text, err)
	}
	var n float64
	if err := p.Eval(ctx, `Promise.resolve(6 * 7)`, &n); err != nil || n != 42 {
		t.Errorf("Eval of a promise = %v, %v; want 42", n, err)
	}
	if err := p.Eval(ctx, `(() => { throw new Error("boom") })()`, nil); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Eval of a throw: %v, want an error with the exception", err)
	}
	dom, err := p.DOM(ctx)
	if err != nil || !strings.Contains(dom, `<div id="late">built</div>`) {
		t.Errorf("DOM = %q, %v", dom, err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	err = p.WaitFor(short, `false`)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitFor(false) = %v, want a deadline error", err)
	}
	profile := p.proc.profile
	p.Close()
	if groupAlive(pgid) {
		t.Errorf("a process of chromium's group %d still runs after Close", pgid)
	}
	if _, err := os.Stat(profile); !os.IsNotExist(err) {
		t.Errorf("profile %s not removed: %v", profile, err)
	}
}

// TestContextEnds checks that an ended context stops Chromium and its process group.
func TestContextEnds(t *testing.T) {
	needChromium(t)
	url := writePage(t, [2]string{"a.html", `<html><body>never ready</body></html>`})
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Open(ctx, url, 400, 300)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	pgid := p.proc.cmd.Process.Pid
	cancel()
	select {
	case <-p.proc.done:
	case <-time.After(10 * time.Second):
		t.Fatal("chromium still runs 10 s after its context ended")
	}
	if err := p.Eval(context.Background(), "1", nil); err == nil {
		t.Error("Eval after the context ended succeeded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for groupAlive(pgid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if groupAlive(pgid) {
		t.Errorf("a process of chromium's group %d still runs 5 s after its context ended", pgid)
	}
}
