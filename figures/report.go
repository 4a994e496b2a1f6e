package figures

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/crashmonitor/monitor/queue"
)

// Report is the monitor's state as one document: what `monitor status
// --json` prints and /api/status serves. The database part is always there;
// Daemon only in a report of a running daemon (or merged from one).
type Report struct {
	Processors             []ProcessorReport `json:"processors"`
	Jobs                   JobsReport        `json:"jobs"`
	PriorityRequests       int64             `json:"priority_requests"`
	OldestQueuedAgeSeconds *float64          `json:"oldest_queued_age_seconds"`
	Cleanup                CleanupReport     `json:"cleanup"`
	// Alerts are the threshold rules that fire, by name.
	Alerts []AlertReport `json:"alerts_firing"`
	// ActiveMonitor is the monitor that runs the loops (it holds the
	// lease); nil when none does. StandbyMonitors are the other running
	// monitors, oldest first.
	ActiveMonitor   *MonitorReport  `json:"active_monitor"`
	StandbyMonitors []MonitorReport `json:"standby_monitors"`
	// ReadAt is when the database figures were read; DatabaseError, when
	// set, says why they could not be read again (they are then the last
	// good ones, or empty).
	ReadAt        time.Time `json:"read_at,omitzero"`
	DatabaseError string    `json:"database_error,omitempty"`
	// Daemon is what only a running monitor knows.
	Daemon *DaemonReport `json:"daemon,omitempty"`
}

// AlertReport is a threshold rule that fires: since when, the average
// that made it fire, and its threshold.
type AlertReport struct {
	Rule      string    `json:"rule"`
	Metric    string    `json:"metric"`
	Since     time.Time `json:"since"`
	Average   float64   `json:"average"`
	Below     bool      `json:"below"`
	Threshold float64   `json:"threshold"`
}

// Direction is "below" or "above".
func (a AlertReport) Direction() string {
	if a.Below {
		return "below"
	}
	return "above"
}

// ProcessorReport is one processor.
type ProcessorReport struct {
	ID       int64      `json:"id"`
	Name     string     `json:"name"`
	State    string     `json:"state"`
	LastSeen *time.Time `json:"last_seen"`
	Pending  int64      `json:"pending"`
}

// JobsReport counts jobs by state.
type JobsReport struct {
	Queued    int64 `json:"queued"`
	Started   int64 `json:"started"`
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"`
}

// CleanupReport is the cleanups that keep failing.
type CleanupReport struct {
	Failing int64                  `json:"failing"`
	Recent  []CleanupFailureReport `json:"recent_failures"`
}

// CleanupFailureReport is a finished job whose cleanup keeps failing.
type CleanupFailureReport struct {
	UUID           string    `json:"uuid"`
	Attempts       int       `json:"attempts"`
	LastError      string    `json:"last_error"`
	LastFailed     time.Time `json:"last_failed"`
	RetryInSeconds float64   `json:"retry_in_seconds"`
}

// MonitorReport is one running monitor, by the database. Times are the
// database clock's.
type MonitorReport struct {
	Instance string `json:"instance"`
	Host     string `json:"host"`
	PID      int    `json:"pid"`
	// Since is when the active monitor's term began, or when a standby
	// started.
	Since time.Time `json:"since"`
	// Term is the active monitor's term (every change of holder starts a
	// new one); LastSeen a standby's latest heartbeat.
	Term     int64     `json:"term,omitempty"`
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// DaemonReport is what only a running monitor knows.
type DaemonReport struct {
	Version string `json:"version"`
	PID     int    `json:"pid"`
	Host    string `json:"host"`
	Active  bool   `json:"active"`
	// Healthy and Unhealthy: the health check (a loop stuck).
	Healthy   bool   `json:"healthy"`
	Unhealthy string `json:"unhealthy,omitempty"`
	// Inbox is what the last scan pass left; nil before the first.
	Inbox *Inbox `json:"inbox,omitempty"`
	// Throughput is jobs queued and cleaned up per minute over the last
	// hour, oldest first, one entry a minute (the current one last).
	Throughput []MinuteReport `json:"throughput"`
	Passes     []PassState    `json:"passes"`
	// Events are the latest notable events, oldest first.
	Events []Event `json:"events"`
}

// MinuteReport is one minute of throughput.
type MinuteReport struct {
	Start   time.Time `json:"start"`
	Queued  int64     `json:"queued"`
	Cleaned int64     `json:"cleaned"`
}

// StatusReport makes the database part of a report from st.
func StatusReport(st queue.Status) Report {
	r := Report{Processors: make([]ProcessorReport, 0, len(st.Processors))}
	for _, p := range st.Processors {
		r.Processors = append(r.Processors, ProcessorReport{p.ID, p.Name, p.State, p.LastSeen, p.Pending})
	}
	r.Jobs = JobsReport{Queued: st.Queued, Started: st.Started, Succeeded: st.Succeeded, Failed: st.Failed}
	r.PriorityRequests = st.PriorityRequests
	if a := st.Active; a != nil {
		r.ActiveMonitor = &MonitorReport{Instance: a.ID, Host: a.Host, PID: a.PID, Since: a.Since, Term: a.Term}
	}
	r.StandbyMonitors = make([]MonitorReport, 0, len(st.Standbys))
	for _, m := range st.Standbys {
		r.StandbyMonitors = append(r.StandbyMonitors, MonitorReport{Instance: m.ID, Host: m.Host, PID: m.PID, Since: m.Started, LastSeen: m.Seen})
	}
	if st.OldestQueuedAge != nil {
		s := st.OldestQueuedAge.Seconds()
		r.OldestQueuedAgeSeconds = &s
	}
	r.Alerts = make([]AlertReport, 0, len(st.Alerts))
	for _, a := range st.Alerts {
		if a.Firing {
			r.Alerts = append(r.Alerts, AlertReport{a.Rule, a.Metric, a.Since, a.Value, a.Below, a.Threshold})
		}
	}
	r.Cleanup.Failing = st.CleanupFailing
	r.Cleanup.Recent = make([]CleanupFailureReport, 0, len(st.CleanupFailures))
	for _, f := range st.CleanupFailures {
		r.Cleanup.Recent = append(r.Cleanup.Recent,
			CleanupFailureReport{f.UUID, f.Attempts, f.LastError, f.LastFailed, max(f.RetryIn, 0).Seconds()})
	}
	return r
}

// Identity is who a daemon is, for its report.
type Identity struct {
	Version string
	PID     int
	Host    string
}

// Report returns the daemon's report: the database figures (DB) and what
// the daemon knows.
func (f *Figures) Report(ctx context.Context, id Identity) Report {
	st, at, err := f.DB(ctx)
	r := StatusReport(st)
	r.ReadAt = at
	if err != nil {
		r.DatabaseError = err.Error()
	}
	ok, why := f.Health()
	d := &DaemonReport{Version: id.Version, PID: id.PID, Host: id.Host, Active: f.Active(),
		Healthy: ok, Unhealthy: why, Inbox: f.Inbox(), Throughput: f.Throughput(), Passes: f.Passes(), Events: f.Events()}
	r.Daemon = d
	return r
}

// Throughput returns jobs queued and cleaned up per minute over the last
// hour, oldest first, the current minute last.
func (f *Figures) Throughput() []MinuteReport {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now().Unix() / 60
	out := make([]MinuteReport, historyMinutes)
	for i := range out {
		m := now - historyMinutes + 1 + int64(i)
		out[i].Start = time.Unix(m*60, 0).UTC()
		if b := f.hist[m%historyMinutes]; b.start == m {
			out[i].Queued, out[i].Cleaned = b.queued, b.cleaned
		}
	}
	return out
}

// Events returns the latest notable events, oldest first.
func (f *Figures) Events() []Event {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Event(nil), f.events...)
}

// WriteText writes the report as `monitor status` prints it.
func (r Report) WriteText(w io.Writer) {
	states := map[string]int{}
	for _, p := range r.Processors {
		states[p.State]++
	}
	if d := r.Daemon; d != nil {
		role := "standby"
		if d.Active {
			role = "active"
		}
		fmt.Fprintf(w, "monitor: %s, pid %d on %s, version %s\n", role, d.PID, d.Host, d.Version)
	}
	r.writeMonitors(w)
	fmt.Fprintf(w, "processors: %d (%d live, %d stale, %d dead)\n",
		len(r.Processors), states["live"], states["stale"], states["dead"])
	if len(r.Processors) > 0 {
		tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  ID\tNAME\tSTATE\tLAST SEEN\tPENDING")
		for _, p := range r.Processors {
			seen := "never"
			if p.LastSeen != nil {
				seen = p.LastSeen.Format("2006-01-02 15:04:05")
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%d\n", p.ID, printable(p.Name), p.State, seen, p.Pending)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "jobs: %d queued, %d started, %d succeeded, %d failed\n",
		r.Jobs.Queued, r.Jobs.Started, r.Jobs.Succeeded, r.Jobs.Failed)
	fmt.Fprintf(w, "priority requests pending: %d\n", r.PriorityRequests)
	if r.OldestQueuedAgeSeconds != nil {
		fmt.Fprintf(w, "oldest queued job: %s\n", (time.Duration(*r.OldestQueuedAgeSeconds * float64(time.Second))).Round(time.Second))
	} else {
		fmt.Fprintln(w, "oldest queued job: none")
	}
	fmt.Fprintf(w, "alerts firing: %d\n", len(r.Alerts))
	for _, a := range r.Alerts {
		fmt.Fprintf(w, "  %s since %s: %s averaged %s, %s its threshold of %s\n", printable(a.Rule),
			a.Since.Format("2006-01-02 15:04:05"), a.Metric, strconv.FormatFloat(a.Average, 'g', 6, 64), a.Direction(),
			strconv.FormatFloat(a.Threshold, 'g', -1, 64))
	}
	fmt.Fprintf(w, "cleanups failing: %d\n", r.Cleanup.Failing)
	for _, c := range r.Cleanup.Recent {
		fmt.Fprintf(w, "  %s  %d attempt(s), last %s, retry in %s: %s\n", c.UUID, c.Attempts,
			c.LastFailed.Format("2006-01-02 15:04:05"), (time.Duration(c.RetryInSeconds * float64(time.Second))).Round(time.Second), c.LastError)
	}
	if r.DatabaseError != "" {
		fmt.Fprintf(w, "database: %s (figures read %s)\n", r.DatabaseError, r.ReadAt.Format(time.RFC3339))
	}
	if d := r.Daemon; d != nil {
		d.writeText(w)
	}
}

// writeMonitors writes the active monitor and the standbys.
func (r Report) writeMonitors(w io.Writer) {
	const stamp = "2006-01-02 15:04:05"
	if a := r.ActiveMonitor; a != nil {
		fmt.Fprintf(w, "active monitor: %s pid %d, since %s (term %d)\n", printable(a.Host), a.PID, a.Since.Format(stamp), a.Term)
	} else {
		fmt.Fprintln(w, "active monitor: none")
	}
	fmt.Fprintf(w, "standby monitors: %d\n", len(r.StandbyMonitors))
	for _, m := range r.StandbyMonitors {
		fmt.Fprintf(w, "  %s pid %d, started %s, last seen %s\n", printable(m.Host), m.PID, m.Since.Format(stamp), m.LastSeen.Format(stamp))
	}
}

// writeText writes what only the daemon knows.
func (d *DaemonReport) writeText(w io.Writer) {
	if d.Inbox != nil {
		fmt.Fprintf(w, "inbox: %d complete pairs waiting, %d incomplete\n", d.Inbox.Complete, d.Inbox.Incomplete)
	}
	var q, c int64
	for _, m := range d.Throughput {
		q, c = q+m.Queued, c+m.Cleaned
	}
	fmt.Fprintf(w, "last hour: %d queued, %d cleaned up\n", q, c)
	for _, p := range d.Passes {
		if p.Running {
			fmt.Fprintf(w, "%s: pass running for %s, %d done\n", p.Loop, time.Since(p.Started).Round(time.Second), p.Done)
		}
	}
	if !d.Healthy {
		fmt.Fprintf(w, "unhealthy: %s\n", d.Unhealthy)
	}
	if n := len(d.Events); n > 0 {
		fmt.Fprintln(w, "recent events:")
		for _, e := range d.Events[max(0, n-10):] {
			fmt.Fprintf(w, "  %s  %s\n", e.At.Format("2006-01-02 15:04:05"), e.Text)
		}
	}
}

// printable returns s as it is when it is plain printable text, else quoted
// with Go escapes: a processor may register under any name, and a terminal
// must not be fed control characters.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '\t' {
			return strconv.Quote(s)
		}
	}
	return s
}
