package browser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// EnvChromium names the environment variable that overrides the Chromium binary.
const EnvChromium = "BBD_CHROMIUM"

// DefaultChromium is where Debian's chromium package puts its launcher.
const DefaultChromium = "/usr/bin/chromium"

// DefaultTimeout bounds a call whose context has no deadline.
var DefaultTimeout = 90 * time.Second

// Path returns the Chromium binary: $BBD_CHROMIUM when set, else
// /usr/bin/chromium, else chromium or chromium-browser on PATH. The error
// names `make setup`, which installs Debian's chromium.
func Path() (string, error) {
	if p := os.Getenv(EnvChromium); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("chromium %s (from $%s) does not run: %w", p, EnvChromium, err)
		}
		return p, nil
	}
	if _, err := exec.LookPath(DefaultChromium); err == nil {
		return DefaultChromium, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("chromium not found (%s, $%s, PATH): run `make setup` (installs Debian's chromium)", DefaultChromium, EnvChromium)
}

// Flags are the command-line flags of every run besides --user-data-dir:
// headless, as root in a container (no sandbox, no GPU, no D-Bus), with
// nothing of Chromium's own talking to the network, and every host name but
// localhost unresolvable.
var Flags = []string{
	"--headless",
	"--no-sandbox",
	"--disable-gpu",
	"--disable-quic",
	"--no-first-run",
	"--no-default-browser-check",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--disable-extensions",
	"--disable-dev-shm-usage",
	"--hide-scrollbars",
	"--mute-audio",
	"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE [::1]",
}

// process is one running Chromium with its temporary profile.
type process struct {
	cmd     *exec.Cmd
	profile string
	stderr  *tailBuffer
	done    chan struct{} // closed when cmd.Wait returned
	waitErr error
	once    sync.Once
}

// start runs Chromium with Flags, a fresh profile and args. ctx ending kills
// its process group. extra are passed as file descriptors 3, 4...
func start(ctx context.Context, args []string, stdout *bytes.Buffer, extra ...*os.File) (*process, error) {
	bin, err := Path()
	if err != nil {
		return nil, err
	}
	profile, err := os.MkdirTemp("", "bbd-chromium-")
	if err != nil {
		return nil, err
	}
	all := append(append(append([]string{}, Flags...), "--user-data-dir="+profile), args...)
	cmd := exec.Command(bin, all...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Chromium's temporary files (shared memory under --disable-dev-shm-usage)
	// go into the profile, removed with it even when Chromium is killed.
	tmp := filepath.Join(profile, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		os.RemoveAll(profile)
		return nil, err
	}
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	p := &process{cmd: cmd, profile: profile, stderr: &tailBuffer{max: 8 << 10}, done: make(chan struct{})}
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.Stderr = p.stderr
	cmd.ExtraFiles = extra
	if err := cmd.Start(); err != nil {
		os.RemoveAll(profile)
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			p.kill()
		case <-p.done:
		}
	}()
	return p, nil
}

// kill kills the process group (Chromium's renderers, GPU and utility
// processes with it).
func (p *process) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

// stop waits up to grace for Chromium to exit, kills its process group, and
// removes the profile. It returns Wait's error.
func (p *process) stop(grace time.Duration) error {
	p.once.Do(func() {
		select {
		case <-p.done:
		case <-time.After(grace):
		}
		// Whatever is left of the group (a renderer that outlived the browser).
		p.kill()
		<-p.done
		// SIGKILL is delivered asynchronously: wait (briefly) until the
		// group's processes are dead, so that nothing of Chromium outlives
		// the call.
		for i := 0; i < 100 && groupAlive(p.cmd.Process.Pid); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		os.RemoveAll(p.profile)
	})
	return p.waitErr
}

// groupAlive reports whether a process of group pgid runs (zombies, which
// the children reparented to init may stay for a while, do not count).
func groupAlive(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return syscall.Kill(-pgid, 0) == nil
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 3 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

// withTimeout gives ctx DefaultTimeout unless it has a deadline.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// DumpDOM loads url and returns the serialized DOM after the page's scripts
// ran for up to wait of virtual time (Chromium's --virtual-time-budget: time
// runs fast while the page is idle, and waits for its network fetches).
func DumpDOM(ctx context.Context, url string, wait time.Duration) (string, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	var out bytes.Buffer
	p, err := start(ctx, []string{
		fmt.Sprintf("--virtual-time-budget=%d", wait.Milliseconds()),
		"--dump-dom", url,
	}, &out)
	if err != nil {
		return "", err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
	}
	werr := p.stop(0)
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("chromium --dump-dom %s: %w\n%s", url, err, p.stderr)
	}
	if werr != nil {
		return "", fmt.Errorf("chromium --dump-dom %s: %w\n%s", url, werr, p.stderr)
	}
	if out.Len() == 0 {
		return "", fmt.Errorf("chromium --dump-dom %s printed nothing\n%s", url, p.stderr)
	}
	return out.String(), nil
}

// tailBuffer keeps the last max bytes written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

// String returns the kept bytes without Chromium's harmless complaints about
// the missing D-Bus and the Debian launcher's shell noise.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var keep []string
	for _, l := range strings.Split(string(t.b), "\n") {
		if strings.Contains(l, "dbus/") || strings.Contains(l, "unexpected operator") || strings.TrimSpace(l) == "" {
			continue
		}
		keep = append(keep, l)
	}
	if len(keep) == 0 {
		return "(chromium printed nothing on stderr)"
	}
	return "chromium stderr:\n" + strings.Join(keep, "\n")
}

var errClosed = errors.New("browser: chromium exited")
