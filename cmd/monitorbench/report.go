package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/crashmonitor/monitor/internal/bench"
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
	LoadStart  [3]float64 `json:"load_start"`
	LoadEnd    [3]float64 `json:"load_end"`
}

// Report is the harness's output: the table as JSON.
type Report struct {
	Header  Header   `json:"header"`
	Figures []Figure `json:"figures"`
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

// WriteTable prints the header and one aligned line per figure.
func (r *Report) WriteTable(w io.Writer) error {
	h := r.Header
	var b strings.Builder
	fmt.Fprintf(&b, "monitorbench %s run, %s, %s\n", h.Mode, h.Started.UTC().Format("2006-01-02 15:04 MST"), formatSeconds(h.Seconds))
	fmt.Fprintf(&b, "machine: %s, %d CPUs, %s memory; %s; PostgreSQL %s; monitor %s\n",
		h.CPU, h.CPUs, formatMiB(h.MemoryMiB), h.Go, h.PostgreSQL, h.Monitor)
	fmt.Fprintf(&b, "trees: %s (%s); load average %s at start, %s at end\n",
		h.Filesystem, h.TreeDir, formatLoad(h.LoadStart), formatLoad(h.LoadEnd))
	rows := [][]string{{"figure", "measured", "target", "result", "note"}}
	for _, f := range r.Figures {
		rows = append(rows, []string{f.Label, f.Shown, cmp.Or(f.Target, "-"), string(f.Verdict), f.Note})
	}
	b.WriteString("\n")
	writeColumns(&b, rows)
	_, err := io.WriteString(w, b.String())
	return err
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

// latency summarises a set of latencies by nearest-rank percentiles.
type latency struct {
	n             int
	p50, p99, max time.Duration
}

func summarize(ds []time.Duration) latency {
	return latency{
		n:   len(ds),
		p50: bench.Percentile(ds, 50),
		p99: bench.Percentile(ds, 99),
		max: bench.Percentile(ds, 100),
	}
}

// figure returns the latency figure: Value is p99 in ms.
func (l latency) figure(name, label string, t target) Figure {
	return Figure{
		Name:  name,
		Label: label,
		Value: ms(l.p99),
		Unit:  "ms",
		Shown: "p50 " + formatDuration(l.p50) + ", p99 " + formatDuration(l.p99),
		Details: map[string]float64{
			"count": float64(l.n), "p50_ms": ms(l.p50), "p99_ms": ms(l.p99), "max_ms": ms(l.max),
		},
	}.judged(t)
}

// rateFigure is a throughput figure: count pairs in elapsed.
func rateFigure(name, label string, count int, elapsed time.Duration) Figure {
	rate := perSecond(count, elapsed)
	return Figure{
		Name:    name,
		Label:   label,
		Value:   rate,
		Unit:    "pairs/s",
		Shown:   formatRate(rate),
		Verdict: Reference,
		Details: map[string]float64{"pairs": float64(count), "seconds": elapsed.Seconds()},
	}
}

func perSecond(count int, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(count) / elapsed.Seconds()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// formatInt writes n with thousands separators: 200000 -> "200,000".
func formatInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// formatRate writes a throughput in whole pairs per second.
func formatRate(r float64) string {
	return formatInt(int64(math.Round(r))) + " pairs/s"
}

// formatDuration writes d with three significant digits at most: "2.84 ms",
// "310 ms", "1.25 s".
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'f', 0, 64) + " µs"
	case d < time.Second:
		return sig3(ms(d)) + " ms"
	default:
		return sig3(d.Seconds()) + " s"
	}
}

func formatSeconds(s float64) string {
	return formatDuration(time.Duration(s * float64(time.Second)))
}

// sig3 writes v (positive, below 1000) with three significant digits.
func sig3(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func formatMiB(mib int64) string {
	if mib >= 1024 {
		return strconv.FormatFloat(float64(mib)/1024, 'f', 1, 64) + " GiB"
	}
	return formatInt(mib) + " MiB"
}

func formatLoad(l [3]float64) string {
	return fmt.Sprintf("%.2f %.2f %.2f", l[0], l[1], l[2])
}

// The figures' names, and the order of the table.
const (
	figDrain        = "drain"
	figDrainClassic = "drain_vs_classic"
	figDrainCopy    = "drain_vs_copy"
	figClassic      = "classic"
	figCopy         = "copy"
	figWalk         = "walk"
	figMemory       = "memory"
	figScraped      = "scraped"
	figScrapedRatio = "scraped_vs_drain"
	figArrival      = "arrival"
	figPriority     = "priority"
	figCleanup      = "cleanup"
	figCleanupRun   = "cleanuprun"
	figDeadMove     = "deadmove"
	figPage         = "page"
)

var tableOrder = []string{
	figDrain, figDrainClassic, figDrainCopy, figClassic, figCopy, figWalk, figMemory, figScraped, figScrapedRatio,
	figArrival, figPriority, figCleanup, figCleanupRun, figDeadMove, figPage,
}

// Targets of the drain, as ratios.
var (
	drainVsClassic = atLeast(20, "≥ 20×")
	drainVsCopy    = atLeast(50, "≥ 50%")
	// scrapedVsDrain: scraping /metrics ten times a second must not change
	// the drain (within this machine's run-to-run noise).
	scrapedVsDrain = atLeast(90, "≥ 90%")
)

// assemble orders the measured figures for the table and adds the drain's
// ratios to the classic loop and to the COPY ceiling, which decide the
// drain's own verdict. figs is not modified.
func assemble(figs map[string]Figure) []Figure {
	all := make(map[string]Figure, len(figs)+2)
	for k, v := range figs {
		all[k] = v
	}
	if drain, ok := all[figDrain]; ok {
		drain.Target = drainVsClassic.text + " classic, " + drainVsCopy.text + " of COPY"
		drain.Verdict = Reference
		var verdicts []Verdict
		if c, ok := all[figClassic]; ok && c.Value > 0 {
			r := drain.Value / c.Value
			f := Figure{Name: figDrainClassic, Label: "  drain ÷ classic loop", Value: r, Unit: "x",
				Shown: strconvRatio(r) + "×"}.judged(drainVsClassic)
			all[figDrainClassic] = f
			verdicts = append(verdicts, f.Verdict)
		}
		if c, ok := all[figCopy]; ok && c.Value > 0 {
			r := 100 * drain.Value / c.Value
			f := Figure{Name: figDrainCopy, Label: "  drain ÷ COPY ceiling", Value: r, Unit: "%",
				Shown: strconvRatio(r) + "%"}.judged(drainVsCopy)
			all[figDrainCopy] = f
			verdicts = append(verdicts, f.Verdict)
		}
		if len(verdicts) > 0 {
			drain.Verdict = Pass
			for _, v := range verdicts {
				if v == Miss {
					drain.Verdict = Miss
				}
			}
		} else {
			drain.Note = strings.TrimPrefix(drain.Note+"; no ratio: run classic and copy too", "; ")
		}
		all[figDrain] = drain
	}
	if sc, ok := all[figScraped]; ok {
		if d, ok := all[figDrain]; ok && d.Value > 0 {
			r := 100 * sc.Value / d.Value
			all[figScrapedRatio] = Figure{Name: figScrapedRatio, Label: "  scraped ÷ unscraped drain", Value: r, Unit: "%",
				Shown: strconvRatio(r) + "%"}.judged(scrapedVsDrain)
		}
	}
	var out []Figure
	for _, name := range tableOrder {
		if f, ok := all[name]; ok {
			out = append(out, f)
		}
	}
	return out
}

// strconvRatio writes a ratio with one decimal below 100, none above.
func strconvRatio(r float64) string {
	if r >= 100 {
		return strconv.FormatFloat(r, 'f', 0, 64)
	}
	return strconv.FormatFloat(r, 'f', 1, 64)
}
