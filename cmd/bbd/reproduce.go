package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"

	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/internal/nbhtml"
	"github.com/bbd-workbench/bbd/internal/progress"
	"github.com/bbd-workbench/bbd/reproduce"
)

var reproduceCommand = &command{name: "reproduce", summary: "regenerate the paper's figures and tables (PNG, SVG, Markdown, CSV, JSON, one HTML report)",
	usage: "(--zoo DIR | --data DIR [--models DIR]) --out DIR [--small] [--fresh] [--only EXPERIMENTS] [--notebooks DIR] [--json]", run: runReproduce}

func init() { commands = append(commands, reproduceCommand) }

func runReproduce(c *cmdEnv, args []string) error {
	fs := c.flags
	zooDir := fs.String("zoo", "", "a bbd zoo (bbd zoo build)")
	dataDir := fs.String("data", "", "the CSAW-HackML-2020 data folder the paper used (clean_validation_data.h5, clean_test_data.h5, *_poisoned_data.h5)")
	modelsDir := fs.String("models", "../shared/badnets", "with --data: the folder of the four BadNets (<name>_bd_net.h5 or <name>_bd_weights.h5)")
	out := fs.String("out", "", "output folder: new, empty, or an earlier reproduction to resume")
	small := fs.Bool("small", false, "a quick run: 2 fractions, 2 epochs, 600 images per set, 40 Neural Cleanse steps")
	only := fs.String("only", "", "comma list of experiments (default all): "+strings.Join(reproduce.AllExperiments, ","))
	models := fs.String("model-names", "", "comma list of the source's models to run (default all)")
	fractions := fs.String("fractions", "", "fine-pruning fractions: FROM:TO:STEP or a comma list (default 0.5:0.95:0.05)")
	epochs := fs.Int("epochs", 0, "fine-tuning epochs (default 20)")
	labels := fs.String("labels", "", "Neural Cleanse labels: all or ranges like 0-9 (default all; the fast budget above 100 classes)")
	maxImages := fs.Int("max-images", 0, "read at most this many images of each data set (default all)")
	seed := fs.Uint64("seed", 1, "seed of every random choice")
	fresh := fs.Bool("fresh", false, "compute every unit again (the cache of an earlier run in --out is deleted first)")
	notebooks := fs.String("notebooks", "", "a folder of executed notebooks (*.ipynb) to render as HTML into <out>/notebooks and link from the report")
	asJSON := fs.Bool("json", false, "print a JSON summary: output files and the results")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %v", pos)
	}
	if (*zooDir == "") == (*dataDir == "") || *out == "" {
		return usagef("give --out and one of --zoo or --data")
	}
	set := reproduce.Settings{}
	if *small {
		set = reproduce.SmallSettings()
	}
	set.Seed = *seed
	if *maxImages > 0 {
		set.MaxImages = *maxImages
	}
	if *epochs > 0 {
		set.Epochs = *epochs
	}
	if *fractions != "" {
		if set.Fractions, err = parseFractions(*fractions); err != nil {
			return usagef("--fractions %q: %v", *fractions, err)
		}
	}
	if *labels != "" && *labels != "all" {
		if set.CleanseLabels, err = defence.ParseLabels(*labels); err != nil {
			return usagef("--labels %q: %v", *labels, err)
		}
	}
	if *models != "" {
		set.Models = strings.Split(*models, ",")
	}
	var exps []string
	if *only != "" {
		exps = strings.Split(*only, ",")
	}
	var src *reproduce.Source
	if *zooDir != "" {
		src, err = reproduce.ZooSource(*zooDir)
	} else {
		src, err = reproduce.CompetitionSource(*dataDir, *modelsDir)
	}
	if err != nil {
		return err
	}
	if *fresh {
		if err := reproduce.ClearCache(*out); err != nil {
			return err
		}
	}
	bars := &reproduceBars{w: c.stderr}
	defer bars.finish()
	cfg := reproduce.Config{Source: src, Out: *out, Settings: set, Progress: bars.update}
	if !progress.IsTerminal(c.stderr) {
		cfg.Log = c.stderr // no bars: one line per finished unit instead
	}
	r, err := reproduce.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := r.Run(ctx, exps)
	bars.finish()
	if err != nil {
		return err
	}
	links, err := renderNotebooks(ctx, *notebooks, *out)
	if err != nil {
		return err
	}
	if err := r.Write(res, links...); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(c.stdout, struct {
			Out     string             `json:"out"`
			Report  string             `json:"report"`
			Results *reproduce.Results `json:"results"`
		}{*out, filepath.Join(*out, reproduce.ReportFile), res})
	}
	for _, t := range res.Tables() {
		fmt.Fprintln(c.stdout, t.Markdown())
	}
	fmt.Fprintf(c.stdout, "report: %s\nfigures: %s\ntables: %s\n", filepath.Join(*out, reproduce.ReportFile),
		filepath.Join(*out, reproduce.FiguresDir), filepath.Join(*out, reproduce.TablesDir))
	return nil
}

// renderNotebooks writes every executed notebook of dir as HTML into
// out/notebooks (jupyter nbconvert) and returns the report's links to them.
func renderNotebooks(ctx context.Context, dir, out string) ([]reproduce.Link, error) {
	if dir == "" {
		return nil, nil
	}
	nbs, err := filepath.Glob(filepath.Join(dir, "*.ipynb"))
	if err != nil {
		return nil, err
	}
	if len(nbs) == 0 {
		return nil, fmt.Errorf("--notebooks %s: expected executed notebooks (*.ipynb), found none", dir)
	}
	var links []reproduce.Link
	for _, nb := range nbs {
		page, err := nbhtml.Export(ctx, nb, filepath.Join(out, "notebooks"))
		if err != nil {
			return nil, fmt.Errorf("rendering %s: %w", nb, err)
		}
		links = append(links, reproduce.Link{Href: filepath.Join("notebooks", filepath.Base(page)), Text: strings.TrimSuffix(filepath.Base(nb), ".ipynb")})
	}
	return links, nil
}

// reproduceBars shows one progress bar per unit of work.
type reproduceBars struct {
	mu   sync.Mutex
	w    interface{ Write([]byte) (int, error) }
	unit string
	bar  *progress.Bar
	done int
}

func (b *reproduceBars) update(p reproduce.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	label := p.Experiment + " " + p.Unit
	if p.Cached {
		if b.bar != nil && b.unit == label {
			b.bar.Finish()
			b.bar = nil
		}
		return
	}
	if b.bar == nil || b.unit != label {
		if b.bar != nil {
			b.bar.Finish()
		}
		b.unit, b.done = label, 0
		b.bar = progress.New(b.w, label, int64(max(p.Total, 1)))
	}
	if p.Total > 0 {
		b.bar.SetTotal(int64(p.Total))
	}
	if p.Done > b.done {
		b.bar.Add(int64(p.Done - b.done))
		b.done = p.Done
	}
}

func (b *reproduceBars) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil {
		b.bar.Finish()
		b.bar = nil
	}
}
