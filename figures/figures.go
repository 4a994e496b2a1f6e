// Package figures owns the monitor's figures: what the database says (jobs
// by state, processors by liveness, pending jobs per processor, the oldest
// queued job's age, pending priority requests, failing cleanups), read at
// most once a second however many readers ask, and what only the running
// daemon knows, fed by its loops (jobs queued, pairs cleaned up by outcome,
// processors reaped and jobs moved, pass durations and errors, the arrival,
// priority and turnaround latencies, the pairs left in the inbox, the
// throughput of the last hour, passes in progress and notable events).
//
// Everything that shows the monitor's state reads it and runs no SQL of its
// own: the Prometheus metrics (Register), the status page and /api/status
// (Report), `monitor status`, and the health checks (Health). The loops
// feed it through the methods of *Figures, which do nothing on a nil
// *Figures, so a loop built without one (in a test) needs no stub.
package figures

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crashmonitor/monitor/internal/loop"
	"github.com/crashmonitor/monitor/queue"
)

// The loops, as label values.
const (
	LoopScanner  = "scanner"
	LoopPriority = "priority"
	LoopCleanup  = "cleanup"
)

// Loops lists the loops, in the order reports show them.
func Loops() []string { return []string{LoopScanner, LoopPriority, LoopCleanup} }

// Cleanup outcomes, as label values.
const (
	CleanedArchived = "archived"
	CleanedDeleted  = "deleted"
	CleanedMissing  = "missing"
	CleanedFailed   = "failed"
)

// Bounds of what the figures keep.
const (
	// MinRead is the shortest time between two reads of the database
	// figures: readers within it share the last read.
	MinRead = time.Second
	// readTimeout bounds one read of the database figures.
	readTimeout = 5 * time.Second
	// maxEvents is how many notable events are kept, the latest.
	maxEvents = 50
	// historyMinutes is how many minutes of throughput are kept.
	historyMinutes = 60
)

// StatusReader reads the database figures (queue.Store's Status); checkIn
// is processorCheckInTime.
type StatusReader interface {
	Status(ctx context.Context, checkIn time.Duration) (queue.Status, error)
}

// Options configures a Figures.
type Options struct {
	// DB reads the database figures; nil means the figures have none (a
	// daemon that is not connected yet).
	DB StatusReader
	// CheckIn returns processorCheckInTime, read before every database
	// read so that a reload applies.
	CheckIn func() time.Duration
	// Version is the monitor's version, for monitor_build_info.
	Version string
	// Now is the clock (time.Now when nil); tests set it.
	Now func() time.Time
}

// Figures is the monitor's figures. It is safe for concurrent use.
type Figures struct {
	opts Options
	m    metrics

	// readMu serialises the database reads; mu guards everything below.
	readMu sync.Mutex
	mu     sync.Mutex
	db     dbRead
	inbox  *Inbox
	hist   [historyMinutes]minute
	events []Event
	passes map[string]*PassState
	health map[string]*loopHealth
	active bool
	dbDown loop.Episode // the database figures could not be read
}

// dbRead is the last read of the database figures.
type dbRead struct {
	status queue.Status
	at     time.Time // when it was read; zero before the first
	err    error     // the last read's error (status is then the last good one)
	errAt  time.Time
	good   bool // status holds a successful read
}

// minute is the throughput of one minute.
type minute struct {
	start           int64 // Unix minute
	queued, cleaned int64
}

// New returns the figures of one process.
func New(opts Options) *Figures {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CheckIn == nil {
		opts.CheckIn = func() time.Duration { return 5 * time.Minute }
	}
	f := &Figures{
		opts:   opts,
		passes: map[string]*PassState{},
		health: map[string]*loopHealth{},
	}
	f.m = newMetrics(f, opts.Version)
	return f
}

// Register registers the monitor's metrics with reg.
func (f *Figures) Register(reg prometheus.Registerer) error {
	for _, c := range f.m.collectors() {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// SetDB gives the figures their database, once the daemon has connected.
func (f *Figures) SetDB(db StatusReader) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opts.DB = db
}

// DB returns the database figures, read now unless the last read is younger
// than MinRead. When a read fails it returns the error with the last good
// figures (the zero Status before any), so that readers can show them as
// stale. Only one read runs at a time; callers arriving meanwhile wait for
// it and share its result.
func (f *Figures) DB(ctx context.Context) (queue.Status, time.Time, error) {
	if f == nil {
		return queue.Status{}, time.Time{}, ErrNoDatabase
	}
	f.readMu.Lock()
	defer f.readMu.Unlock()
	f.mu.Lock()
	last, db := f.db, f.opts.DB
	f.mu.Unlock()
	if db == nil {
		return queue.Status{}, time.Time{}, ErrNoDatabase
	}
	now := f.opts.Now()
	if !last.at.IsZero() && now.Sub(last.at) < MinRead && (last.err == nil || now.Sub(last.errAt) < MinRead) {
		return last.status, last.at, last.err
	}
	rctx, cancel := context.WithTimeout(ctx, readTimeout)
	st, err := db.Status(rctx, f.opts.CheckIn())
	cancel()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.db.at = now
	if err != nil {
		f.db.err, f.db.errAt = err, now
		f.databaseDown(err)
		return f.db.status, now, err
	}
	f.databaseUp()
	f.db = dbRead{status: st, at: now, good: true}
	return st, now, nil
}

// DatabaseUnreachable records that the daemon's loops find the database out
// of reach. An outage is one event when it starts and one when it ends,
// whether the loops or the figures' own reads notice it first.
func (f *Figures) DatabaseUnreachable(err error) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.databaseDown(err)
}

// DatabaseAnswers records that the database answers the loops again.
func (f *Figures) DatabaseAnswers() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.databaseUp()
}

// databaseDown records the start of an outage, once. f.mu must be held.
func (f *Figures) databaseDown(err error) {
	if f.dbDown.Begin() {
		f.addEvent(EventDatabase, "the database does not answer: "+err.Error())
	}
}

// databaseUp records the end of an outage, once. f.mu must be held.
func (f *Figures) databaseUp() {
	if f.dbDown.End() {
		f.addEvent(EventDatabase, "the database answers again")
	}
}

// ErrNoDatabase is DB's error when the figures have no database (the
// daemon has not connected yet).
var ErrNoDatabase = errors.New("no database connection yet")

// now returns the figures' clock.
func (f *Figures) now() time.Time { return f.opts.Now() }
