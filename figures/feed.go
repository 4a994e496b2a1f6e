package figures

import (
	"time"
)

// Queued counts n jobs queued by loop (LoopScanner or LoopPriority).
func (f *Figures) Queued(loop string, n int) {
	if f == nil || n <= 0 {
		return
	}
	f.m.queued.WithLabelValues(loop).Add(float64(n))
	f.mu.Lock()
	f.minute().queued += int64(n)
	f.mu.Unlock()
}

// Cleaned counts n finished jobs cleaned up with outcome (CleanedArchived,
// CleanedDeleted, CleanedMissing, CleanedFailed).
func (f *Figures) Cleaned(outcome string, n int) {
	if f == nil || n <= 0 {
		return
	}
	f.m.cleaned.WithLabelValues(outcome).Add(float64(n))
	if outcome == CleanedFailed {
		return // still there: not throughput
	}
	f.mu.Lock()
	f.minute().cleaned += int64(n)
	f.mu.Unlock()
}

// Reaped counts a dead-processor sweep that removed processors and moved
// jobs.
func (f *Figures) Reaped(processors int, jobsMoved int64) {
	if f == nil {
		return
	}
	f.m.reaped.Add(float64(processors))
	f.JobsMoved(jobsMoved)
}

// JobsMoved counts jobs moved off dead processors (by a sweep, or one at a
// time by the priority loop).
func (f *Figures) JobsMoved(n int64) {
	if f == nil || n <= 0 {
		return
	}
	f.m.moved.Add(float64(n))
}

// ArrivalLatency records how long a pair took from complete (its later
// file's modification time) to its job's commit.
func (f *Figures) ArrivalLatency(d time.Duration) {
	if f == nil {
		return
	}
	f.m.arrival.Observe(max(d, 0).Seconds())
}

// PriorityLatency records how long a priority request took from its insert
// to its resolution.
func (f *Figures) PriorityLatency(d time.Duration) {
	if f == nil {
		return
	}
	f.m.priority.Observe(max(d, 0).Seconds())
}

// Turnaround records a finished job's time from queued to completed, when
// cleanup takes it.
func (f *Figures) Turnaround(success bool, d time.Duration) {
	if f == nil {
		return
	}
	outcome := "failed"
	if success {
		outcome = "succeeded"
	}
	f.m.turnaround.WithLabelValues(outcome).Observe(max(d, 0).Seconds())
}

// Inbox is what the last scan pass left in the inbox.
type Inbox struct {
	// Complete counts pairs ready to be queued but left there (no live
	// processor); Incomplete counts pairs still being written or broken.
	Complete, Incomplete int
	// At is when the pass ended.
	At time.Time
}

// SetInbox records what a scan pass left in the inbox.
func (f *Figures) SetInbox(complete, incomplete int) {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.inbox = &Inbox{Complete: complete, Incomplete: incomplete, At: f.now()}
	f.mu.Unlock()
}

// SetActive records whether this process runs the loops (1) or stands by.
func (f *Figures) SetActive(active bool) {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.active = active
	f.mu.Unlock()
}

// Active reports whether this process runs the loops.
func (f *Figures) Active() bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active
}

// minute returns the throughput bucket of the current minute, starting it
// when needed. f.mu must be held.
func (f *Figures) minute() *minute {
	now := f.now().Unix() / 60
	b := &f.hist[now%historyMinutes]
	if b.start != now {
		*b = minute{start: now}
	}
	return b
}

// Event is a notable event, as the status page lists them.
type Event struct {
	At   time.Time `json:"at"`
	Kind string    `json:"kind"`
	Text string    `json:"text"`
}

// Kinds of events.
const (
	EventReaped    = "reaped"    // dead processors reaped
	EventNoLive    = "no-live"   // a stretch without a live processor began or ended
	EventDatabase  = "database"  // the database became unreachable or answered again
	EventStorage   = "storage"   // a storage tree's file system failed or works again
	EventReload    = "reload"    // the configuration was reloaded
	EventLifecycle = "lifecycle" // the monitor started or stopped
	EventCleanup   = "cleanup"   // cleanups failing
	EventElection  = "election"  // this monitor became active, stood by or stepped down
	EventAlert     = "alert"     // a threshold rule fired or resolved
)

// Event records a notable event; the latest 50 are kept.
func (f *Figures) Event(kind, text string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addEvent(kind, text)
}

// addEvent records an event. f.mu must be held.
func (f *Figures) addEvent(kind, text string) {
	f.events = append(f.events, Event{At: f.now(), Kind: kind, Text: text})
	if len(f.events) > maxEvents {
		f.events = append(f.events[:0], f.events[len(f.events)-maxEvents:]...)
	}
}
