package figures

import (
	"fmt"
	"slices"
	"time"
)

// PassState is what a loop is doing, as the status page shows it.
type PassState struct {
	Loop string `json:"loop"`
	// Running is set while a pass runs; Started is when it began and Done
	// how many crashes it has handled so far (queued or cleaned up).
	Running bool      `json:"running"`
	Started time.Time `json:"started,omitzero"`
	Done    int       `json:"done"`
	// Waiting is set while the loop waits for its next pass.
	Waiting bool `json:"waiting"`
	// Passes counts the passes ended; LastDuration and LastError are the
	// last one's.
	Passes       int64         `json:"passes"`
	LastDuration time.Duration `json:"last_duration_ns"`
	LastError    string        `json:"last_error,omitempty"`
}

// loopHealth is what the health check knows of a loop.
type loopHealth struct {
	delay   time.Duration // the loop's delay when its last pass started
	last    time.Time     // the last sign of progress: a pass or batch ended, a wait begun
	waiting bool          // in a deliberate wait
}

// StuckGrace is added to twice a loop's delay before a loop that shows no
// progress counts as stuck.
const StuckGrace = time.Minute

// PassStarted records that loop began a pass; delay is its time between
// passes (for the health check).
func (f *Figures) PassStarted(loop string, delay time.Duration) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	p := f.pass(loop)
	p.Running, p.Started, p.Done, p.Waiting = true, now, 0, false
	h := f.loopHealth(loop)
	h.delay, h.last, h.waiting = delay, now, false
}

// Progress records that loop's running pass has handled done crashes so
// far (a batch ended).
func (f *Figures) Progress(loop string, done int) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pass(loop).Done = done
	f.loopHealth(loop).last = f.now()
}

// PassEnded records the end of loop's pass, which took took and failed with
// err (nil for success).
func (f *Figures) PassEnded(loop string, took time.Duration, err error) {
	if f == nil {
		return
	}
	f.m.passDuration.WithLabelValues(loop).Observe(took.Seconds())
	if err != nil {
		f.m.passErrors.WithLabelValues(loop).Inc()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pass(loop)
	p.Running = false
	p.Passes++
	p.LastDuration = took
	p.LastError = ""
	if err != nil {
		p.LastError = err.Error()
	}
	f.loopHealth(loop).last = f.now()
}

// Waiting records that loop began a deliberate wait (for its next pass, for
// a live processor, backing off).
func (f *Figures) Waiting(loop string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pass(loop).Waiting = true
	h := f.loopHealth(loop)
	h.last, h.waiting = f.now(), true
}

// LoopsStopped records that the loops have returned (this monitor stepped
// down or stops): none is in a pass or a wait any more, and none can be
// stuck, so a standby's health check passes. The next term's loops start
// afresh.
func (f *Figures) LoopsStopped() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.health)
	for _, p := range f.passes {
		p.Running, p.Waiting = false, false
	}
}

// Passes returns what each loop seen so far is doing, in Loops order.
func (f *Figures) Passes() []PassState {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []PassState
	for _, name := range Loops() {
		if p := f.passes[name]; p != nil {
			out = append(out, *p)
		}
	}
	return out
}

// Health reports whether every loop is making progress or deliberately
// waiting: a loop in a pass that has shown no progress (no pass or batch
// ended) for more than twice its delay plus StuckGrace is stuck, and the
// reason names it.
func (f *Figures) Health() (ok bool, reason string) {
	if f == nil {
		return true, ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	names := make([]string, 0, len(f.health))
	for name := range f.health {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		h := f.health[name]
		if h.waiting {
			continue
		}
		if quiet := now.Sub(h.last); quiet > 2*h.delay+StuckGrace {
			return false, fmt.Sprintf("the %s loop has made no progress for %s", name, quiet.Round(time.Second))
		}
	}
	return true, ""
}

// pass returns loop's PassState. f.mu must be held.
func (f *Figures) pass(loop string) *PassState {
	p := f.passes[loop]
	if p == nil {
		p = &PassState{Loop: loop}
		f.passes[loop] = p
	}
	return p
}

// loopHealth returns loop's health record. f.mu must be held.
func (f *Figures) loopHealth(loop string) *loopHealth {
	h := f.health[loop]
	if h == nil {
		h = &loopHealth{last: f.now()}
		f.health[loop] = h
	}
	return h
}
