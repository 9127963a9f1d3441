package reproduce

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html"
	"runtime"
	"strings"
	"time"
)

// Link is an extra entry of the report: a file beside it (a rendered
// notebook) and what it is.
type Link struct {
	Href, Text string
}

// reportSections orders the report: each section's tables and figures by
// name prefix.
var reportSections = []struct {
	title, intro    string
	tables, figures []string
}{
	{"Fine-pruning (paper section 2)", "Liu, Dolan-Gavitt and Garg 2018: prune the units (or channels) the clean data leaves dormant, then fine-tune on clean data.",
		[]string{"table1-bbd", "table1-paper", "fine-pruning-choice"}, []string{"fig1-", "fig2-"}},
	{"STRIP input filter (section 3.1)", "Gao et al. 2019: superimpose clean images on an input; a trigger keeps the prediction (low entropy).",
		[]string{"table2"}, []string{"fig3-"}},
	{"Neural Cleanse (sections 3.2-3.3)", "Wang et al. 2019: reverse-engineer the smallest trigger for each label; a label whose trigger is abnormally small is a backdoor target.",
		[]string{"table3"}, []string{"fig4-", "anomaly-"}},
	{"Bimodel Backdoor Defence (section 4)", "The BadNet and its repaired copy vote; disagreement means poisoned (label N).",
		[]string{"table4"}, []string{"table4-"}},
	{"Activation analysis (Figure 9)", "Chen et al. 2018: poisoned inputs separate from clean ones in the last hidden layer's activations.",
		[]string{"activation-clustering"}, []string{"fig9-"}},
}

// Report renders one self-contained HTML page: every table (bbd's beside the
// paper's) and every figure (PNG embedded), by section.
func Report(res *Results, tables []*Table, figs []*Figure, links []Link) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>bbd: reproduction of the Bimodel Backdoor Defence paper</title>
<style>
body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:90%}
th,td{border:1px solid #bbb;padding:.25em .5em}th{background:#eee}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.caption{font-weight:bold;margin-bottom:.2em}.note{font-size:85%;color:#555;margin:.2em 0}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}
</style></head><body>
<h1>Bimodel Backdoor Defence: the paper's figures and tables, reproduced by bbd</h1>
`)
	src := res.Source
	data := "the bbd zoo (Fashion-MNIST BadNets built like the paper's four): the paper's numbers are shown beside bbd's for comparison, on different data"
	if src.Kind == KindCompetition {
		data = "the CSAW-HackML-2020 files the paper used: bbd's and the paper's numbers are on the same data"
	}
	fmt.Fprintf(&b, "<p>Source: %s (<code>%s</code>). Every bbd number below was measured by this run (%s, %s, %s/%s, %.0f s of work); the paper's are quoted from it.</p>\n",
		html.EscapeString(data), html.EscapeString(src.Dir), time.Now().UTC().Format(time.RFC3339), runtime.Version(), runtime.GOOS, runtime.GOARCH, res.Seconds)
	fmt.Fprintf(&b, "<p>Settings: %s.</p>\n", html.EscapeString(settingsLine(res.Settings)))
	if len(links) > 0 {
		b.WriteString("<p>Notebooks: ")
		for i, l := range links {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, `<a href="%s">%s</a>`, html.EscapeString(l.Href), html.EscapeString(l.Text))
		}
		b.WriteString("</p>\n")
	}
	byName := map[string]*Table{}
	for _, t := range tables {
		byName[t.Name] = t
	}
	used := map[*Figure]bool{}
	for _, s := range reportSections {
		var body bytes.Buffer
		for _, n := range s.tables {
			if t := byName[n]; t != nil {
				body.WriteString(t.HTML())
			}
		}
		for _, f := range figs {
			if used[f] || !hasPrefix(f.Name, s.figures) {
				continue
			}
			used[f] = true
			img, err := f.PNG()
			if err != nil {
				return nil, fmt.Errorf("report: figure %s: %w", f.Name, err)
			}
			fmt.Fprintf(&body, "<figure id=\"%s\"><img alt=\"%s\" src=\"data:image/png;base64,%s\"><figcaption>%s (<a href=\"figures/%s.svg\">SVG</a>)</figcaption></figure>\n",
				html.EscapeString(f.Name), html.EscapeString(f.Title()), base64.StdEncoding.EncodeToString(img), html.EscapeString(f.Title()), html.EscapeString(f.Name))
		}
		if body.Len() == 0 {
			continue
		}
		fmt.Fprintf(&b, "<h2>%s</h2>\n<p>%s</p>\n", html.EscapeString(s.title), html.EscapeString(s.intro))
		b.Write(body.Bytes())
	}
	b.WriteString("</body></html>\n")
	return b.Bytes(), nil
}

func hasPrefix(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func settingsLine(s Settings) string {
	return fmt.Sprintf("fine-pruning methods %v, fractions %v, %d epochs (weight %d, reconstructed %d); max images %d; STRIP %d overlays on %d images per set; Neural Cleanse labels %v, %d steps on %d images; seed %d",
		s.Methods, s.Fractions, s.Epochs, s.WeightEpochs, s.ReconstructEpochs, s.MaxImages, s.STRIPOverlays, s.STRIPImages, labelsOrAll(s.CleanseLabels), s.CleanseSteps, s.CleanseImages, s.Seed)
}

func labelsOrAll(l []int) string {
	if len(l) == 0 {
		return "all"
	}
	return ints(l)
}
