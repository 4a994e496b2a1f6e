package web

import (
	"embed"
	"fmt"
	"html/template"
	"io"

	"github.com/crashmonitor/monitor/figures"
)

//go:embed templates/*.html
var templateFS embed.FS

// page renders the status page from a report.
type page struct {
	tmpl *template.Template
}

func newPage() (*page, error) {
	t, err := template.New("status.html").ParseFS(templateFS, "templates/status.html")
	if err != nil {
		return nil, fmt.Errorf("parse the status page template: %w", err)
	}
	return &page{tmpl: t}, nil
}

// render writes the page of rep.
func (p *page) render(w io.Writer, rep figures.Report) error {
	return p.tmpl.Execute(w, rep)
}
