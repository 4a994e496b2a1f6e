package web

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/queue"
)

// templateFS holds the status page's template and style sheet: the page
// makes no request of its own.
//
//go:embed templates/status.html templates/style.css
var templateFS embed.FS

// refreshSeconds is how often the page reloads itself (meta refresh).
const refreshSeconds = 5

// maxEventsShown bounds the events the page lists, newest first.
const maxEventsShown = 20

// page renders the status page from a report.
type page struct {
	tmpl *template.Template
}

func newPage() (*page, error) {
	t, err := template.New("status.html").Funcs(template.FuncMap{"num": numAny, "plural": plural}).ParseFS(templateFS, "templates/status.html", "templates/style.css")
	if err != nil {
		return nil, fmt.Errorf("parse the status page template: %w", err)
	}
	return &page{tmpl: t}, nil
}

// render writes the page of rep as it stands at now (the clock the
// report's times are measured against).
func (p *page) render(w io.Writer, rep figures.Report, now time.Time) error {
	return p.tmpl.Execute(w, newView(rep, now))
}

// numAny is num for the template, which passes ints and int64s alike.
func numAny(v any) string {
	switch n := v.(type) {
	case int:
		return num(int64(n))
	case int64:
		return num(n)
	}
	return fmt.Sprint(v)
}

// plural writes a count and its noun: "1 pass", "3 passes".
func plural(n any, one, many string) string {
	if s := numAny(n); s != "1" {
		return s + " " + many
	}
	return "1 " + one
}

// view is what the template shows: the report, escaped by html/template
// and made legible here (durations, counts, bar lengths, the chart).
type view struct {
	Refresh int
	Now     string
	Title   string

	Daemon  bool // the report has the daemon's part
	Active  bool
	Host    string
	PID     int
	Version string

	// Monitors is set when the report says which monitor is active:
	// ActiveMonitor names it ("" when none is), Standbys the others.
	Monitors      bool
	ActiveMonitor string
	ActiveFull    string
	Standbys      []string

	Healthy   bool
	Unhealthy string
	// DBError is why the database could not be read; HaveDB is set when
	// the report still holds figures of an earlier read.
	DBError string
	HaveDB  bool

	Jobs        figures.JobsReport
	Oldest      string // the oldest queued job's age, "" when none waits
	Priority    int64
	Inbox       *figures.Inbox
	InboxAgo    string
	Failing     int64
	Cleanups    []cleanupView
	Alerts      []alertView
	Processors  []processorView
	Live, Stale int
	Dead        int
	MaxPending  int64
	Chart       chart
	Loops       []loopView
	Events      []eventView
	EventsMore  int // events kept but not listed
}

// processorView is one row of the processors list.
type processorView struct {
	ID       int64
	Name     string
	State    string
	Pending  int64
	Bar      string // bar length in percent of the largest pending count
	LastSeen string
}

// loopView is what one loop is doing.
type loopView struct {
	Loop      string
	Seen      bool // the loop has reported anything yet
	Running   bool
	For       string // how long the running pass has run
	Done      int
	Waiting   bool
	Passes    int64
	Last      string // the last pass's duration
	LastError string
}

// cleanupView is one failing cleanup.
type cleanupView struct {
	UUID, Error    string
	Attempts       int
	When, WhenFull string // the last failure, by the database clock
	RetryIn        string
}

// alertView is one threshold rule that fires.
type alertView struct {
	Rule, Metric, Direction string
	Since, SinceFull, For   string
	Average, Threshold      string
}

// eventView is one notable event.
type eventView struct {
	Time, Full, Ago string
	Kind, Text      string
}

func newView(rep figures.Report, now time.Time) view {
	v := view{
		Refresh:  refreshSeconds,
		Jobs:     rep.Jobs,
		Priority: rep.PriorityRequests,
		Failing:  rep.Cleanup.Failing,
		Healthy:  true,
	}
	v.Now, _ = clock(now)
	if rep.OldestQueuedAgeSeconds != nil {
		v.Oldest = human(seconds(*rep.OldestQueuedAgeSeconds))
	}
	if rep.DatabaseError != "" {
		// The report's ReadAt is then the failed read's time, not that of
		// the figures it holds: the page does not date them.
		v.DBError = printable(rep.DatabaseError)
		v.HaveDB = len(rep.Processors) > 0 || rep.Jobs != (figures.JobsReport{}) ||
			rep.PriorityRequests > 0 || rep.Cleanup.Failing > 0 || rep.OldestQueuedAgeSeconds != nil
	}
	v.processors(rep.Processors)
	v.monitors(rep)
	for _, c := range rep.Cleanup.Recent {
		when, full := clock(c.LastFailed)
		v.Cleanups = append(v.Cleanups, cleanupView{
			UUID: printable(c.UUID), Error: printable(c.LastError), Attempts: c.Attempts,
			When: when, WhenFull: full, RetryIn: human(seconds(c.RetryInSeconds)),
		})
	}
	for _, a := range rep.Alerts {
		since, full := clock(a.Since)
		v.Alerts = append(v.Alerts, alertView{
			Rule: printable(a.Rule), Metric: a.Metric, Direction: a.Direction(),
			Since: since, SinceFull: full, For: human(max(now.Sub(a.Since), 0)) + " ago",
			Average: strconv.FormatFloat(a.Average, 'g', 6, 64), Threshold: strconv.FormatFloat(a.Threshold, 'g', -1, 64),
		})
	}
	if d := rep.Daemon; d != nil {
		v.daemon(d, now)
	} else {
		v.Chart = newChart(nil)
	}
	v.Title = v.title()
	return v
}

// processors fills the processors list and the counts by state.
func (v *view) processors(ps []figures.ProcessorReport) {
	v.Processors = make([]processorView, 0, len(ps))
	for _, p := range ps {
		v.MaxPending = max(v.MaxPending, p.Pending)
		switch p.State {
		case queue.ProcessorLive:
			v.Live++
		case queue.ProcessorStale:
			v.Stale++
		default:
			v.Dead++
		}
	}
	for _, p := range ps {
		pv := processorView{ID: p.ID, Name: printable(p.Name), State: p.State, Pending: p.Pending, Bar: "0", LastSeen: "never"}
		if v.MaxPending > 0 {
			pv.Bar = percent(float64(p.Pending) / float64(v.MaxPending))
		}
		if p.LastSeen != nil {
			// lastseendatetime is a wall-clock time of the database's
			// session: shown as stored.
			pv.LastSeen = p.LastSeen.Format("2006-01-02 15:04:05")
		}
		v.Processors = append(v.Processors, pv)
	}
}

// monitors names the active monitor and the standbys, when the report
// knows them (the database was read).
func (v *view) monitors(rep figures.Report) {
	v.Monitors = rep.ActiveMonitor != nil || len(rep.StandbyMonitors) > 0 || rep.DatabaseError == ""
	if a := rep.ActiveMonitor; a != nil {
		when, full := clock(a.Since)
		v.ActiveMonitor = fmt.Sprintf("%s · pid %d · since %s", printable(a.Host), a.PID, when)
		v.ActiveFull = fmt.Sprintf("active since %s, term %d", full, a.Term)
	}
	for _, m := range rep.StandbyMonitors {
		v.Standbys = append(v.Standbys, fmt.Sprintf("%s · pid %d", printable(m.Host), m.PID))
	}
}

// daemon fills what only the running monitor knows.
func (v *view) daemon(d *figures.DaemonReport, now time.Time) {
	v.Daemon, v.Active = true, d.Active
	v.Host, v.PID, v.Version = d.Host, d.PID, d.Version
	v.Healthy, v.Unhealthy = d.Healthy, printable(d.Unhealthy)
	if d.Inbox != nil {
		v.Inbox = d.Inbox
		v.InboxAgo = human(now.Sub(d.Inbox.At))
	}
	v.Chart = newChart(d.Throughput)
	for _, name := range figures.Loops() {
		lv := loopView{Loop: name}
		if i := slices.IndexFunc(d.Passes, func(p figures.PassState) bool { return p.Loop == name }); i >= 0 {
			p := d.Passes[i]
			lv.Seen, lv.Running, lv.Done, lv.Waiting, lv.Passes = true, p.Running, p.Done, p.Waiting, p.Passes
			lv.For = human(now.Sub(p.Started))
			if p.Passes > 0 {
				lv.Last = human(p.LastDuration)
			}
			lv.LastError = printable(p.LastError)
		}
		v.Loops = append(v.Loops, lv)
	}
	for i := len(d.Events) - 1; i >= 0; i-- {
		if len(v.Events) == maxEventsShown {
			v.EventsMore = i + 1
			break
		}
		e := d.Events[i]
		t, full := clock(e.At)
		v.Events = append(v.Events, eventView{Time: t, Full: full, Ago: human(now.Sub(e.At)),
			Kind: printable(e.Kind), Text: printable(e.Text)})
	}
}

// title is the browser tab's title: trouble first, so that it shows in a
// tab among others.
func (v *view) title() string {
	t := "monitor"
	if v.Host != "" {
		t += " on " + v.Host
	}
	switch {
	case !v.Healthy:
		return "UNHEALTHY · " + t
	case v.DBError != "":
		return "DATABASE UNREACHABLE · " + t
	case len(v.Alerts) > 0:
		return "ALERT · " + t
	case v.Daemon && !v.Active:
		return "standby · " + t
	}
	return t
}
