package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/loop"
	"github.com/crashmonitor/monitor/queue"
)

// Store is the memory of notifications (queue.Store's, fenced by the
// active monitor's lease).
type Store interface {
	SyncAlerts(ctx context.Context, rules []queue.AlertRule) ([]queue.AlertState, error)
	SaveAlertState(ctx context.Context, st queue.AlertState) error
}

// Options configures an Evaluator.
type Options struct {
	Figures *figures.Figures
	Store   Store
	// Rules and Interval return alertRules and alertInterval; they are
	// read at every evaluation, so a reload applies at the next one.
	Rules    func() []Rule
	Interval func() time.Duration
	// Changed, when not nil, returns a channel closed on a reload.
	Changed func() <-chan struct{}
	// Outage, when not nil, is the loops' tracker of database outages.
	Outage loop.Outage
	Logger *slog.Logger
	// KillAfter bounds a command's run (KillAfter when zero); Now is the
	// clock (time.Now when nil).
	KillAfter time.Duration
	Now       func() time.Time
}

// Evaluator evaluates the rules, in the active monitor only.
type Evaluator struct {
	opts     Options
	logger   *slog.Logger
	sampler  *figures.Sampler
	commands *commands

	rules  []*ruleState // in configuration order
	synced bool         // the memory holds exactly rules
	// saving: a change of state cannot be recorded (it waits, unnotified).
	saving loop.Episode
}

// ruleState is what the evaluator knows of a rule.
type ruleState struct {
	rule Rule
	ring ring
	// mem is the state as remembered in the database: the rule's
	// definition, whether it fires, since when, the average at its last
	// change, when it was last notified.
	mem queue.AlertState
	// unreadable: the rule's figure cannot be read (said once).
	unreadable loop.Episode
}

// New returns an evaluator of opts.
func New(opts Options) *Evaluator {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.KillAfter <= 0 {
		opts.KillAfter = KillAfter
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Evaluator{
		opts:     opts,
		logger:   logger,
		sampler:  figures.NewSampler(opts.Figures),
		commands: newCommands(logger, opts.KillAfter),
	}
}

// Run evaluates the rules at once and then every alertInterval until ctx
// is done; it then kills the commands still running and waits for them.
// With no rules configured it only waits for a reload.
func (e *Evaluator) Run(ctx context.Context) error {
	defer e.commands.wait()
	r := loop.Runner{
		Name:      "alerts",
		Logger:    e.logger,
		DelayFunc: e.opts.Interval,
		Changed:   e.opts.Changed,
		Outage:    e.opts.Outage,
		Pass:      func(ctx context.Context) error { return e.RunOnce(ctx) },
	}
	return r.Run(ctx)
}

// RunOnce takes one sample and evaluates every rule on it. It returns an
// error only when the memory of notifications cannot be read: no rule is
// evaluated without it.
func (e *Evaluator) RunOnce(ctx context.Context) error {
	e.configure(e.opts.Rules())
	if len(e.rules) == 0 && e.synced {
		return nil
	}
	if !e.synced {
		if err := e.sync(ctx); err != nil {
			return err
		}
	}
	sample := e.sampler.Sample(ctx)
	capacity := e.capacity()
	for _, rs := range e.rules {
		e.evaluate(ctx, rs, sample, capacity)
	}
	return nil
}

// configure makes the evaluator's rules the configured ones: a rule kept
// with the same definition keeps its state; a new or changed one starts
// afresh.
func (e *Evaluator) configure(rules []Rule) {
	prev := map[string]*ruleState{}
	for _, rs := range e.rules {
		prev[rs.rule.Name] = rs
	}
	next := make([]*ruleState, 0, len(rules))
	changed := len(rules) != len(e.rules)
	for _, r := range rules {
		def := r.Definition()
		if rs, ok := prev[r.Name]; ok && rs.mem.Definition == def {
			next = append(next, rs)
			delete(prev, r.Name)
			continue
		}
		changed = true
		next = append(next, &ruleState{rule: r, mem: queue.AlertState{AlertRule: r.remembered()}})
	}
	for _, rs := range prev {
		if rs.mem.Firing {
			e.logger.Info("alert rule removed or changed while it fired; its episode ends without a resolved notice", "rule", rs.rule.Name)
		}
	}
	e.rules = next
	if changed {
		e.synced = false
	}
}

// sync reads the memory of notifications for the configured rules,
// forgetting those of other rules and other definitions.
func (e *Evaluator) sync(ctx context.Context) error {
	remembered := make([]queue.AlertRule, len(e.rules))
	for i, rs := range e.rules {
		remembered[i] = rs.mem.AlertRule
	}
	states, err := e.opts.Store.SyncAlerts(ctx, remembered)
	if err != nil {
		return fmt.Errorf("alert rules not evaluated: %w", err)
	}
	for _, st := range states {
		i := slices.IndexFunc(e.rules, func(rs *ruleState) bool { return rs.rule.Name == st.Rule })
		if i < 0 || e.rules[i].mem.Definition != st.Definition {
			continue
		}
		e.rules[i].mem = st
	}
	e.synced = true
	return nil
}

// capacity is how many samples a window of w holds at the current
// interval.
func (e *Evaluator) capacity() func(w time.Duration) int {
	interval := e.opts.Interval()
	return func(w time.Duration) int {
		if interval <= 0 {
			return 1
		}
		return max(1, int((w+interval-1)/interval))
	}
}

// evaluate adds the sample's figure to the rule's window and notifies a
// change of state, or a repeat.
func (e *Evaluator) evaluate(ctx context.Context, rs *ruleState, sample figures.Sample, capacity func(time.Duration) int) {
	r := rs.rule
	if sample.FirstRates && figures.IsRate(r.Metric) {
		return // a rate needs two samples: a start is no drop to 0
	}
	v, ok := sample.Value(r.Metric)
	if !ok {
		if rs.unreadable.Begin() {
			e.logger.Warn("alert rule cannot read its figure; it neither fires nor resolves until it can",
				"rule", r.Name, "metric", r.Metric, "error", sample.DBErr)
		}
		return
	}
	if rs.unreadable.End() {
		e.logger.Info("alert rule reads its figure again", "rule", r.Name, "metric", r.Metric)
	}
	rs.ring.push(v, capacity(r.Window))
	avg := rs.ring.average()
	now := e.opts.Now()
	crossed := r.crossed(avg)
	next := rs.mem
	switch {
	case crossed != rs.mem.Firing:
		next.Firing, next.Since, next.Value, next.NotifiedAt = crossed, now, avg, now
	case rs.mem.Firing && r.Repeat > 0 && !now.Before(rs.mem.NotifiedAt.Add(r.Repeat)):
		next.NotifiedAt = now
	default:
		return
	}
	if !e.save(ctx, next) {
		return // not notified: tried again at the next sample
	}
	repeat := next.Firing == rs.mem.Firing
	rs.mem = next
	e.notify(ctx, rs, avg, repeat)
}

// save records st before its notice; a failure is said once, and its end.
func (e *Evaluator) save(ctx context.Context, st queue.AlertState) bool {
	err := e.opts.Store.SaveAlertState(ctx, st)
	if err == nil {
		if e.saving.End() {
			e.logger.Info("alert rules' states are recorded again; their notices go out")
		}
		return true
	}
	if errors.Is(err, queue.ErrAlertChanged) {
		e.synced = false // another monitor changed the memory: read it again
	}
	if ctx.Err() == nil && e.saving.Begin() {
		e.logger.Error("cannot record an alert rule's change of state; its notice waits until it can be recorded",
			"rule", st.Rule, "error", err)
	}
	return false
}

// notify logs rs's state and runs its command.
func (e *Evaluator) notify(ctx context.Context, rs *ruleState, avg float64, repeat bool) {
	r := rs.rule
	n := notice{rule: r, state: StateResolved, value: avg}
	window := formatWindow(r.Window)
	attrs := []any{"rule", r.Name, "metric", r.Metric, "average", formatNumber(avg),
		"threshold", formatNumber(r.Threshold), "window", window}
	switch {
	case !rs.mem.Firing:
		n.message = fmt.Sprintf("Alert %s resolved: %s averaged %s over the last %s, no longer %s its threshold of %s.",
			r.Name, r.Metric, formatNumber(avg), window, r.Direction(), formatNumber(r.Threshold))
		e.logger.Info(n.message, attrs...)
	case repeat:
		n.state = StateFiring
		n.message = fmt.Sprintf("Alert %s still firing since %s: %s averaged %s over the last %s, %s its threshold of %s.",
			r.Name, rs.mem.Since.UTC().Format(time.RFC3339), r.Metric, formatNumber(avg), window, r.Direction(), formatNumber(r.Threshold))
		e.logger.Warn(n.message, attrs...)
	default:
		n.state = StateFiring
		n.message = fmt.Sprintf("Alert %s firing: %s averaged %s over the last %s, %s its threshold of %s.",
			r.Name, r.Metric, formatNumber(avg), window, r.Direction(), formatNumber(r.Threshold))
		e.logger.Warn(n.message, attrs...)
	}
	if !repeat {
		e.opts.Figures.Event(figures.EventAlert, n.message)
	}
	e.commands.start(ctx, n)
}

// ring holds the latest samples of a window.
type ring struct {
	vals []float64 // oldest first once full; next is where the next goes
	next int
}

// push adds v, keeping at most capacity samples (the latest ones when the
// capacity shrank).
func (r *ring) push(v float64, capacity int) {
	if len(r.vals) > capacity { // the interval or window changed: keep the latest
		ordered := append(slices.Clone(r.vals[r.next:]), r.vals[:r.next]...)
		r.vals, r.next = ordered[len(ordered)-capacity:], 0
	}
	if len(r.vals) < capacity {
		r.vals = slices.Insert(r.vals, r.next, v)
		r.next = (r.next + 1) % len(r.vals)
		return
	}
	r.vals[r.next] = v
	r.next = (r.next + 1) % len(r.vals)
}

// average is the mean of the samples held.
func (r *ring) average() float64 {
	sum := 0.0
	for _, v := range r.vals {
		sum += v
	}
	return sum / float64(len(r.vals))
}
