package figures

import (
	"context"
	"slices"
	"time"
)

// The parameters of a Sample, by name: the monitor's own report to
// MonALISA (CONTRACT section 9), which the threshold rules (section 10)
// watch too. The names are the metrics' without the monitor_ prefix, with
// the label value joined by "_".
const (
	ParamJobsQueued       = "jobs_queued"
	ParamJobsStarted      = "jobs_started"
	ParamJobsSucceeded    = "jobs_succeeded"
	ParamJobsFailed       = "jobs_failed"
	ParamProcessorsLive   = "processors_live"
	ParamProcessorsStale  = "processors_stale"
	ParamProcessorsDead   = "processors_dead"
	ParamOldestQueuedAge  = "oldest_queued_job_age_seconds"
	ParamPriorityPending  = "priority_requests_pending"
	ParamInboxComplete    = "inbox_pairs_complete"
	ParamInboxIncomplete  = "inbox_pairs_incomplete"
	ParamActive           = "active"
	ParamQueuedPerSecond  = "queued_per_second"
	ParamCleanedPerSecond = "cleaned_per_second"
)

// The kinds of parameter.
const (
	isCount   = true  // an integer
	isMeasure = false // an age or a rate
)

// paramSpec is one parameter: its name, whether it is a count (an integer)
// rather than a measure (an age or a rate), and whether it comes from the
// database (and so cannot be read while the database does not answer).
type paramSpec struct {
	name  string
	count bool
	db    bool
}

// params lists the parameters in the order a report sends them.
var params = []paramSpec{
	{ParamJobsQueued, isCount, true},
	{ParamJobsStarted, isCount, true},
	{ParamJobsSucceeded, isCount, true},
	{ParamJobsFailed, isCount, true},
	{ParamProcessorsLive, isCount, true},
	{ParamProcessorsStale, isCount, true},
	{ParamProcessorsDead, isCount, true},
	{ParamOldestQueuedAge, isMeasure, true},
	{ParamPriorityPending, isCount, true},
	{ParamInboxComplete, isCount, false},
	{ParamInboxIncomplete, isCount, false},
	{ParamActive, isCount, false},
	{ParamQueuedPerSecond, isMeasure, false},
	{ParamCleanedPerSecond, isMeasure, false},
}

// ParamNames returns the names of a Sample's parameters, in report order.
func ParamNames() []string {
	names := make([]string, len(params))
	for i, p := range params {
		names[i] = p.name
	}
	return names
}

// IsParam reports whether name is a parameter of a Sample.
func IsParam(name string) bool {
	return slices.ContainsFunc(params, func(p paramSpec) bool { return p.name == name })
}

// Param is one figure of a Sample.
type Param struct {
	Name string
	// Count says the value is a count (an integer), not an age or a rate.
	Count bool
	Value float64
}

// Sample is the monitor's figures at one moment, as parameters.
type Sample struct {
	At time.Time
	// Params are the parameters that could be read, in report order: the
	// database's are left out when it does not answer (DBErr says why).
	Params []Param
	DBErr  error
	// FirstRates says the rates are 0 only because the sampler had no
	// earlier sample to measure them from.
	FirstRates bool
}

// IsRate reports whether name is a rate over the time between samples.
func IsRate(name string) bool { return name == ParamQueuedPerSecond || name == ParamCleanedPerSecond }

// Value returns the parameter name's value, and false when the sample has
// none (the database did not answer, or no such parameter).
func (s Sample) Value(name string) (float64, bool) {
	for _, p := range s.Params {
		if p.Name == name {
			return p.Value, true
		}
	}
	return 0, false
}

// Sampler takes samples of f. The rates (queued_per_second,
// cleaned_per_second) are over the time since the sampler's previous
// sample, so each reader keeps a Sampler of its own. It is not safe for
// concurrent use.
type Sampler struct {
	f                       *Figures
	prevQueued, prevCleaned int64
	prevAt                  time.Time
}

// NewSampler returns a sampler of f.
func NewSampler(f *Figures) *Sampler { return &Sampler{f: f} }

// Sample reads the figures now: the database figures through DB (at most
// one read a second however many readers ask), and the daemon's own. The
// rates of the first sample are 0.
func (s *Sampler) Sample(ctx context.Context) Sample {
	f := s.f
	now := f.now()
	values := map[string]float64{}
	st, _, err := f.DB(ctx)
	if err == nil {
		values[ParamJobsQueued] = float64(st.Queued)
		values[ParamJobsStarted] = float64(st.Started)
		values[ParamJobsSucceeded] = float64(st.Succeeded)
		values[ParamJobsFailed] = float64(st.Failed)
		for _, p := range st.Processors {
			values["processors_"+p.State]++
		}
		age := 0.0
		if st.OldestQueuedAge != nil {
			age = st.OldestQueuedAge.Seconds()
		}
		values[ParamOldestQueuedAge] = age
		values[ParamPriorityPending] = float64(st.PriorityRequests)
	}
	if in := f.Inbox(); in != nil {
		values[ParamInboxComplete] = float64(in.Complete)
		values[ParamInboxIncomplete] = float64(in.Incomplete)
	}
	if f.Active() {
		values[ParamActive] = 1
	}
	queued, cleaned := f.Totals()
	first := s.prevAt.IsZero()
	if secs := now.Sub(s.prevAt).Seconds(); !first && secs > 0 {
		values[ParamQueuedPerSecond] = float64(max(queued-s.prevQueued, 0)) / secs
		values[ParamCleanedPerSecond] = float64(max(cleaned-s.prevCleaned, 0)) / secs
	}
	s.prevQueued, s.prevCleaned, s.prevAt = queued, cleaned, now

	out := Sample{At: now, DBErr: err, FirstRates: first, Params: make([]Param, 0, len(params))}
	for _, p := range params {
		if p.db && err != nil {
			continue
		}
		out.Params = append(out.Params, Param{Name: p.name, Count: p.count, Value: values[p.name]})
	}
	return out
}
