package figures

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Prometheus series of the figures. The counters and
// histograms are fed by the loops; the database gauges are collected at
// scrape time from DB (so read at most once a second).
type metrics struct {
	queued       *prometheus.CounterVec
	cleaned      *prometheus.CounterVec
	reaped       prometheus.Counter
	moved        prometheus.Counter
	passDuration *prometheus.HistogramVec
	passErrors   *prometheus.CounterVec
	arrival      prometheus.Histogram
	priority     prometheus.Histogram
	turnaround   *prometheus.HistogramVec
	buildInfo    *prometheus.GaugeVec
	state        *stateCollector
}

// latencyBuckets suit the latencies the monitor aims at: tens of
// milliseconds to a second, with room for a slow day.
func latencyBuckets() []float64 {
	return []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
}

func newMetrics(f *Figures, version string) metrics {
	m := metrics{
		queued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "monitor_queued_total", Help: "Jobs this process queued, by loop (scanner or priority).",
		}, []string{"loop"}),
		cleaned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "monitor_cleaned_total", Help: "Finished jobs cleaned up, by outcome (archived, deleted, missing, failed).",
		}, []string{"outcome"}),
		reaped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "monitor_processors_reaped_total", Help: "Dead processors removed.",
		}),
		moved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "monitor_jobs_moved_total", Help: "Jobs moved off dead processors.",
		}),
		passDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "monitor_pass_duration_seconds", Help: "Duration of each pass, by loop.",
			Buckets: []float64{0.001, 0.005, 0.025, 0.1, 0.5, 1, 5, 15, 60, 300, 1800},
		}, []string{"loop"}),
		passErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "monitor_pass_errors_total", Help: "Passes that ended in an error, by loop.",
		}, []string{"loop"}),
		arrival: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "monitor_arrival_latency_seconds", Help: "From a pair becoming complete (its later file's modification time) to its job's commit.",
			Buckets: latencyBuckets(),
		}),
		priority: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "monitor_priority_latency_seconds", Help: "From a priority request's insert to its resolution.",
			Buckets: latencyBuckets(),
		}),
		turnaround: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "monitor_job_turnaround_seconds", Help: "From a job's queueddatetime to its completeddatetime, observed when cleanup takes it, by outcome.",
			Buckets: []float64{1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600},
		}, []string{"outcome"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "monitor_build_info", Help: "Always 1; the label is the monitor's version.",
		}, []string{"version"}),
		state: newStateCollector(f),
	}
	// Every label value has its series from the first scrape.
	for _, l := range Loops() {
		m.passDuration.WithLabelValues(l)
		m.passErrors.WithLabelValues(l)
	}
	for _, l := range []string{LoopScanner, LoopPriority} {
		m.queued.WithLabelValues(l)
	}
	for _, o := range []string{CleanedArchived, CleanedDeleted, CleanedMissing, CleanedFailed} {
		m.cleaned.WithLabelValues(o)
	}
	for _, o := range []string{"succeeded", "failed"} {
		m.turnaround.WithLabelValues(o)
	}
	m.buildInfo.WithLabelValues(version).Set(1)
	return m
}

func (m metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.queued, m.cleaned, m.reaped, m.moved, m.passDuration, m.passErrors,
		m.arrival, m.priority, m.turnaround, m.buildInfo, m.state}
}

// stateCollector exports the gauges: the database figures (read through DB,
// so at most once a second), the inbox and whether this process is active.
type stateCollector struct {
	f                                                  *Figures
	jobs, processors, pending, oldest, requests, inbox *prometheus.Desc
	active, alerts                                     *prometheus.Desc
}

func newStateCollector(f *Figures) *stateCollector {
	return &stateCollector{
		f:          f,
		jobs:       prometheus.NewDesc("monitor_jobs", "Jobs rows by state: queued (not started), started (not finished), succeeded, failed.", []string{"state"}, nil),
		processors: prometheus.NewDesc("monitor_processors", "Processors by liveness: live, stale, dead.", []string{"state"}, nil),
		pending:    prometheus.NewDesc("monitor_processor_pending_jobs", "Unfinished jobs per processor (label: its name).", []string{"processor"}, nil),
		oldest:     prometheus.NewDesc("monitor_oldest_queued_job_age_seconds", "Age of the oldest unstarted job (0 when none).", nil, nil),
		requests:   prometheus.NewDesc("monitor_priority_requests_pending", "Rows in priorityjobs.", nil, nil),
		inbox:      prometheus.NewDesc("monitor_inbox_pairs", "Pairs the last scan pass left in the inbox: complete (waiting) and incomplete.", []string{"state"}, nil),
		active:     prometheus.NewDesc("monitor_active", "1 while this process runs the loops, 0 on standby.", nil, nil),
		alerts:     prometheus.NewDesc("monitor_alerts_firing", "1 while a threshold rule (alertRules) fires, else 0; one series per configured rule.", []string{"rule"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.jobs, c.processors, c.pending, c.oldest, c.requests, c.inbox, c.active, c.alerts} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	f := c.f
	active := 0.0
	if f.Active() {
		active = 1
	}
	gauge(c.active, active)
	complete, incomplete := 0, 0
	if in := f.Inbox(); in != nil {
		complete, incomplete = in.Complete, in.Incomplete
	}
	gauge(c.inbox, float64(complete), "complete")
	gauge(c.inbox, float64(incomplete), "incomplete")

	// The database figures: the last good read when the database does not
	// answer (a scrape must not fail for it; /readyz says so); none before
	// the first good read.
	st, _, err := f.DB(context.Background())
	if err != nil && !f.hasGoodRead() {
		return
	}
	gauge(c.jobs, float64(st.Queued), "queued")
	gauge(c.jobs, float64(st.Started), "started")
	gauge(c.jobs, float64(st.Succeeded), "succeeded")
	gauge(c.jobs, float64(st.Failed), "failed")
	states := map[string]int{}
	for _, p := range st.Processors {
		states[p.State]++
		gauge(c.pending, float64(p.Pending), p.Name)
	}
	for _, s := range []string{"live", "stale", "dead"} {
		gauge(c.processors, float64(states[s]), s)
	}
	age := 0.0
	if st.OldestQueuedAge != nil {
		age = st.OldestQueuedAge.Seconds()
	}
	gauge(c.oldest, age)
	gauge(c.requests, float64(st.PriorityRequests))
	for _, a := range st.Alerts {
		firing := 0.0
		if a.Firing {
			firing = 1
		}
		gauge(c.alerts, firing, a.Rule)
	}
}

// Inbox returns what the last scan pass left in the inbox; nil before the
// first pass.
func (f *Figures) Inbox() *Inbox {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inbox == nil {
		return nil
	}
	in := *f.inbox
	return &in
}

// hasGoodRead reports whether the database figures were read successfully
// at least once.
func (f *Figures) hasGoodRead() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.db.good
}
