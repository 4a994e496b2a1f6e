// Package priority resolves the reporter's priority requests: a crash id
// inserted into priorityjobs (by the web reporter, or `monitor prioritize`)
// is a user waiting for that crash, and it is processed next wherever it is.
//
// A pass reads every request, in bounded batches in uuid order, and resolves
// each batch in one transaction (queue's ResolvePriority):
//
//   - already queued and unfinished: its priority is raised to at least 1 and
//     its owner is told through priority_jobs_<owner> (insert-if-absent, so
//     asking twice is fine). A job whose owner is dead, gone or NULL is first
//     moved to the least-loaded live processor, unstarted, in the same
//     transaction, as the dead-processor sweep would move it: the request is
//     not parked until the sweep comes round (socorro-classic 7.3 #21). A
//     job is never taken from a live or stale owner, which may be working on
//     it: when such an owner has no priority table (yet), the request is
//     kept until it has one;
//   - already finished: nothing to do;
//   - in the standard tree, else in the deferred tree, as a complete pair:
//     queued with priority 1 to the least-loaded live processor and its
//     owner told; only after the commit are its inbox links removed. The
//     files stay where they are (a deferred crash is processed in place). A
//     crash between the commit and the unlinking leaves a link whose id is
//     queued, which the scanner meets, finds queued and removes;
//   - nowhere: an ERROR names it and the request is dropped;
//   - not a crash id (crashstore.ValidID): logged, quoted and truncated, and
//     dropped without touching the filesystem.
//
// The request is deleted in the transaction that resolves it. Requests that
// cannot be resolved yet are kept and looked at again, each on its own
// schedule, without holding up the others: no live processor (every
// WaitForProcessor, warned about once per stretch), a pair still being
// written or missing one file (rechecked soon, dropped with an ERROR after
// GiveUp; the crash itself stays on disk for the scanner), a lookup I/O
// error (retried with backoff), a tree at fault (its file system vanished or
// failing: kept, never dropped as not found, and looked at again when the
// board of the trees' faults says, the fault logged once there), an owner
// without a priority table (retried;
// after GiveUp the request is dropped, the job keeping its raised priority),
// a job that changed under the transaction (retried at once).
//
// Passes run at once, every priorityLoopDelay, and as soon as a NOTIFY on
// monitor_priorityjobs arrives: a listener on a connection of its own wakes
// the loop, and reconnects with capped backoff when that connection drops.
// The notification is only a hint; the periodic pass is the safety net.
package priority

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/dispatch"
	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/loop"
	"github.com/crashmonitor/monitor/internal/treefault"
	"github.com/crashmonitor/monitor/queue"
)

// Defaults for the Config fields left zero.
const (
	// DefaultBatchSize is how many requests one transaction resolves.
	DefaultBatchSize = 500
	// DefaultSettle is how long both files of a pair must have been left
	// unmodified before the pair counts as complete (as for the scanner).
	DefaultSettle = 250 * time.Millisecond
	// DefaultRecheck is the first pause before a pair being written is
	// looked at again; it doubles up to MaxRecheck.
	DefaultRecheck = 250 * time.Millisecond
	// DefaultWaitForProcessor is the pause between attempts while a
	// request waits for a live processor, or for its owner's priority table.
	DefaultWaitForProcessor = 2 * time.Second
	// DefaultGiveUp is how long a pair may stay incomplete, or an owner
	// without a priority table, before the request is dropped.
	DefaultGiveUp = time.Minute
	// DefaultHealthCheck is how long the listener waits quietly before it
	// checks that its connection still works.
	DefaultHealthCheck = 30 * time.Second
)

// Fixed bounds of the retries.
const (
	// MaxRecheck caps the pause between looks at an incomplete pair.
	MaxRecheck = 5 * time.Second
	// MinRetry and MaxRetry bound the backoff of a request whose lookup or
	// telling failed: MinRetry doubling per failure, capped at MaxRetry.
	MinRetry = time.Second
	MaxRetry = 30 * time.Second
	// MinListenBackoff and MaxListenBackoff bound the waits between
	// attempts to listen again. A listener connection that had lived
	// MaxListenBackoff is replaced at once.
	MinListenBackoff = time.Second
	MaxListenBackoff = 30 * time.Second
	// minPause keeps a loop with requests due for a retry from spinning.
	minPause = 10 * time.Millisecond
	// pingTimeout bounds the listener's health check.
	pingTimeout = 10 * time.Second
	// closeTimeout bounds closing the listener connection.
	closeTimeout = time.Second
	// maxLogged is how many bytes of a malformed request a log line shows.
	maxLogged = 80
)

// Config is what a Loop reads from the configuration. The Func fields are
// read before every pass or wait, so a reloaded configuration applies at
// once.
type Config struct {
	DelayFunc   func() time.Duration // priorityLoopDelay
	CheckInFunc func() time.Duration // processorCheckInTime
	// Changed, when not nil, returns a channel closed on a reload.
	Changed func() <-chan struct{}
	// Faults is the board of the trees' faults the loops share; nil makes
	// one of the Loop's own.
	Faults *treefault.Board

	// Figures, when not nil, receives what the loop does.
	Figures *figures.Figures
	// Outage, when not nil, is told how passes and the listener's
	// connections went: it logs a database outage once for every loop and
	// the listener, which retry within seconds. Listener, when not nil, is
	// told of the listener's connections instead (they go elsewhere than
	// the passes' when the pool goes through a pooler).
	Outage, Listener loop.Outage
	// Listen, when not nil, opens the listener's connection instead of the
	// store's ListenPriority (on the pool's settings): a direct connection
	// when the pool goes through a transaction pooler.
	Listen func(ctx context.Context) (*queue.PriorityListener, error)

	BatchSize        int
	Settle           time.Duration
	Recheck          time.Duration
	WaitForProcessor time.Duration
	GiveUp           time.Duration
	HealthCheck      time.Duration
}

// jobStore is the slice of *queue.Store the loop uses.
type jobStore interface {
	PriorityRequests(ctx context.Context, after string, limit int) ([]queue.PriorityRequest, error)
	ResolvePriority(ctx context.Context, b queue.PriorityBatch, checkIn time.Duration, loads *dispatch.Loads) ([]queue.PriorityOutcome, error)
	ListenPriority(ctx context.Context) (*queue.PriorityListener, error)
}

// Result tells what one pass did with the requests.
type Result struct {
	Queued    int  // crashes found on disk and queued with priority
	Raised    int  // already queued: priority raised, owner told
	Moved     int  // already queued to a dead processor: moved, owner told
	Finished  int  // already processed: dropped
	NotFound  int  // nowhere: dropped
	Malformed int  // not a crash id: dropped
	GaveUp    int  // waited for too long (incomplete pair, no priority table): dropped
	Kept      int  // left for a later pass
	Waiting   bool // some wait for a live processor
}

// Loop is the priority loop. Its methods other than Run must not be called
// while Run is running.
type Loop struct {
	cfg    Config
	trees  []tree // searched in order
	jobs   jobStore
	logger *slog.Logger
	faults *treefault.Board
	wake   chan struct{} // buffered 1: notifications coalesce

	// Owned by the goroutine running passes.
	kept    loop.Memory[keptRequest] // requests left for later, by id
	nextDue time.Time                // the earliest retry of a kept request
	noLive  loop.Episode             // no live processor: said once per stretch
	loads   dispatch.Loads           // the live processors' loads, reused for a few seconds
}

// tree is a storage tree searched for requested crashes.
type tree struct {
	name  string // "standard" or "deferred", for the logs
	store *crashstore.Store
}

// New returns the Loop resolving the requests of jobs against the standard
// tree and, when not nil, the deferred tree.
func New(cfg Config, standard, deferred *crashstore.Store, jobs jobStore, logger *slog.Logger) *Loop {
	cfg.BatchSize = cmp.Or(cfg.BatchSize, DefaultBatchSize)
	cfg.Settle = cmp.Or(cfg.Settle, DefaultSettle)
	cfg.Recheck = cmp.Or(cfg.Recheck, DefaultRecheck)
	cfg.WaitForProcessor = cmp.Or(cfg.WaitForProcessor, DefaultWaitForProcessor)
	cfg.GiveUp = cmp.Or(cfg.GiveUp, DefaultGiveUp)
	cfg.HealthCheck = cmp.Or(cfg.HealthCheck, DefaultHealthCheck)
	trees := []tree{{"standard", standard}}
	if deferred != nil {
		trees = append(trees, tree{"deferred", deferred})
	}
	faults := cfg.Faults
	if faults == nil {
		faults = treefault.New(cfg.Figures)
	}
	faults.Register(treefault.StorageRoot, standard)
	faults.Register(treefault.DeferredStorageRoot, deferred)
	return &Loop{
		cfg:    cfg,
		trees:  trees,
		jobs:   jobs,
		logger: logger,
		faults: faults,
		wake:   make(chan struct{}, 1),
	}
}

// Run runs passes until ctx is done: at once, then every delay, and as soon
// as a notification says a request arrived. It returns nil when ctx is done,
// after the listener has closed its connection.
func (l *Loop) Run(ctx context.Context) error {
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { l.listen(lctx) })
	defer func() {
		cancel()
		wg.Wait()
	}()
	r := loop.Runner{Name: figures.LoopPriority, Logger: l.logger, DelayFunc: l.delay, Wake: l.wake, Changed: l.cfg.Changed,
		Pass: loop.Pass(l.RunOnce), Observer: l.cfg.Figures, Outage: l.cfg.Outage}
	return r.Run(ctx)
}

// delay is the pause after the last pass: priorityLoopDelay, or less when a
// kept request is due sooner.
func (l *Loop) delay() time.Duration {
	d := l.cfg.DelayFunc()
	if !l.nextDue.IsZero() {
		d = min(d, max(time.Until(l.nextDue), minPause))
	}
	return d
}

// tree returns the tree of store.
func (l *Loop) tree(store *crashstore.Store) tree {
	for _, t := range l.trees {
		if t.store == store {
			return t
		}
	}
	return l.trees[0]
}

// poke wakes the loop for a pass; wake-ups coalesce.
func (l *Loop) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// RunOnce does one pass over every request in priorityjobs.
func (l *Loop) RunOnce(ctx context.Context) (Result, error) {
	var res Result
	start := time.Now()
	// When the kept requests are next due is computed again at the end of
	// the pass; a pass that fails leaves no due time, so the runner's
	// backoff is not cut short.
	l.nextDue = time.Time{}
	p := &pass{l: l, ctx: ctx, checkIn: l.cfg.CheckInFunc(), res: &res}
	after := ""
	for {
		reqs, err := l.jobs.PriorityRequests(ctx, after, l.cfg.BatchSize)
		if err != nil {
			return res, err
		}
		if len(reqs) == 0 {
			break
		}
		after = reqs[len(reqs)-1].ID
		if err := p.resolve(reqs); err != nil {
			return res, err
		}
		if len(reqs) < l.cfg.BatchSize {
			break
		}
	}
	l.settleKept()

	switch {
	case res.Waiting:
		if l.noLive.Begin() {
			l.logger.WarnContext(ctx, "no live processor: priority requests wait until one checks in",
				"retry_every", l.cfg.WaitForProcessor)
			l.cfg.Figures.Event(figures.EventNoLive, "no live processor: priority requests wait")
		}
	case p.handedOut:
		if l.noLive.End() {
			l.logger.InfoContext(ctx, "a processor is live again: priority requests resumed")
			l.cfg.Figures.Event(figures.EventNoLive, "a processor is live again: priority requests resumed")
		}
	}
	done := res.Queued + res.Raised + res.Moved + res.Finished + res.NotFound + res.Malformed + res.GaveUp
	if done > 0 {
		l.logger.InfoContext(ctx, "priority pass", "queued", res.Queued, "raised", res.Raised, "moved", res.Moved,
			"finished", res.Finished, "not_found", res.NotFound, "malformed", res.Malformed, "gave_up", res.GaveUp,
			"kept", res.Kept, "duration", time.Since(start).Round(time.Microsecond))
	} else {
		l.logger.DebugContext(ctx, "priority pass", "kept", res.Kept, "duration", time.Since(start).Round(time.Microsecond))
	}
	return res, nil
}
