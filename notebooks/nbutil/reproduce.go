package nbutil

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/janpfeifer/gonb/gonbui"

	"github.com/bbd-workbench/bbd/reproduce"
)

// The environment variables Reproduction reads.
const (
	// EnvData names the CSAW-HackML-2020 data folder the paper used
	// (clean_validation_data.h5, clean_test_data.h5, *_poisoned_data.h5):
	// when set, the notebooks run on the competition files.
	EnvData = "BBD_DATA"
	// EnvModels names the folder of the four competition BadNets (with
	// EnvData only); default: the shared badnets folder (Shared("badnets")).
	EnvModels = "BBD_MODELS"
	// EnvZoo names a built bbd zoo (bbd zoo build) to run on when EnvData is
	// not set; default: DefaultZooDir, where notebook 02 builds the reduced zoo.
	EnvZoo = "BBD_ZOO"
	// EnvReproOut names the output folder of the reproduction: its cache,
	// fine-pruned models and Neural Cleanse scans; default: DefaultReproOut.
	EnvReproOut = "BBD_REPRO_OUT"
	// EnvSettings sizes the reproduction: "paper", "small" (default) or
	// "tiny"; see ReproductionSettings.
	EnvSettings = "BBD_SETTINGS"
)

// Settings names of EnvSettings.
const (
	SettingsPaper = "paper"
	SettingsSmall = "small"
	SettingsTiny  = "tiny"
)

// DefaultZooDir is the zoo the notebooks read when BBD_ZOO is not set: the
// temporary folder notebook 02 builds the reduced zoo into.
func DefaultZooDir() string { return filepath.Join(os.TempDir(), "bbd-notebook-zoo") }

// Reproduction returns a reproduce.Runner built from the environment, so that
// the notebooks 03-07 run the paper's experiments on one source with one
// cache:
//
//   - source: the competition files when BBD_DATA names their data folder
//     (the BadNets from BBD_MODELS, default the shared badnets folder), else
//     the zoo in BBD_ZOO (default DefaultZooDir, built by notebook 02);
//   - settings: BBD_SETTINGS (see ReproductionSettings), default "small";
//   - output folder: BBD_REPRO_OUT, default DefaultReproOut.
//
// Every unit of work is cached in the output folder, so a notebook run again,
// or a notebook needing another's results (06 uses the fine-pruned models of
// 03 and the scans of 05), reads them instead of computing them. The runner
// prints a line to stdout (the cell's output) for each unit it computes, none for
// the units it reads from the cache.
func Reproduction() (*reproduce.Runner, error) {
	src, err := ReproductionSource()
	if err != nil {
		return nil, err
	}
	name, set, err := ReproductionSettings(src)
	if err != nil {
		return nil, err
	}
	out := os.Getenv(EnvReproOut)
	if out == "" {
		out = DefaultReproOut(src, name)
	}
	return reproduce.New(reproduce.Config{Source: src, Out: out, Settings: set, Progress: computing(os.Stdout)})
}

// computing returns a progress callback that writes "computing <experiment> <unit>"
// once per unit of work that is computed, not read from the cache: a cell whose
// results are all cached prints nothing.
func computing(w io.Writer) func(reproduce.Progress) {
	var mu sync.Mutex
	seen := map[string]bool{}
	return func(p reproduce.Progress) {
		if p.Cached || p.Total == 0 || p.Done >= p.Total {
			return
		}
		unit := p.Experiment + " " + p.Unit
		mu.Lock()
		defer mu.Unlock()
		if !seen[unit] {
			seen[unit] = true
			fmt.Fprintf(w, "computing %s (cached afterwards)\n", unit)
		}
	}
}

// ReproductionSource returns the source Reproduction runs on: the competition
// files when BBD_DATA is set (BadNets from BBD_MODELS, default
// Shared("badnets")), else the zoo in BBD_ZOO (default DefaultZooDir).
func ReproductionSource() (*reproduce.Source, error) {
	if dataDir := os.Getenv(EnvData); dataDir != "" {
		models := os.Getenv(EnvModels)
		if models == "" {
			var err error
			if models, err = Shared("badnets"); err != nil {
				return nil, fmt.Errorf("%s=%s: the BadNets: set %s: %w", EnvData, dataDir, EnvModels, err)
			}
		}
		src, err := reproduce.CompetitionSource(abs(dataDir), abs(models))
		if err != nil {
			return nil, fmt.Errorf("%s=%s, %s=%s: %w", EnvData, dataDir, EnvModels, models, err)
		}
		return src, nil
	}
	dir := os.Getenv(EnvZoo)
	if dir == "" {
		dir = DefaultZooDir()
		if _, err := os.Stat(filepath.Join(dir, "manifest.json")); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no zoo in %s: run notebook 02-zoo.ipynb (it builds the reduced zoo there), or set %s to a built zoo (bbd zoo build) or %s to the competition's data folder", dir, EnvZoo, EnvData)
		}
	}
	src, err := reproduce.ZooSource(abs(dir))
	if err != nil {
		return nil, fmt.Errorf("%s=%s: %w", EnvZoo, dir, err)
	}
	return src, nil
}

// abs makes p absolute, so the source and the name of its default output
// folder do not depend on the working directory; p is kept if that fails.
func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// ReproductionSettings returns the settings BBD_SETTINGS names and their name:
// "paper" (reproduce.DefaultSettings: every image, the paper's sweeps and
// epochs; hours), "small" (reproduce.SmallSettings: minutes; the default) or
// "tiny" (reproduce.TinySettings, the settings of reproduce's own test: about
// a minute, for the notebooks' test; their models are kept as far as src has
// them, all of src's when it has none of them).
func ReproductionSettings(src *reproduce.Source) (string, reproduce.Settings, error) {
	name := os.Getenv(EnvSettings)
	if name == "" {
		name = SettingsSmall
	}
	switch name {
	case SettingsPaper:
		return name, reproduce.DefaultSettings(), nil
	case SettingsSmall:
		return name, reproduce.SmallSettings(), nil
	case SettingsTiny:
		s := reproduce.TinySettings()
		var models []string
		for _, m := range s.Models {
			if _, ok := src.Model(m); ok {
				models = append(models, m)
			}
		}
		s.Models = models // none of them: every model
		return name, s, nil
	}
	return "", reproduce.Settings{}, fmt.Errorf("%s=%q: expected %s, %s or %s", EnvSettings, name, SettingsPaper, SettingsSmall, SettingsTiny)
}

// DefaultReproOut is the output folder of a reproduction of src with the
// settings called settings when BBD_REPRO_OUT is not set: a stable folder
// under the system's temporary folder,
// bbd-notebooks-repro-<settings>-<hash of the source's kind and folders>, so
// that every notebook of a source and settings shares one cache and running a
// notebook again is quick. One folder per settings: the repaired models and
// scans in it are those of one run's settings.
func DefaultReproOut(src *reproduce.Source, settings string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", src.Kind, src.Dir)
	for _, m := range src.Models {
		fmt.Fprintf(h, "%s\n", m.Path)
	}
	return filepath.Join(os.TempDir(), "bbd-notebooks-repro-"+settings+"-"+hex.EncodeToString(h.Sum(nil))[:12])
}

// ShowReproduction displays what r runs on as an HTML table: the source, its
// models, the settings and the output folder.
func ShowReproduction(r *reproduce.Runner) {
	src, set := r.Source(), r.Settings()
	name := os.Getenv(EnvSettings)
	if name == "" {
		name = SettingsSmall
	}
	var models []string
	for _, m := range src.Models {
		models = append(models, m.Name)
	}
	rows := [][]string{
		{"source", src.Kind + ": " + src.Dir},
		{"models", strings.Join(models, ", ")},
		{"settings (" + EnvSettings + ")", fmt.Sprintf("%s: fractions %v, %d fine-tuning epochs, at most %s images per set (0: all), %d Neural Cleanse steps",
			name, set.Fractions, set.Epochs, Commas(set.MaxImages), set.CleanseSteps)},
		{"output and cache (" + EnvReproOut + ")", r.Out()},
	}
	display.html(HTMLTable([]string{"reproduction", ""}, rows))
	display.sync()
}

// display is how Show and ShowTables reach the notebook (GoNB's gonbui, which
// does nothing outside a notebook); tests replace it.
var display = struct {
	png  func([]byte)
	html func(string)
	sync func()
}{gonbui.DisplayPNG, gonbui.DisplayHTML, gonbui.Sync}

// Show displays a figure of the reproduction as PNG in the notebook. It takes
// a figure function's results as they come, so a cell is one line:
//
//	must.M(nbutil.Show(reproduce.Figure1(fp)))
//
// The error is err when that is set, else the rendering's.
func Show(fig *reproduce.Figure, err error) error {
	if err != nil {
		return err
	}
	if fig == nil {
		return errors.New("nbutil.Show: no figure")
	}
	png, err := fig.PNG()
	if err != nil {
		return fmt.Errorf("figure %s: %w", fig.Name, err)
	}
	display.png(png)
	display.sync()
	return nil
}

// ShowEach displays the figure fig draws of every item (one per BadNet):
//
//	must.M(nbutil.ShowEach(st, reproduce.Figure3))
func ShowEach[T any](items []T, fig func(T) (*reproduce.Figure, error)) error {
	if len(items) == 0 {
		return errors.New("nbutil.ShowEach: no results to draw")
	}
	for _, it := range items {
		if err := Show(fig(it)); err != nil {
			return err
		}
	}
	return nil
}

// ShowTables displays tables of the reproduction as HTML, one below the other
// (bbd's table, then the paper's).
func ShowTables(tables ...*reproduce.Table) {
	var b strings.Builder
	for _, t := range tables {
		b.WriteString(t.HTML())
	}
	display.html(b.String())
	display.sync()
}

// FinePrunedModels returns the BadNets fine-pruned in fp, in order (the
// models of Table1Paper).
func FinePrunedModels(fp *reproduce.FinePruningResults) []string { return fp.Models() }

// BBDFigure is reproduce.FigureBBD: Table 4 as bars beside equations (3)-(6).
func BBDFigure(bb []reproduce.BBDResult) (*reproduce.Figure, error) { return reproduce.FigureBBD(bb) }
