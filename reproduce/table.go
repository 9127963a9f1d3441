package reproduce

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html"
	"strconv"
	"strings"
)

// Table is one table of the reproduction: a header and rows of cells, each
// number formatted from a result (never typed in).
type Table struct {
	Name   string     `json:"name"` // file base name: table1-bbd
	Title  string     `json:"title"`
	Header []string   `json:"header"`
	Rows   [][]string `json:"rows"`
	// Notes say how to read it: denominators, what a column means.
	Notes []string `json:"notes,omitempty"`
}

// NA marks a cell with no value (a figure the run or the paper lacks).
const NA = "–"

func f4(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }
func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

func ints(v []int) string {
	if len(v) == 0 {
		return "none"
	}
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Markdown renders the table as a GitHub Markdown table under its title.
func (t *Table) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s**\n\n", t.Title)
	row := func(cells []string) {
		b.WriteString("|")
		for _, c := range cells {
			b.WriteString(" " + strings.ReplaceAll(c, "|", `\|`) + " |")
		}
		b.WriteString("\n")
	}
	row(t.Header)
	sep := make([]string, len(t.Header))
	for i := range sep {
		sep[i] = "---"
	}
	row(sep)
	for _, r := range t.Rows {
		row(r)
	}
	for _, n := range t.Notes {
		fmt.Fprintf(&b, "\n%s\n", n)
	}
	return b.String()
}

// CSV renders the header and rows as CSV.
func (t *Table) CSV() ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write(t.Header); err != nil {
		return nil, err
	}
	if err := w.WriteAll(t.Rows); err != nil {
		return nil, err
	}
	return buf.Bytes(), w.Error()
}

// JSON renders the whole table as JSON.
func (t *Table) JSON() ([]byte, error) { return json.MarshalIndent(t, "", "  ") }

// HTML renders the table as an HTML fragment (title, table, notes); numeric
// cells are right-aligned.
func (t *Table) HTML() string {
	var b strings.Builder
	fmt.Fprintf(&b, "<div class=\"table\"><p class=\"caption\">%s</p>\n<table>\n<tr>", html.EscapeString(t.Title))
	for _, h := range t.Header {
		fmt.Fprintf(&b, "<th>%s</th>", html.EscapeString(h))
	}
	b.WriteString("</tr>\n")
	for _, r := range t.Rows {
		b.WriteString("<tr>")
		for _, c := range r {
			if _, err := strconv.ParseFloat(c, 64); err == nil {
				fmt.Fprintf(&b, "<td class=\"num\">%s</td>", html.EscapeString(c))
			} else {
				fmt.Fprintf(&b, "<td>%s</td>", html.EscapeString(c))
			}
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</table>\n")
	for _, n := range t.Notes {
		fmt.Fprintf(&b, "<p class=\"note\">%s</p>\n", html.EscapeString(n))
	}
	b.WriteString("</div>\n")
	return b.String()
}
