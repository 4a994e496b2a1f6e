package loop

import (
	"context"
	"iter"
	"log/slog"
	"time"
)

// Backoff is a capped exponential backoff: the wait after the first failure
// is Min, each further consecutive failure doubles it, and it never exceeds
// Max. The zero value never waits.
type Backoff struct {
	Min, Max time.Duration
}

// Delay returns the wait after n consecutive failures: 0 for none, Min for
// the first, doubling up to Max.
func (b Backoff) Delay(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := b.Min
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Sleep waits for d, or until ctx is done; it reports whether the whole wait
// passed.
func Sleep(ctx context.Context, d time.Duration) bool { return Wait(ctx, d, nil) }

// Wait waits for d (for ever when d is negative), until wake is closed (nil:
// never), or until ctx is done; it reports false only when ctx ended the
// wait.
func Wait(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	var timer <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
		return false
	case <-timer:
	case <-wake:
	}
	return true
}

// Episode tracks a condition that lasts (no live processor, an outage), so
// that it is logged once when it starts and once when it ends, not once per
// pass or retry. The zero value is a condition that does not hold.
type Episode struct {
	on bool
}

// Begin records that the condition holds and reports whether it started now
// (log it then).
func (e *Episode) Begin() bool {
	started := !e.on
	e.on = true
	return started
}

// End records that the condition no longer holds and reports whether it
// held until now (log its end then).
func (e *Episode) End() bool {
	ended := e.on
	e.on = false
	return ended
}

// Active reports whether the condition holds.
func (e *Episode) Active() bool { return e.on }

// Memory remembers something about each of a set of keys (crash ids) across
// passes over a changing collection: a pass marks the keys it meets with
// Seen, and EndPass forgets the keys it did not meet, so the memory stays as
// small as the set of keys still there. The zero value is ready to use; it
// is not safe for concurrent use.
type Memory[V any] struct {
	m    map[string]*V
	seen map[string]bool
}

// Get returns what is remembered of key, nil if nothing.
func (m *Memory[V]) Get(key string) *V { return m.m[key] }

// Remember returns what is remembered of key, a new zero value (remembered
// from now on) if nothing, and whether it was new.
func (m *Memory[V]) Remember(key string) (v *V, added bool) {
	if v := m.m[key]; v != nil {
		return v, false
	}
	if m.m == nil {
		m.m = map[string]*V{}
	}
	v = new(V)
	m.m[key] = v
	return v, true
}

// Replace remembers v for key instead of what was remembered.
func (m *Memory[V]) Replace(key string, v *V) {
	if m.m == nil {
		m.m = map[string]*V{}
	}
	m.m[key] = v
}

// Forget forgets key.
func (m *Memory[V]) Forget(key string) { delete(m.m, key) }

// Seen marks key as met in the current pass.
func (m *Memory[V]) Seen(key string) {
	if m.seen == nil {
		m.seen = map[string]bool{}
	}
	m.seen[key] = true
}

// EndPass forgets every key the pass did not mark with Seen, and starts the
// next pass.
func (m *Memory[V]) EndPass() {
	for key := range m.m {
		if !m.seen[key] {
			delete(m.m, key)
		}
	}
	clear(m.seen)
}

// All yields every key remembered with its value.
func (m *Memory[V]) All() iter.Seq2[string, *V] {
	return func(yield func(string, *V) bool) {
		for k, v := range m.m {
			if !yield(k, v) {
				return
			}
		}
	}
}

// Len returns how many keys are remembered.
func (m *Memory[V]) Len() int { return len(m.m) }

// Pass adapts a loop's RunOnce, which returns what the pass did, to
// Runner.Pass.
func Pass[R any](runOnce func(context.Context) (R, error)) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := runOnce(ctx)
		return err
	}
}

// ProgressInterval is how often a long pass logs its progress.
const ProgressInterval = 10 * time.Second

// Progress logs the progress of a long pass at INFO every ProgressInterval:
// how much is done so far and the rate since the pass began. A pass shorter
// than the interval logs nothing. Start it at the beginning of the pass.
type Progress struct {
	logger *slog.Logger
	msg    string
	start  time.Time
	last   time.Time
}

// NewProgress starts the progress of a pass, logged with msg.
func NewProgress(logger *slog.Logger, msg string) *Progress {
	now := time.Now()
	return &Progress{logger: logger, msg: msg, start: now, last: now}
}

// Update logs done (crashes handled so far) when ProgressInterval has
// passed since the last line.
func (p *Progress) Update(ctx context.Context, done int) {
	now := time.Now()
	if now.Sub(p.last) < ProgressInterval {
		return
	}
	p.last = now
	elapsed := now.Sub(p.start)
	p.logger.InfoContext(ctx, p.msg, "done", done, "elapsed", elapsed.Round(time.Second),
		"per_second", int(float64(done)/elapsed.Seconds()))
}
