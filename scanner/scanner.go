// Package scanner queues every complete crash pair in the standard tree's
// inbox as exactly one job, owned by the least-loaded live processor, and
// moves the work of dead processors to live ones.
//
// A pass reaps dead processors, then walks the inbox in submission order and
// queues complete pairs in batches: one transaction per batch, and only after
// its commit are the batch's inbox links removed. A crash or kill at any
// instant therefore leaves every pair either queued or still in the inbox
// (where the next pass finds it, and ON CONFLICT makes a second insert a
// no-op), never neither and never twice. A pair met while it settles (its
// files written moments ago) is waited for, at most Settle, so that it keeps
// its place in submission order; the first batch of a pass is small, so the
// first commit comes at once, and the emptied date directories the walk saw
// are pruned after the queuing.
//
// Passes run every standardLoopDelay (and at least every
// processorCheckInTime, so the dead-processor sweep keeps its pace), and at
// once when inotify shows a new pair complete in the current slots (watch.go).
// The periodic walk is the source of truth; the watch only cuts latency.
//
// Storage faults (fault.go): an inbox directory that cannot be read is
// skipped, logged once and retried within seconds; a standard tree whose
// file system vanished or fails ends the pass with nothing concluded from
// it, logged once on the board the loops share, and retried on its backoff.
package scanner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// DefaultSettle is how long both files of a pair must have been left
	// unmodified before the pair counts as complete. Collectors write a
	// pair in one go (links, dump, json), so a quarter second of quiet
	// means the writer is done; it also bounds the arrival latency.
	DefaultSettle = 250 * time.Millisecond
	// DefaultBatchSize is how many pairs one transaction queues.
	DefaultBatchSize = 2000
	// DefaultRecheck is the pause before another pass while a pair is
	// being written or no processor is live.
	DefaultRecheck = 100 * time.Millisecond
	// DefaultWaitForProcessor is the pause between passes while work is
	// waiting for a live processor: the work goes out within this long of
	// one coming alive.
	DefaultWaitForProcessor = 2 * time.Second
	// DefaultWriteWindow is how long a pair may stay incomplete and still
	// be rechecked quickly; past it, it is rechecked on the normal delay
	// and reported once.
	DefaultWriteWindow = time.Minute
)

// Config is what a Scanner reads from the configuration. The Func fields are
// read before every wait, so a reloaded configuration applies at once.
type Config struct {
	DelayFunc   func() time.Duration // standardLoopDelay
	CheckInFunc func() time.Duration // processorCheckInTime
	// Changed, when not nil, returns a channel closed on a reload.
	Changed func() <-chan struct{}
	// Faults is the board of the trees' faults the loops share; nil makes
	// one of the Scanner's own.
	Faults *treefault.Board

	// Figures, when not nil, receives what the scanner does.
	Figures *figures.Figures
	// Outage, when not nil, is told how passes went: it logs a database
	// outage once for every loop, and the loop retries within seconds.
	Outage loop.Outage

	// NoEvents leaves new pairs to the periodic walk: no inotify watch of
	// the inbox (inboxEvents: false).
	NoEvents bool

	Settle           time.Duration
	BatchSize        int
	Recheck          time.Duration
	WaitForProcessor time.Duration
	WriteWindow      time.Duration
}

// jobStore is the slice of *queue.Store the scanner uses.
type jobStore interface {
	Enqueue(ctx context.Context, ids []string, priority int, checkIn time.Duration, loads *dispatch.Loads) (queue.EnqueueResult, error)
	ReapDeadProcessors(ctx context.Context, checkIn time.Duration) (queue.ReapResult, error)
}

// Result tells what one pass did.
type Result struct {
	Queued     int  // new jobs
	Existing   int  // pairs that already had a job (a restart after a crash): links removed
	Incomplete int  // pairs still being written, left in the inbox
	Waiting    bool // no live processor: the pass stopped and queued nothing more
	Reaped     queue.ReapResult
	Pruned     int // emptied date directories removed
}

// Scanner is the standard loop. Its methods other than Run must not be
// called while Run is running.
type Scanner struct {
	cfg     Config
	crashes *crashstore.Store
	jobs    jobStore
	logger  *slog.Logger
	faults  *treefault.Board
	wake    chan struct{} // buffered 1: watch events coalesce
	watch   *watcher      // nil when the inbox is not watched
	// prunes feeds the pruner, which Run starts: emptied past date
	// directories to remove, beside the passes (nil without Run).
	prunes chan []string

	// Owned by the goroutine running passes.
	next         time.Duration           // the pause after the last pass, when shorter than the delay
	incomplete   loop.Memory[incomplete] // pairs seen incomplete, by id
	noLive       loop.Episode            // no live processor: said once per stretch
	lastReap     time.Time               // when the last dead-processor sweep started
	waitingCount *inboxCount             // the inbox counted while waiting for a live processor
	firstPass    chan struct{}           // closed when a pass first completes
	// Inbox directories that could not be read, by path, and how many
	// passes in a row met some.
	unreadable      loop.Memory[unreadableDir]
	unreadableTries int
}

// incomplete is what the scanner remembers of a pair seen incomplete.
type incomplete struct {
	since  time.Time // first seen incomplete
	warned bool      // reported as stuck
	waited bool      // a pass waited out its settle time in vain: not waited for again
}

// New returns a Scanner queuing the pairs of crashes into jobs.
func New(cfg Config, crashes *crashstore.Store, jobs jobStore, logger *slog.Logger) *Scanner {
	cfg.Settle = cmp.Or(cfg.Settle, DefaultSettle)
	cfg.Recheck = cmp.Or(cfg.Recheck, DefaultRecheck)
	cfg.WaitForProcessor = cmp.Or(cfg.WaitForProcessor, DefaultWaitForProcessor)
	cfg.WriteWindow = cmp.Or(cfg.WriteWindow, DefaultWriteWindow)
	cfg.BatchSize = cmp.Or(cfg.BatchSize, DefaultBatchSize)
	faults := cfg.Faults
	if faults == nil {
		faults = treefault.New(cfg.Figures)
	}
	faults.Register(treefault.StorageRoot, crashes)
	return &Scanner{
		cfg:       cfg,
		crashes:   crashes,
		jobs:      jobs,
		logger:    logger,
		faults:    faults,
		wake:      make(chan struct{}, 1),
		firstPass: make(chan struct{}),
	}
}

// FirstPassDone returns a channel closed when a pass has first completed
// without error: every pair then in the inbox was queued or found queued, and
// the inbox links a killed run left behind are gone.
func (s *Scanner) FirstPassDone() <-chan struct{} { return s.firstPass }

// Run runs passes until ctx is done: at once, then every delay, and as soon
// as the inbox watch sees something new. It returns nil when ctx is done.
func (s *Scanner) Run(ctx context.Context) error {
	if s.cfg.NoEvents {
		s.logger.InfoContext(ctx, "inbox events off (inboxEvents: false): new crashes wait for the periodic scan",
			"standardLoopDelay", s.delay())
	} else if w, err := newWatcher(s.crashes, s.logger, s.wake, s.cfg.WriteWindow); err != nil {
		s.logger.WarnContext(ctx, "inbox watch unavailable; new crashes wait for the next periodic scan", "error", err)
	} else {
		// The watches are set up beside the first pass, not before it.
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); w.run(wctx) }()
		s.watch = w
		defer func() { cancel(); <-done; s.watch = nil }()
	}
	// Emptied directories are removed beside the passes: an rmdir costs
	// as much as queuing a pair, and nothing waits for it.
	s.prunes = make(chan []string, pruneBacklog)
	pctx, stopPruning := context.WithCancel(ctx)
	pruned := make(chan struct{})
	go func() { defer close(pruned); s.pruneLoop(pctx) }()
	defer func() { stopPruning(); <-pruned; s.prunes = nil }()
	r := loop.Runner{Name: figures.LoopScanner, Logger: s.logger, DelayFunc: s.delay, Wake: s.wake, Changed: s.cfg.Changed,
		Pass: loop.Pass(s.RunOnce), Observer: s.cfg.Figures, Outage: s.cfg.Outage}
	return r.Run(ctx)
}

// pruneBacklog bounds the lists of directories waiting for the pruner (a
// list holds at most pruneChunk, usually a batch's worth): what does not fit
// is left for a later pass.
const pruneBacklog = 64

// pruneLoop removes the emptied directories the passes send until ctx is
// done. A tree fault ends a list early: the passes meet and report it.
func (s *Scanner) pruneLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case dirs := <-s.prunes:
			_, _ = s.crashes.PruneDirs(ctx, dirs)
		}
	}
}

// delay is the pause after the last pass: short while pairs are being
// written or work waits for a processor, else the smaller of
// standardLoopDelay and processorCheckInTime.
func (s *Scanner) delay() time.Duration {
	checkIn := s.cfg.CheckInFunc()
	d := min(s.cfg.DelayFunc(), checkIn)
	if s.next > 0 {
		d = min(d, s.next)
	}
	if !s.lastReap.IsZero() {
		// The sweep runs at the start of a pass: the next one is due
		// processorCheckInTime after the last, however long this pass took.
		d = min(d, max(checkIn-time.Since(s.lastReap), s.cfg.Recheck))
	}
	return d
}

// RunOnce does one pass: reap dead processors, queue every complete pair in
// the inbox in submission order, prune emptied date directories. A fault of
// the standard tree ends it after the reaping, without error (see fault.go).
func (s *Scanner) RunOnce(ctx context.Context) (Result, error) {
	var res Result
	checkIn := s.cfg.CheckInFunc()
	start := time.Now()
	// The short pause a pass asks for is set again at its end; a pass that
	// fails leaves none, so the runner's backoff is not cut short.
	s.next = 0

	s.lastReap = time.Now()
	reaped, err := s.jobs.ReapDeadProcessors(ctx, checkIn)
	if err != nil {
		return res, err
	}
	res.Reaped = reaped
	s.logReap(ctx, reaped)

	if until, waiting := s.faults.Waiting(s.crashes.Root(), false); waiting {
		// The standard tree is at fault and not due for a try.
		s.soon(max(time.Until(until), s.cfg.Recheck))
		return res, nil
	}
	p := pass{s: s, checkIn: checkIn, res: &res}
	err = p.run(ctx)
	complete := err == nil
	if errors.Is(err, errWaiting) {
		err = nil
	}
	if s.treeFault(ctx, err) {
		return res, nil // nothing is concluded from the walk of a tree at fault
	}
	// Forget the pairs no longer incomplete in the inbox, so the memory
	// stays as small as the set of pairs being written.
	s.incomplete.EndPass()
	if err != nil {
		return res, err
	}
	// The tree may have vanished during the walk.
	held, err := s.crashes.CheckRoot()
	if s.treeFault(ctx, err) {
		return res, nil
	}
	s.settleFaults(ctx, &p.faults, held)
	s.settleUnreadable(ctx, p.faults.unreadable, complete)

	// Pruning follows each batch's link removal, from what the walk saw:
	// the tree is not listed a second time, and no list of it is kept.
	res.Pruned = p.pruned
	if err := p.pruneErr; err != nil && !s.treeFault(ctx, err) {
		return res, fmt.Errorf("prune date directories: %w", err)
	}

	switch {
	case res.Waiting, reaped.NoLiveProcessor:
		// Work waits for a live processor: hand it out within seconds of
		// one checking in.
		s.soon(s.cfg.WaitForProcessor)
	case p.writing > 0:
		s.soon(s.cfg.Recheck)
	}
	s.reportInbox(ctx, res)
	select {
	case <-s.firstPass:
	default:
		close(s.firstPass)
	}
	if res.Queued+res.Existing > 0 {
		s.logger.InfoContext(ctx, "queued crashes", "queued", res.Queued, "already_queued", res.Existing,
			"incomplete", res.Incomplete, "duration", time.Since(start).Round(time.Millisecond))
	} else {
		s.logger.DebugContext(ctx, "scan pass", "incomplete", res.Incomplete, "duration", time.Since(start).Round(time.Millisecond))
	}
	return res, nil
}

// logReap reports a dead-processor sweep that did something.
func (s *Scanner) logReap(ctx context.Context, r queue.ReapResult) {
	switch {
	case r.NoLiveProcessor:
		s.logger.WarnContext(ctx, "dead processors found but none is live: their jobs stay until one checks in")
	case len(r.Dead) > 0:
		s.logger.InfoContext(ctx, "reaped dead processors", "processors", fmt.Sprint(r.Dead),
			"jobs_moved", r.MovedJobs, "priority_requests_returned", r.RequeuedPriority)
		s.cfg.Figures.Reaped(len(r.Dead), r.MovedJobs)
		s.cfg.Figures.Event(figures.EventReaped, fmt.Sprintf("reaped %d dead processor(s) %v: %d job(s) moved, %d priority request(s) returned",
			len(r.Dead), r.Dead, r.MovedJobs, r.RequeuedPriority))
	}
}

// inboxRecount is how often a scanner waiting for a live processor walks
// the whole inbox to count the pairs waiting there.
const inboxRecount = 30 * time.Second

// reportInbox tells the figures what a pass left in the inbox: the pairs it
// found incomplete, and, when it stopped for want of a live processor, the
// complete pairs waiting, counted by a walk that queues nothing (at most
// every inboxRecount; the last count in between).
func (s *Scanner) reportInbox(ctx context.Context, res Result) {
	if s.cfg.Figures == nil {
		return
	}
	if !res.Waiting {
		s.waitingCount = nil
		s.cfg.Figures.SetInbox(0, res.Incomplete)
		return
	}
	if s.waitingCount == nil || time.Since(s.waitingCount.at) >= inboxRecount {
		c := &inboxCount{at: time.Now()}
		err := s.crashes.WalkInbox(ctx, func(e crashstore.Entry) error {
			if ok, _ := s.crashes.Complete(e, s.cfg.Settle); ok {
				c.complete++
			} else {
				c.incomplete++
			}
			return nil
		}, nil) // the pass's walk reports what cannot be read
		if err != nil {
			return // stopping, or the walk will fail the next pass too
		}
		s.waitingCount = c
	}
	s.cfg.Figures.SetInbox(s.waitingCount.complete, s.waitingCount.incomplete)
}

// inboxCount is a count of the inbox's pairs.
type inboxCount struct {
	at                   time.Time
	complete, incomplete int
}
