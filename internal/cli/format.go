package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	units "github.com/docker/go-units"
)

// templateFuncs are the helpers Docker offers in --format templates.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"join":     strings.Join,
	"split":    strings.Split,
	"lower":    strings.ToLower,
	"upper":    strings.ToUpper,
	"title":    func(s string) string { return strings.ToUpper(s[:min(1, len(s))]) + s[min(1, len(s)):] },
	"truncate": func(s string, n int) string { return s[:min(n, len(s))] },
	"pad":      func(s string, l, r int) string { return strings.Repeat(" ", l) + s + strings.Repeat(" ", r) },
	"println":  func(args ...any) string { return fmt.Sprintln(args...) },
}

func parseTemplate(text string) (*template.Template, error) {
	t, err := template.New("format").Funcs(templateFuncs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("template parsing error: %w", err)
	}
	return t, nil
}

// rowPrinter prints rows the way Docker's --format does: "table …" with a
// header and aligned columns, "json" as one JSON object per line, or a
// plain template per row.
type rowPrinter struct {
	out     io.Writer
	tmpl    *template.Template
	table   bool
	json    bool
	header  map[string]string
	tw      *tabwriter.Writer
	started bool
}

func newRowPrinter(out io.Writer, format, defaultTable string, header map[string]string) (*rowPrinter, error) {
	p := &rowPrinter{out: out, header: header}
	switch {
	case format == "" || format == "table":
		format = defaultTable
	case format == "json":
		p.json = true
		return p, nil
	}
	if rest, ok := strings.CutPrefix(format, "table"); ok {
		p.table = true
		format = strings.TrimLeft(rest, " ")
	}
	format = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(format)
	t, err := parseTemplate(format + "\n")
	if err != nil {
		return nil, err
	}
	p.tmpl = t
	if p.table {
		p.tw = tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
	}
	return p, nil
}

// print writes one row; row is a struct whose fields the template names.
func (p *rowPrinter) print(row any) error {
	if p.json {
		b, err := json.Marshal(row)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.out, "%s\n", b)
		return err
	}
	if p.table && !p.started {
		if err := p.writeHeader(); err != nil {
			return err
		}
	}
	p.started = true
	w := p.out
	if p.tw != nil {
		w = p.tw
	}
	return p.tmpl.Execute(w, row)
}

func (p *rowPrinter) writeHeader() error {
	var buf bytes.Buffer
	if err := p.tmpl.Execute(&buf, headerRow(p.header)); err != nil {
		return err
	}
	_, err := p.tw.Write(buf.Bytes())
	return err
}

// headerRow answers every {{.Field}} of a template with the column title.
type headerRow map[string]string

// flush ends the output (and prints a header for an empty table).
func (p *rowPrinter) flush() error {
	if p.table && !p.started {
		if err := p.writeHeader(); err != nil {
			return err
		}
	}
	if p.tw != nil {
		return p.tw.Flush()
	}
	return nil
}

// humanSize renders a byte count as Docker does ("4.26MB").
func humanSize(n int64) string { return units.HumanSizeWithPrecision(float64(n), 3) }

// since renders an age as Docker does ("2 hours ago").
func since(t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	return units.HumanDuration(time.Now().UTC().Sub(t)) + " ago"
}
