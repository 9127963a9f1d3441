package notebooks_test

import (
	"github.com/bbd-workbench/bbd/internal/nbhtml"
	"github.com/bbd-workbench/bbd/internal/testzoo"

	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// cellTimeout bounds one cell (compile, link and run); notebookTimeout the whole run.
const (
	cellTimeout     = 20 * time.Minute
	notebookTimeout = 45 * time.Minute
)

// TestNotebooks executes every notebook of this folder headless with the GoNB kernel and
// fails with the cells' error text if any cell fails or a notebook shows no PNG figure.
// Each executed notebook is also written as a standalone HTML page (internal/nbhtml)
// beside it in .executed/.
func TestNotebooks(t *testing.T) {
	notebooks, err := filepath.Glob("*.ipynb")
	if err != nil {
		t.Fatal(err)
	}
	if len(notebooks) == 0 {
		t.Fatal("no notebooks/*.ipynb found")
	}
	if testing.Short() {
		t.Skip("notebooks take minutes to run; skipped in -short mode")
	}
	jupyter := checkJupyter(t)
	// The notebooks show the shared reduced test zoo (built once for every
	// package's tests) unless BBD_ZOO names another.
	if os.Getenv("BBD_ZOO") == "" {
		dir, _ := testzoo.Reduced(t)
		t.Setenv("BBD_ZOO", dir)
	}
	// The reproduction notebooks (03-07, nbutil.Reproduction) run on that zoo with
	// the tiny settings of reproduce's own test, and share one output folder, so a
	// notebook reads what an earlier one computed (06 the fine-pruning of 03 and
	// the scans of 05), as they do for a user.
	t.Setenv("BBD_DATA", "")
	t.Setenv("BBD_SETTINGS", "tiny")
	t.Setenv("BBD_REPRO_OUT", filepath.Join(t.TempDir(), "repro"))
	outDir, err := filepath.Abs(".executed")
	if err != nil {
		t.Fatal(err)
	}
	// Each executed notebook is written as HTML while the next one runs.
	var exports sync.WaitGroup
	defer exports.Wait()
	for _, nb := range notebooks {
		executed := ""
		t.Run(strings.TrimSuffix(nb, ".ipynb"), func(t *testing.T) {
			executed = runNotebook(t, jupyter, nb, outDir)
		})
		if executed == "" {
			continue
		}
		exports.Add(1)
		go func() {
			defer exports.Done()
			exportHTML(t, executed, outDir)
		}()
	}
}

// exportHTML writes the executed notebook as a standalone HTML page into outDir
// (internal/nbhtml) and checks that the page is there.
func exportHTML(t *testing.T, executed, outDir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	page, err := nbhtml.Export(ctx, executed, outDir)
	switch st, serr := os.Stat(page); {
	case err != nil:
		t.Errorf("writing %s as HTML: %v", executed, err)
	case serr != nil:
		t.Errorf("HTML page of %s: %v", executed, serr)
	case st.Size() == 0:
		t.Errorf("HTML page %s is empty", page)
	default:
		t.Logf("%s written as %s in %s", filepath.Base(executed), page, time.Since(start).Round(time.Second))
	}
}

// kernelDir is the Jupyter data dir where `make setup` registers this checkout's GoNB
// kernel; jupyterEnv is the environment the tests run jupyter with: JUPYTER_PATH starting
// with kernelDir, so that this checkout's kernel is used, not another checkout's or the
// user's own "gonb".
var kernelDir, _ = filepath.Abs(filepath.Join("..", ".deps", "jupyter"))

func jupyterEnv() []string {
	p := kernelDir
	if old := os.Getenv("JUPYTER_PATH"); old != "" {
		p += string(os.PathListSeparator) + old
	}
	return append(os.Environ(), "JUPYTER_PATH="+p)
}

// checkJupyter returns the jupyter command, or fails naming `make setup` when Jupyter,
// nbconvert or this checkout's GoNB kernel is missing.
func checkJupyter(t *testing.T) string {
	t.Helper()
	jupyter, err := exec.LookPath("jupyter")
	if err != nil {
		t.Fatalf("jupyter is not on PATH (%v): run `make setup` (installs Jupyter and the GoNB kernel)", err)
	}
	if out, err := exec.Command(jupyter, "nbconvert", "--version").CombinedOutput(); err != nil {
		t.Fatalf("`jupyter nbconvert` does not run (%v: %s): run `make setup`", err, out)
	}
	list := exec.Command(jupyter, "kernelspec", "list", "--json")
	list.Env = jupyterEnv()
	out, err := list.Output()
	if err != nil {
		t.Fatalf("`jupyter kernelspec list` failed (%v): run `make setup`", err)
	}
	var specs struct {
		Kernelspecs map[string]struct {
			ResourceDir string `json:"resource_dir"`
			Spec        struct {
				Argv []string `json:"argv"`
			} `json:"spec"`
		} `json:"kernelspecs"`
	}
	if err := json.Unmarshal(out, &specs); err != nil {
		t.Fatalf("parsing `jupyter kernelspec list --json`: %v", err)
	}
	gonb, ok := specs.Kernelspecs["gonb"]
	if !ok {
		t.Fatal("the GoNB Jupyter kernel (gonb) is not registered: run `make setup`")
	}
	if want := filepath.Join(kernelDir, "kernels", "gonb"); filepath.Clean(gonb.ResourceDir) != want {
		t.Fatalf("the GoNB kernel found is %s, not this checkout's %s: run `make setup`", gonb.ResourceDir, want)
	}
	if len(gonb.Spec.Argv) == 0 {
		t.Fatalf("GoNB kernel spec in %s has no argv: run `make setup`", gonb.ResourceDir)
	}
	if _, err := exec.LookPath(gonb.Spec.Argv[0]); err != nil {
		t.Fatalf("GoNB kernel binary %q of %s is missing (%v): run `make setup`", gonb.Spec.Argv[0], gonb.ResourceDir, err)
	}
	return jupyter
}

// runNotebook executes one notebook into outDir, checks its outputs and returns the
// executed notebook's path ("" when nbconvert wrote none).
func runNotebook(t *testing.T, jupyter, nb, outDir string) string {
	ctx, cancel := context.WithTimeout(context.Background(), notebookTimeout)
	defer cancel()
	out := filepath.Join(outDir, nb)
	_ = os.Remove(out)
	// --allow-errors: the executed notebook is written even when a cell fails, so the
	// error text GoNB renders (compiler messages are in an HTML display) can be reported.
	cmd := exec.CommandContext(ctx, jupyter, "nbconvert", "--to", "notebook", "--execute",
		"--allow-errors",
		fmt.Sprintf("--ExecutePreprocessor.timeout=%d", int(cellTimeout.Seconds())),
		"--ExecutePreprocessor.kernel_name=gonb",
		"--output-dir", outDir, nb)
	cmd.Env = jupyterEnv()
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s executed in %s", nb, time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("jupyter nbconvert %s: %v\n%s", nb, err, tail(log.String(), 4000))
	}
	executed, err := readNotebook(out)
	if err != nil {
		t.Fatalf("reading executed notebook: %v\nnbconvert log:\n%s", err, tail(log.String(), 4000))
	}
	failures := cellFailures(executed)
	for _, f := range failures {
		t.Error(f)
	}
	if len(failures) > 0 {
		t.Logf("executed notebook with all outputs: %s", out)
	}
	// libtensorflow's start-up lines are kept out of the cells' output (nbutil imports
	// internal/tfquiet).
	if raw, err := os.ReadFile(out); err == nil {
		for _, l := range []string{"absl::InitializeLog", "oneDNN custom operations"} {
			if bytes.Contains(raw, []byte(l)) {
				t.Errorf("%s: a cell's output shows TensorFlow's start-up line %q", nb, l)
			}
		}
	}
	if n := countPNG(executed); n == 0 {
		t.Errorf("%s shows no figure: no display_data output with image/png (did a cell forget gonbui.Sync()?)", nb)
	} else {
		t.Logf("%s shows %d PNG figure(s)", nb, n)
	}
	return out
}

type notebook struct {
	Cells []cell `json:"cells"`
}

type cell struct {
	CellType       string          `json:"cell_type"`
	ExecutionCount *int            `json:"execution_count"`
	Source         multiline       `json:"source"`
	Outputs        []output        `json:"outputs"`
	Metadata       json.RawMessage `json:"metadata"`
}

type output struct {
	OutputType string               `json:"output_type"`
	Name       string               `json:"name"` // stream: stdout or stderr
	Text       multiline            `json:"text"`
	Data       map[string]multiline `json:"data"`
	EName      string               `json:"ename"`
	EValue     string               `json:"evalue"`
	Traceback  []string             `json:"traceback"`
}

// multiline is a notebook string field: a string or a list of strings to concatenate.
type multiline string

func (m *multiline) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*m = multiline(s)
		return nil
	}
	var parts []string
	if err := json.Unmarshal(b, &parts); err != nil {
		// Not text (e.g. application/json data): keep it raw.
		*m = multiline(b)
		return nil
	}
	*m = multiline(strings.Join(parts, ""))
	return nil
}

func readNotebook(path string) (*notebook, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var nb notebook
	if err := json.Unmarshal(b, &nb); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &nb, nil
}

// exitStatus matches the line GoNB prints on stderr when a `!` shell command or the cell's
// program exits non-zero. A failing shell command does not make the cell fail in Jupyter's
// eyes, so this line is the only sign of it.
var exitStatus = regexp.MustCompile(`(?m)^exit status [1-9][0-9]*\s*$`)

// cellFailures describes every failed code cell: its number, source head and error text
// (the error output, GoNB's HTML error display turned into text, and stderr).
func cellFailures(nb *notebook) []string {
	var failures []string
	for i, c := range nb.Cells {
		if c.CellType != "code" {
			continue
		}
		var errText, htmlText, stderr strings.Builder
		failed := false
		for _, o := range c.Outputs {
			switch o.OutputType {
			case "error":
				failed = true
				fmt.Fprintf(&errText, "%s: %s\n", o.EName, o.EValue)
				for _, l := range o.Traceback {
					if l != o.EValue {
						fmt.Fprintln(&errText, l)
					}
				}
			case "stream":
				if o.Name == "stderr" {
					stderr.WriteString(ansiRe.ReplaceAllString(string(o.Text), ""))
					if exitStatus.MatchString(string(o.Text)) {
						failed = true
					}
				}
			case "display_data", "execute_result":
				if h, ok := o.Data["text/html"]; ok && strings.Contains(string(h), "gonb-err") {
					htmlText.WriteString(htmlToText(string(h)))
				}
			}
		}
		if !failed {
			continue
		}
		msg := fmt.Sprintf("cell %d failed:\n--- source ---\n%s\n--- error ---\n%s", i+1,
			head(string(c.Source), 15), errText.String())
		if htmlText.Len() > 0 {
			msg += "--- GoNB error display ---\n" + tail(htmlText.String(), 4000) + "\n"
		}
		if stderr.Len() > 0 {
			msg += "--- stderr ---\n" + tail(stderr.String(), 4000) + "\n"
		}
		failures = append(failures, msg)
	}
	return failures
}

// countPNG counts display_data (or execute_result) outputs holding an image/png.
func countPNG(nb *notebook) int {
	n := 0
	for _, c := range nb.Cells {
		for _, o := range c.Outputs {
			if o.OutputType != "display_data" && o.OutputType != "execute_result" {
				continue
			}
			if png, ok := o.Data["image/png"]; ok && len(png) > 0 {
				n++
			}
		}
	}
	return n
}

var (
	styleRe  = regexp.MustCompile(`(?s)<style>.*?</style>`)
	tagRe    = regexp.MustCompile(`<[^>]*>`)
	blanksRe = regexp.MustCompile(`\n\s*\n+`)
	ansiRe   = regexp.MustCompile("\x1b\\[[0-9;]*m")
)

func htmlToText(h string) string {
	h = styleRe.ReplaceAllString(h, "")
	h = tagRe.ReplaceAllString(h, "")
	h = html.UnescapeString(h)
	return strings.TrimSpace(blanksRe.ReplaceAllString(h, "\n"))
}

func head(s string, lines int) string {
	parts := strings.SplitN(s, "\n", lines+1)
	if len(parts) > lines {
		return strings.Join(parts[:lines], "\n") + "\n..."
	}
	return s
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
