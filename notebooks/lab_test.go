package notebooks_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bbd-workbench/bbd/internal/browser"
	"github.com/bbd-workbench/bbd/internal/nbhtml"
)

// labTimeout bounds TestJupyterLabRendersFigure (it takes about 20 s).
const labTimeout = 2 * time.Minute

// labJupyter is the jupyter of the venv, where `make setup` installs JupyterLab.
var labJupyter, _ = filepath.Abs(filepath.Join("..", ".deps", "venv", "bin", "jupyter"))

// TestJupyterLabRendersFigure opens a notebook as users do: JupyterLab (from
// the venv) serves it on localhost with this checkout's GoNB kernel, headless
// Chromium loads the lab page, and the figure of the notebook's output must
// appear in the page, decoded at its size, while the Go kernel starts and
// goes idle.
func TestJupyterLabRendersFigure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts JupyterLab and Chromium (about 20 s); skipped in -short mode")
	}
	if out, err := exec.Command(labJupyter, "lab", "--version").CombinedOutput(); err != nil {
		t.Fatalf("JupyterLab does not run (%s lab --version: %v %s): run `make setup`", labJupyter, err, out)
	}
	if _, err := browser.Path(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), labTimeout)
	defer cancel()

	root := t.TempDir()
	const figW, figH = 160, 100
	nb := nbhtml.FigureNotebook("JupyterLab renders this figure", nbhtml.SampleFigure(figW, figH))
	if err := os.WriteFile(filepath.Join(root, "figure.ipynb"), nb, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	lab := startLab(t, root)
	if err := lab.waitReady(ctx); err != nil {
		t.Fatalf("%v\n%s", err, lab.log())
	}
	t.Logf("JupyterLab %s ready in %s", lab.base, time.Since(start).Round(time.Millisecond))

	// This checkout's GoNB kernel is the one JupyterLab offers as gonb.
	var specs struct {
		Kernelspecs map[string]struct {
			Spec struct {
				Argv []string `json:"argv"`
			} `json:"spec"`
		} `json:"kernelspecs"`
	}
	if err := lab.getJSON(ctx, "/api/kernelspecs", &specs); err != nil {
		t.Fatal(err)
	}
	wantGonb, _ := filepath.Abs(filepath.Join("..", ".deps", "bin", "gonb"))
	if g, ok := specs.Kernelspecs["gonb"]; !ok || len(g.Spec.Argv) == 0 || g.Spec.Argv[0] != wantGonb {
		t.Fatalf("JupyterLab's gonb kernel is %+v, want this checkout's %s: run `make setup`", g, wantGonb)
	}

	start = time.Now()
	page, err := browser.Open(ctx, lab.base+"/lab/tree/figure.ipynb?token="+lab.token, 1280, 900)
	if err != nil {
		t.Fatal(err)
	}
	defer page.Close()
	shot := func() {
		png, err := page.Screenshot(ctx)
		if err != nil {
			t.Logf("screenshot: %v", err)
			return
		}
		out := filepath.Join(".executed", "jupyterlab.png")
		if err := os.MkdirAll(".executed", 0o777); err == nil && os.WriteFile(out, png, 0o644) == nil {
			t.Logf("screenshot of the lab page: notebooks/%s", out)
		}
	}
	const figures = `Array.from(document.querySelectorAll(".jp-Notebook .jp-OutputArea-output img"))`
	if err := page.WaitFor(ctx, figures+`.some(i => i.complete && i.naturalWidth > 0)`); err != nil {
		shot()
		var title string
		_ = page.Eval(ctx, `document.title + " | " + document.body.innerText.slice(0, 500)`, &title)
		t.Fatalf("no figure rendered in the notebook's output area: %v\npage: %s\n%s", err, title, lab.log())
	}
	t.Logf("figure rendered %s after opening the page", time.Since(start).Round(time.Millisecond))
	var imgs []struct {
		Src    string `json:"src"`
		Width  int    `json:"width"`
		Height int    `json:"height"`
	}
	if err := page.Eval(ctx, figures+`.map(i => ({src: i.src.slice(0, 30), width: i.naturalWidth, height: i.naturalHeight}))`, &imgs); err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Width != figW || imgs[0].Height != figH ||
		!(strings.HasPrefix(imgs[0].Src, "data:image/png") || strings.HasPrefix(imgs[0].Src, "blob:")) {
		t.Errorf("figures in the output area: %+v, want one %dx%d PNG (data: or blob: URL)", imgs, figW, figH)
	}

	// Opening the notebook started its kernel: GoNB must come up and go idle.
	start = time.Now()
	state, err := lab.waitKernel(ctx, "gonb")
	shot()
	if err != nil {
		t.Fatalf("the GoNB kernel did not go idle (last state %q): %v\n%s", state, err, lab.log())
	}
	t.Logf("GoNB kernel idle %s later", time.Since(start).Round(time.Millisecond))
}

// labServer is a `jupyter lab` run by a test, in its own process group.
type labServer struct {
	t       *testing.T
	cmd     *exec.Cmd
	base    string // http://127.0.0.1:PORT
	token   string
	runtime string // its JUPYTER_RUNTIME_DIR: kernels' connection files are there
	out     *syncBuffer
	done    chan struct{}
}

// startLab starts JupyterLab on a free loopback port with a random token,
// serving root, with this checkout's kernels (JUPYTER_PATH as in TestNotebooks)
// and its own configuration, data and runtime folders. Cleanup stops it.
func startLab(t *testing.T, root string) *labServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	tok := make([]byte, 16)
	rand.Read(tok)
	dirs := t.TempDir()
	s := &labServer{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), token: hex.EncodeToString(tok),
		runtime: filepath.Join(dirs, "runtime"), out: &syncBuffer{}, done: make(chan struct{})}
	args := []string{"lab", "--no-browser",
		"--ServerApp.ip=127.0.0.1", fmt.Sprintf("--ServerApp.port=%d", port), "--ServerApp.port_retries=0",
		"--IdentityProvider.token=" + s.token, "--ServerApp.root_dir=" + root,
		// Nothing fetched from the internet: no news, no update check, no extension index.
		"--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
		"--LabApp.extension_manager=readonly"}
	if os.Geteuid() == 0 {
		args = append(args, "--allow-root")
	}
	s.cmd = exec.Command(labJupyter, args...)
	s.cmd.Dir = root
	s.cmd.Env = append(jupyterEnv(),
		"JUPYTER_CONFIG_DIR="+filepath.Join(dirs, "config"),
		"JUPYTER_DATA_DIR="+filepath.Join(dirs, "data"),
		"JUPYTER_RUNTIME_DIR="+s.runtime)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting %s lab: %v", labJupyter, err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(s.stop)
	return s
}

// stop asks the server to shut down (it shuts its kernels down, which run in
// process groups of their own), kills its process group and any process left
// that uses its runtime folder (a kernel).
func (s *labServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "POST", s.base+"/api/shutdown", nil)
	req.Header.Set("Authorization", "token "+s.token)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	cancel()
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.t.Logf("JupyterLab did not stop within 15 s of /api/shutdown: killing it")
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	for _, pid := range pidsUsing(s.runtime) {
		s.t.Errorf("process %d (a kernel of the test's JupyterLab) survived the server's shutdown: killing it", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// pidsUsing lists the processes whose command line mentions dir.
func pidsUsing(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(dir)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (s *labServer) log() string { return "JupyterLab's log:\n" + tail(s.out.String(), 4000) }

// getJSON GETs path (with the token) and decodes its JSON.
func (s *labServer) getJSON(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", s.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "token "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// poll calls f every half second until it returns true or an error, the
// server exits or ctx ends.
func (s *labServer) poll(ctx context.Context, what string, f func() (bool, error)) error {
	for {
		ok, err := f()
		if ok || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-s.done:
			return fmt.Errorf("JupyterLab exited while waiting for %s (%v)", what, s.cmd.ProcessState)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitReady waits until the server answers /api/status.
func (s *labServer) waitReady(ctx context.Context) error {
	return s.poll(ctx, "JupyterLab to answer", func() (bool, error) {
		var st map[string]any
		return s.getJSON(ctx, "/api/status", &st) == nil, nil
	})
}

// waitKernel waits until a kernel named name runs and is idle; it returns the
// last execution state seen.
func (s *labServer) waitKernel(ctx context.Context, name string) (string, error) {
	state := "no kernel"
	err := s.poll(ctx, "the "+name+" kernel", func() (bool, error) {
		var kernels []struct {
			Name  string `json:"name"`
			State string `json:"execution_state"`
		}
		if err := s.getJSON(ctx, "/api/kernels", &kernels); err != nil {
			return false, nil
		}
		for _, k := range kernels {
			if k.Name == name {
				state = k.State
				if k.State == "dead" {
					return false, fmt.Errorf("the %s kernel died", name)
				}
				return k.State == "idle", nil
			}
		}
		return false, nil
	})
	return state, err
}

// syncBuffer is a bytes.Buffer safe for a process's output and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
