package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Verdict says how a figure compares with its target.
type Verdict string

// The verdicts.
const (
	Pass Verdict = "pass"
	Miss Verdict = "miss"
	// Reference marks a figure without a target of its own: a yardstick
	// (the classic loop, the COPY ceiling, the bare walk).
	Reference Verdict = "ref"
)

// target is a figure's goal: Value at least (or at most) limit.
type target struct {
	atMost bool
	limit  float64
	text   string // as printed
}

func atLeast(limit float64, text string) target { return target{limit: limit, text: text} }
func atMost(limit float64, text string) target  { return target{atMost: true, limit: limit, text: text} }

// judge compares v with the target.
func (t target) judge(v float64) Verdict {
	ok := v >= t.limit
	if t.atMost {
		ok = v <= t.limit
	}
	if ok {
		return Pass
	}
	return Miss
}

// Figure is one line of the table.
type Figure struct {
	// Name is the figure's stable key (what -only and the JSON readers use).
	Name string `json:"name"`
	// Label says what was measured, on what.
	Label string `json:"label"`
	// Value is the figure in Unit: pairs/s, ms, s, MB, x (a ratio) or %.
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Shown is Value as the table prints it.
	Shown string `json:"shown"`
	// Target is the goal as the table prints it; empty for a reference.
	Target  string  `json:"target,omitempty"`
	Verdict Verdict `json:"verdict"`
	// Note qualifies the figure (sample sizes, what the clock covered).
	Note string `json:"note,omitempty"`
	// Details holds the figure's raw numbers (counts, seconds, other
	// percentiles).
	Details map[string]float64 `json:"details,omitempty"`
}

// judged returns f with t as its target and the verdict on Value.
func (f Figure) judged(t target) Figure {
	f.Target = t.text
	f.Verdict = t.judge(f.Value)
	return f
}

// Header describes the run and the machine, so that readers can judge the
// figures.
type Header struct {
	Mode       string     `json:"mode"` // smoke, full or large
	Started    time.Time  `json:"started"`
	Seconds    float64    `json:"seconds"`
	CPU        string     `json:"cpu"`
	CPUs       int        `json:"cpus"`
	MemoryMiB  int64      `json:"memory_mib"`
	Go         string     `json:"go"`
	PostgreSQL string     `json:"postgresql"`
	Monitor    string     `json:"monitor"`
	TreeDir    string     `json:"tree_dir"`
	Filesystem string     `json:"filesystem"`
	Durability Durability `json:"durability"`
	// TmpfsDir is where -tmpfs drained again, "" without it.
	TmpfsDir  string     `json:"tmpfs_dir,omitempty"`
	LoadStart [3]float64 `json:"load_start"`
	LoadEnd   [3]float64 `json:"load_end"`
}

// Durability is the database's durability settings, as the server in use
// reports them (SHOW).
type Durability struct {
	Fsync             string `json:"fsync"`
	SynchronousCommit string `json:"synchronous_commit"`
	FullPageWrites    string `json:"full_page_writes"`
}

// Durable tells whether every commit waits for the disk, as in production.
func (d Durability) Durable() bool {
	return d.Fsync == "on" && d.SynchronousCommit != "off" && d.SynchronousCommit != "" && d.FullPageWrites == "on"
}

// String says it in a line.
func (d Durability) String() string {
	settings := fmt.Sprintf("fsync %s, synchronous_commit %s, full_page_writes %s",
		cmp.Or(d.Fsync, "?"), cmp.Or(d.SynchronousCommit, "?"), cmp.Or(d.FullPageWrites, "?"))
	if d.Durable() {
		return "durable (" + settings + ")"
	}
	return "NOT DURABLE (" + settings + "): commits do not wait for the disk, the figures flatter the monitor"
}

// Report is the harness's output: the table as JSON.
type Report struct {
	Header  Header     `json:"header"`
	Figures []Figure   `json:"figures"`
	Scaling []ScaleRow `json:"scaling,omitempty"`
}

// Misses returns the names of the figures that missed their target.
func (r *Report) Misses() []string {
	var out []string
	for _, f := range r.Figures {
		if f.Verdict == Miss {
			out = append(out, f.Name)
		}
	}
	return out
}

// WriteTable prints the header, one aligned line per figure, and the
// scaling table when there is one.
func (r *Report) WriteTable(w io.Writer) error {
	h := r.Header
	var b strings.Builder
	fmt.Fprintf(&b, "monitorbench %s run, %s, %s\n", h.Mode, h.Started.UTC().Format("2006-01-02 15:04 MST"), formatSeconds(h.Seconds))
	fmt.Fprintf(&b, "machine: %s, %d CPUs, %s memory; %s; PostgreSQL %s; monitor %s\n",
		h.CPU, h.CPUs, formatMiB(h.MemoryMiB), h.Go, h.PostgreSQL, h.Monitor)
	fmt.Fprintf(&b, "trees: %s (%s)%s\n", h.Filesystem, h.TreeDir, onDiskNote(h.Filesystem))
	if h.TmpfsDir != "" {
		fmt.Fprintf(&b, "extra rows: the drain and its ceiling again on tmpfs (%s)\n", h.TmpfsDir)
	}
	fmt.Fprintf(&b, "database: %s\n", h.Durability)
	fmt.Fprintf(&b, "load average %s at start, %s at end\n", formatLoad(h.LoadStart), formatLoad(h.LoadEnd))
	rows := [][]string{{"figure", "measured", "target", "result", "note"}}
	for _, f := range r.Figures {
		rows = append(rows, []string{f.Label, f.Shown, cmp.Or(f.Target, "-"), string(f.Verdict), f.Note})
	}
	b.WriteString("\n")
	writeColumns(&b, rows)
	if len(r.Scaling) > 0 {
		b.WriteString("\nscaling (cost per pair should stay flat):\n\n")
		writeColumns(&b, scaleRows(r.Scaling))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// onDiskNote warns when the trees are not on a disk file system.
func onDiskNote(fs string) string {
	if fs == "tmpfs" || fs == "ramfs" {
		return " — IN MEMORY, NOT ON DISK: production trees are on disk, the figures flatter the monitor"
	}
	return ""
}

// writeColumns writes rows as left-aligned columns two spaces apart, with a
// rule under the first row. Widths count runes, not bytes (≤, ×).
func writeColumns(b *strings.Builder, rows [][]string) {
	width := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, cell := range row {
			width[i] = max(width[i], len([]rune(cell)))
		}
	}
	line := func(row []string) {
		var l strings.Builder
		for i, cell := range row {
			l.WriteString(cell)
			if i < len(row)-1 {
				l.WriteString(strings.Repeat(" ", width[i]-len([]rune(cell))+2))
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " "))
		b.WriteString("\n")
	}
	line(rows[0])
	rule := make([]string, len(width))
	for i, w := range width {
		rule[i] = strings.Repeat("-", w)
	}
	line(rule)
	for _, row := range rows[1:] {
		line(row)
	}
}

// WriteJSON writes the report, indented, to path (creating its directory),
// through a temporary file renamed into place.
func (r *Report) WriteJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	data = append(data, '\n')
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
