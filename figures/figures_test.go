package figures_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

// countingReader is the real queue.Store, counting its reads.
type countingReader struct {
	store *queue.Store
	reads atomic.Int64
}

func (c *countingReader) Status(ctx context.Context, checkIn time.Duration) (queue.Status, error) {
	c.reads.Add(1)
	return c.store.Status(ctx, checkIn)
}

// TestDatabaseReadAtMostOnceASecond: however many readers scrape, the
// database is read at most once per MinRead, and the gauges match it.
func TestDatabaseReadAtMostOnceASecond(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	live := testkit.Processor(t, pool, 0)
	dead := testkit.Processor(t, pool, 3*time.Hour)
	testkit.NumberedJobs(t, pool, live, "q", 3, testkit.Queued)
	testkit.NumberedJobs(t, pool, live, "s", 2, testkit.Started)
	testkit.NumberedJobs(t, pool, dead, "ok", 4, testkit.Succeeded)
	testkit.NumberedJobs(t, pool, dead, "ko", 1, testkit.Failed)
	testkit.Exec(t, pool, `INSERT INTO priorityjobs (uuid) VALUES ('a'), ('b')`)

	clk := testkit.NewClock(time.Now())
	db := &countingReader{store: queue.NewStore(pool)}
	f := figures.New(figures.Options{DB: db, Version: "v-test", Now: clk.Now, CheckIn: func() time.Duration { return time.Minute }})
	reg := prometheus.NewRegistry()
	if err := f.Register(reg); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := db.reads.Load(); n != 1 {
		t.Errorf("20 concurrent scrapes read the database %d times, want 1", n)
	}
	clk.Add(figures.MinRead)
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	if n := db.reads.Load(); n != 2 {
		t.Errorf("a scrape a second later: %d reads, want 2", n)
	}

	want := `
# HELP monitor_jobs Jobs rows by state: queued (not started), started (not finished), succeeded, failed.
# TYPE monitor_jobs gauge
monitor_jobs{state="failed"} 1
monitor_jobs{state="queued"} 3
monitor_jobs{state="started"} 2
monitor_jobs{state="succeeded"} 4
# HELP monitor_processors Processors by liveness: live, stale, dead.
# TYPE monitor_processors gauge
monitor_processors{state="dead"} 1
monitor_processors{state="live"} 1
monitor_processors{state="stale"} 0
# HELP monitor_priority_requests_pending Rows in priorityjobs.
# TYPE monitor_priority_requests_pending gauge
monitor_priority_requests_pending 2
# HELP monitor_build_info Always 1; the label is the monitor's version.
# TYPE monitor_build_info gauge
monitor_build_info{version="v-test"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"monitor_jobs", "monitor_processors", "monitor_priority_requests_pending", "monitor_build_info"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "monitor_processor_pending_jobs"); n != 2 {
		t.Errorf("%d monitor_processor_pending_jobs series, want one per processor (2)", n)
	}
}

// failingReader fails its reads while down is set.
type failingReader struct{ down atomic.Bool }

func (r *failingReader) Status(context.Context, time.Duration) (queue.Status, error) {
	if r.down.Load() {
		return queue.Status{}, errors.New("connection refused")
	}
	return queue.Status{}, nil
}

// TestOneOutageOneEventPair: an outage that the loops report and the
// figures' own reads meet too is one event when it starts and one when it
// ends, whoever notices first.
func TestOneOutageOneEventPair(t *testing.T) {
	t.Parallel()
	clk := testkit.NewClock(time.Now())
	db := &failingReader{}
	f := figures.New(figures.Options{DB: db, Now: clk.Now})
	db.down.Store(true)
	f.DatabaseUnreachable(errors.New("connection refused")) // a loop first
	if _, _, err := f.DB(t.Context()); err == nil {
		t.Fatal("DB() read through the outage")
	}
	f.DatabaseUnreachable(errors.New("connection refused"))
	db.down.Store(false)
	clk.Add(figures.MinRead)
	if _, _, err := f.DB(t.Context()); err != nil { // the figures first
		t.Fatal(err)
	}
	f.DatabaseAnswers()
	var got []string
	for _, e := range f.Events() {
		if e.Kind == figures.EventDatabase {
			got = append(got, e.Text)
		}
	}
	if len(got) != 2 || !strings.Contains(got[0], "does not answer: connection refused") || got[1] != "the database answers again" {
		t.Errorf("database events %q, want the outage's start and end once", got)
	}
}

// TestSeriesFromTheFirstScrape: every label value of the contract has its
// series at 0 before anything happened.
func TestSeriesFromTheFirstScrape(t *testing.T) {
	t.Parallel()
	f := figures.New(figures.Options{Version: "v"})
	reg := prometheus.NewRegistry()
	if err := f.Register(reg); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int{
		"monitor_queued_total":             2,
		"monitor_cleaned_total":            4,
		"monitor_pass_errors_total":        3,
		"monitor_pass_duration_seconds":    3,
		"monitor_job_turnaround_seconds":   2,
		"monitor_inbox_pairs":              2,
		"monitor_active":                   1,
		"monitor_processors_reaped_total":  1,
		"monitor_jobs_moved_total":         1,
		"monitor_arrival_latency_seconds":  1,
		"monitor_priority_latency_seconds": 1,
	} {
		if got := testutil.CollectAndCount(reg, name); got != n {
			t.Errorf("%s: %d series, want %d", name, got, n)
		}
	}
	// No database yet: no database gauges, and the scrape still works.
	if got := testutil.CollectAndCount(reg, "monitor_jobs"); got != 0 {
		t.Errorf("monitor_jobs without a database: %d series", got)
	}
}

// TestFeeds: what the loops feed shows in the counters, the throughput and
// the report.
func TestFeeds(t *testing.T) {
	t.Parallel()
	clk := testkit.NewClock(time.Date(2026, 12, 4, 10, 0, 30, 0, time.UTC))
	f := figures.New(figures.Options{Version: "v", Now: clk.Now})
	reg := prometheus.NewRegistry()
	if err := f.Register(reg); err != nil {
		t.Fatal(err)
	}
	f.Queued(figures.LoopScanner, 5)
	f.Queued(figures.LoopPriority, 1)
	f.Cleaned(figures.CleanedArchived, 3)
	f.Cleaned(figures.CleanedFailed, 2)
	f.Reaped(1, 40)
	f.JobsMoved(2)
	clk.Add(time.Minute)
	f.Queued(figures.LoopScanner, 7)
	f.SetInbox(4, 1)
	f.SetActive(true)
	f.Event(figures.EventReaped, "reaped")

	want := `
# HELP monitor_queued_total Jobs this process queued, by loop (scanner or priority).
# TYPE monitor_queued_total counter
monitor_queued_total{loop="priority"} 1
monitor_queued_total{loop="scanner"} 12
# HELP monitor_jobs_moved_total Jobs moved off dead processors.
# TYPE monitor_jobs_moved_total counter
monitor_jobs_moved_total 42
# HELP monitor_processors_reaped_total Dead processors removed.
# TYPE monitor_processors_reaped_total counter
monitor_processors_reaped_total 1
# HELP monitor_inbox_pairs Pairs the last scan pass left in the inbox: complete (waiting) and incomplete.
# TYPE monitor_inbox_pairs gauge
monitor_inbox_pairs{state="complete"} 4
monitor_inbox_pairs{state="incomplete"} 1
# HELP monitor_active 1 while this process runs the loops, 0 on standby.
# TYPE monitor_active gauge
monitor_active 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"monitor_queued_total", "monitor_jobs_moved_total", "monitor_processors_reaped_total", "monitor_inbox_pairs", "monitor_active"); err != nil {
		t.Error(err)
	}
	tp := f.Throughput()
	if len(tp) != 60 {
		t.Fatalf("%d minutes of throughput, want 60", len(tp))
	}
	last, prev := tp[59], tp[58]
	if last.Queued != 7 || prev.Queued != 6 || prev.Cleaned != 3 || last.Cleaned != 0 {
		t.Errorf("throughput: previous minute %+v, this minute %+v", prev, last)
	}
	if !last.Start.Equal(time.Date(2026, 12, 4, 10, 1, 0, 0, time.UTC)) {
		t.Errorf("this minute starts %v", last.Start)
	}
	// An hour later the old minutes are gone.
	clk.Add(time.Hour)
	for _, m := range f.Throughput() {
		if m.Queued+m.Cleaned != 0 {
			t.Errorf("an hour later, minute %v still has %+v", m.Start, m)
		}
	}
	rep := f.Report(t.Context(), figures.Identity{Version: "v", PID: 1, Host: "h"})
	if rep.Daemon == nil || !rep.Daemon.Active || rep.Daemon.Inbox.Complete != 4 || len(rep.Daemon.Events) != 1 {
		t.Errorf("report: %+v", rep.Daemon)
	}
	if rep.DatabaseError == "" {
		t.Error("a report without a database does not say so")
	}
}

// TestHealth: a loop in a pass that shows no progress for more than twice
// its delay plus a minute is stuck; a waiting loop never is.
func TestHealth(t *testing.T) {
	t.Parallel()
	clk := testkit.NewClock(time.Now())
	f := figures.New(figures.Options{Now: clk.Now})
	if ok, _ := f.Health(); !ok {
		t.Error("unhealthy before any loop ran")
	}
	f.PassStarted(figures.LoopScanner, 10*time.Second)
	clk.Add(80 * time.Second)
	if ok, why := f.Health(); !ok {
		t.Errorf("unhealthy within 2×delay+1m: %s", why)
	}
	f.Progress(figures.LoopScanner, 100) // a batch ended
	clk.Add(80 * time.Second)
	if ok, why := f.Health(); !ok {
		t.Errorf("unhealthy after progress: %s", why)
	}
	clk.Add(2 * time.Second)
	ok, why := f.Health()
	if ok || !strings.Contains(why, "scanner") {
		t.Errorf("Health after 82 s without progress = %v, %q; want the scanner named", ok, why)
	}
	f.PassEnded(figures.LoopScanner, time.Minute, nil)
	f.Waiting(figures.LoopScanner)
	clk.Add(time.Hour)
	if ok, why := f.Health(); !ok {
		t.Errorf("a waiting loop is stuck: %s", why)
	}
	if p := f.Passes(); len(p) != 1 || p[0].Running || !p[0].Waiting || p[0].Passes != 1 {
		t.Errorf("passes: %+v", p)
	}
}

// TestNilFigures: the loops may run without figures.
func TestNilFigures(t *testing.T) {
	t.Parallel()
	var f *figures.Figures
	f.Queued(figures.LoopScanner, 1)
	f.Cleaned(figures.CleanedArchived, 1)
	f.Reaped(1, 1)
	f.ArrivalLatency(time.Second)
	f.PriorityLatency(time.Second)
	f.Turnaround(true, time.Second)
	f.SetInbox(1, 1)
	f.Event(figures.EventReload, "x")
	f.PassStarted(figures.LoopCleanup, time.Second)
	f.Progress(figures.LoopCleanup, 1)
	f.PassEnded(figures.LoopCleanup, time.Second, nil)
	f.Waiting(figures.LoopCleanup)
	f.DatabaseUnreachable(context.DeadlineExceeded)
	f.DatabaseAnswers()
	if ok, _ := f.Health(); !ok {
		t.Error("nil figures unhealthy")
	}
}

// TestLoopsStopped: a monitor whose loops stopped in the middle of a pass
// (it stepped down) is healthy however long it then stands by.
func TestLoopsStopped(t *testing.T) {
	t.Parallel()
	clk := testkit.NewClock(time.Now())
	f := figures.New(figures.Options{Now: clk.Now})
	f.SetActive(true)
	f.PassStarted(figures.LoopScanner, 10*time.Second)
	f.SetActive(false)
	f.PassEnded(figures.LoopScanner, time.Second, nil) // cancelled
	f.LoopsStopped()
	clk.Add(time.Hour)
	if ok, why := f.Health(); !ok {
		t.Errorf("a standby whose loops stopped is unhealthy: %s", why)
	}
	if p := f.Passes(); len(p) != 1 || p[0].Running || p[0].Waiting {
		t.Errorf("passes after the loops stopped: %+v", p)
	}
}

// TestReportMonitors: the report names the active monitor and the
// standbys, in JSON and in text.
func TestReportMonitors(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 11, 22, 14, 3, 7, 0, time.Local)
	st := queue.Status{
		Active: &queue.Leader{Instance: queue.Instance{ID: "a:1:x", Host: "monitor-a", PID: 4711}, Term: 3, Since: since, Valid: true},
		Standbys: []queue.MonitorInstance{
			{Instance: queue.Instance{ID: "b:2:y", Host: "monitor-b", PID: 4712}, Started: since, Seen: since.Add(time.Minute)},
		},
	}
	rep := figures.StatusReport(st)
	if a := rep.ActiveMonitor; a == nil || a.Host != "monitor-a" || a.PID != 4711 || a.Term != 3 || !a.Since.Equal(since) {
		t.Errorf("ActiveMonitor = %+v", a)
	}
	if len(rep.StandbyMonitors) != 1 || rep.StandbyMonitors[0].PID != 4712 {
		t.Errorf("StandbyMonitors = %+v", rep.StandbyMonitors)
	}
	var b strings.Builder
	rep.WriteText(&b)
	for _, want := range []string{
		"active monitor: monitor-a pid 4711, since 2026-11-22 14:03:07 (term 3)\n",
		"standby monitors: 1\n  monitor-b pid 4712, started 2026-11-22 14:03:07, last seen 2026-11-22 14:04:07\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	figures.StatusReport(queue.Status{}).WriteText(&b)
	if !strings.Contains(b.String(), "active monitor: none\nstandby monitors: 0\n") {
		t.Errorf("text report without monitors:\n%s", b.String())
	}
}
