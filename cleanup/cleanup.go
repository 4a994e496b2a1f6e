// Package cleanup is the monitor's job cleanup loop: the crash pairs of jobs
// a processor finished leave the storage trees, and then their rows leave the
// jobs table.
//
// A pass takes the finished jobs (success is not null) oldest first, by
// completion time then id, in bounded batches. Each job's pair is looked up
// in the standard tree, then in the deferred tree, and is archived into the
// successful or failed archive tree (crashstore's ArchivePair: a rename on
// the same file system, a durable copy across file systems), or deleted when
// that archive setting is empty. Only then, once each file system the trees
// are on has been synced (syncfs, once per file system and batch), are the
// batch's rows deleted, in one statement, while the next batch's disk work
// goes on. The disk work of a batch runs on a few goroutines; batches grow
// while a backlog lasts (durable.go).
//
// Crash safety: the disk work comes first and every step of it is
// idempotent, so a kill at any instant leaves either a row whose pair is
// where it was, half moved or already archived (the next pass finishes it and
// removes the row), or no row and a pair archived or deleted. A pair is
// never lost and never archived twice.
//
// Nothing stalls the loop: a pair with a file missing is archived as far as
// it exists and its row removed, with a warning; a crash found nowhere is
// warned about and its row removed; a job whose disk work fails (a file in
// the way, a directory with the wrong permissions) is recorded in
// monitor_cleanup_failures and skipped until its retry time (a minute,
// doubling to an hour), while the rest of the batch goes on. `monitor
// status` shows the failing ones. A fault of a whole tree (a full or
// read-only file system, its root refusing the monitor, I/O errors, a
// vanished file system) is no failure of the jobs: those that need the tree
// wait, as a whole, and are tried again within seconds of its end (see
// fault.go); the others go on. A crash is never taken for gone while a tree
// it could be in vanished.
package cleanup

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/loop"
	"github.com/crashmonitor/monitor/internal/treefault"
	"github.com/crashmonitor/monitor/queue"
)

// Defaults for the Config fields left zero.
const (
	// DefaultBatchSize is how many finished jobs the first batch of a pass
	// takes (one query to read them, one statement to delete their rows):
	// small, so that the first rows go soon.
	DefaultBatchSize = 250
	// DefaultMaxBatchSize caps the batches: each full batch doubles the
	// next while a backlog lasts, so that a batch's fixed costs (a syncfs
	// per file system, the round trips) are spread over more pairs.
	DefaultMaxBatchSize = 8000
	// DefaultWorkers is how many goroutines do a batch's disk work. The
	// work is system calls (renames, unlinks), mostly waiting on the file
	// system, so a few more than the cores help.
	DefaultWorkers = 4
	// DefaultRetryFirst is how long a job whose cleanup failed waits before
	// its first retry; each further failure doubles it.
	DefaultRetryFirst = time.Minute
	// DefaultRetryMax caps the wait between retries.
	DefaultRetryMax = time.Hour
	// finishTimeout bounds the statements that record a batch's outcome
	// after the loop was told to stop, so that work done is not redone.
	finishTimeout = 5 * time.Second
)

// Config is what a Cleaner reads from the configuration. DelayFunc is read
// before every wait, so a reloaded cleanupJobsLoopDelay applies at once.
type Config struct {
	DelayFunc func() time.Duration // cleanupJobsLoopDelay
	// Changed, when not nil, returns a channel closed on a reload.
	Changed func() <-chan struct{}
	// Faults is the board of the trees' faults the loops share; nil makes
	// one of the Cleaner's own.
	Faults *treefault.Board
	// Ready, when not nil, is a channel closed once the scanner's first
	// pass is done. The loop does not wait for it: until it is closed only
	// the rows of the jobs whose inbox links this loop took away (links a
	// killed run left behind, which that pass may have read) are kept, so
	// that the pass cannot queue such a crash again after its row is gone.
	// Nil means there is no such pass to wait for.
	Ready <-chan struct{}

	// Figures, when not nil, receives what the loop does.
	Figures *figures.Figures
	// Outage, when not nil, is told how passes went: it logs a database
	// outage once for every loop, and the loop retries within seconds.
	Outage loop.Outage

	// BatchSize is the first batch's size, MaxBatchSize the cap the
	// batches double up to while they come full.
	BatchSize    int
	MaxBatchSize int
	Workers      int
	RetryFirst   time.Duration
	RetryMax     time.Duration
}

// Trees are the storage trees a Cleaner works on. The archive trees must
// have the standard tree's layout and suffixes, and the archive's file and
// directory modes and group (config's dumpPermissions, dirPermissions and
// dumpGID).
type Trees struct {
	// Standard is storageRoot, where processors read the pairs.
	Standard *crashstore.Store
	// Deferred is deferredStorageRoot; nil when there is none.
	Deferred *crashstore.Store
	// Successful is saveSuccessfulMinidumpsTo; nil means delete the pairs
	// of successful jobs.
	Successful *crashstore.Store
	// Failed is saveFailedMinidumpsTo; nil means delete the pairs of failed
	// jobs.
	Failed *crashstore.Store
}

// jobStore is the slice of *queue.Store the cleanup uses.
type jobStore interface {
	FinishedJobsOf(ctx context.Context, verdicts queue.Verdicts, limit int, after *queue.FinishedJob) ([]queue.FinishedJob, error)
	DeleteFinishedJobs(ctx context.Context, uuids []string) (int64, error)
	RecordCleanupFailures(ctx context.Context, failures []queue.CleanupFailure, first, max time.Duration) ([]queue.CleanupRetry, error)
	PurgeCleanupFailures(ctx context.Context) (int64, error)
}

// Result tells what one pass did. Every job counted in Archived, Deleted or
// Missing had its row removed.
type Result struct {
	Archived   int   // pairs archived (Incomplete ones included)
	Deleted    int   // pairs deleted, their archive setting being empty
	Missing    int   // crashes found in no tree (nor already in the archive)
	Incomplete int   // pairs archived with a file missing
	Failed     int   // jobs whose cleanup failed: kept, retried later
	Deferred   int   // pairs still in the inbox: taken out of it, cleaned up next pass
	Held       int   // jobs not tried: a tree they need is at fault
	Waited     bool  // nothing was tried: the standard tree, or every archive, is at fault
	Rows       int64 // job rows deleted
}

// Cleaner is the cleanup loop.
type Cleaner struct {
	cfg    Config
	trees  Trees
	jobs   jobStore
	logger *slog.Logger
	faults *treefault.Board
	// sync makes a tree's file system durable: crashstore's Sync, which
	// tests replace to count the calls.
	sync func(*crashstore.Store) error
	// unsettled holds the jobs whose inbox links this loop removed while
	// cfg.Ready was still open; their rows wait for it.
	unsettled unsettled
}

// New returns a Cleaner cleaning up the finished jobs of jobs in trees.
func New(cfg Config, trees Trees, jobs jobStore, logger *slog.Logger) *Cleaner {
	cfg.BatchSize = cmp.Or(cfg.BatchSize, DefaultBatchSize)
	cfg.MaxBatchSize = max(cmp.Or(cfg.MaxBatchSize, DefaultMaxBatchSize), cfg.BatchSize)
	cfg.Workers = cmp.Or(cfg.Workers, DefaultWorkers)
	cfg.RetryFirst = cmp.Or(cfg.RetryFirst, DefaultRetryFirst)
	cfg.RetryMax = max(cmp.Or(cfg.RetryMax, DefaultRetryMax), cfg.RetryFirst)
	faults := cfg.Faults
	if faults == nil {
		faults = treefault.New(cfg.Figures)
	}
	c := &Cleaner{cfg: cfg, trees: trees, jobs: jobs, logger: logger, faults: faults,
		sync: (*crashstore.Store).Sync, unsettled: unsettled{ready: cfg.Ready}}
	c.register()
	return c
}

// Run runs passes until ctx is done: at once, then every
// cleanupJobsLoopDelay, and sooner while a tree at fault is due for its next
// try. It returns nil when ctx is done.
func (c *Cleaner) Run(ctx context.Context) error {
	r := loop.Runner{Name: figures.LoopCleanup, Logger: c.logger, DelayFunc: c.delay, Changed: c.cfg.Changed,
		Pass: loop.Pass(c.RunOnce), Observer: c.cfg.Figures}
	r.Outage = c.cfg.Outage
	return r.Run(ctx)
}

// RunOnce does one pass: batch after batch of finished jobs until none is
// left (but those waiting for a retry), or until a whole batch failed (a
// problem no job will get past now). Only the jobs whose trees are not at
// fault are read (see fault.go); the pass stops when the standard tree
// turns out to be.
//
// The database work overlaps the disk work: while the workers archive a
// batch, the next batch is read (the jobs after the current one's last, in
// the cleanup order) and the batch before is finished: its file systems
// synced, then its rows deleted. A batch that came full doubles the next,
// up to MaxBatchSize.
func (c *Cleaner) RunOnce(ctx context.Context) (Result, error) {
	var res Result
	start := time.Now()
	progress := loop.NewProgress(c.logger, "cleaning up a backlog")
	verdicts, ok := c.verdicts(ctx)
	if !ok {
		res.Waited = true
		c.logPass(ctx, res, time.Since(start))
		return res, nil
	}
	size := c.cfg.BatchSize
	jobs, err := c.jobs.FinishedJobsOf(ctx, verdicts, size, nil)
	if err != nil {
		return res, err
	}
	var finishing chan finished // the database work of the batch before
	waitFinished := func() error {
		if finishing == nil {
			return nil
		}
		f := <-finishing
		finishing = nil
		res.Rows += f.rows
		return f.err
	}
	defer func() {
		// Never leave it running. Its error is the pass's when the pass
		// returns through waitFinished; here the pass already failed (or
		// is stopping) for another reason, so this one is logged, unless
		// it is the database out of reach, which the Outage logs once.
		if err := waitFinished(); err != nil && ctx.Err() == nil && (c.cfg.Outage == nil || !c.cfg.Outage.Failed(err)) {
			c.logger.ErrorContext(ctx, "recording the outcome of a cleanup batch failed; its jobs are redone next pass", "error", err)
		}
	}()
	for len(jobs) > 0 {
		var next []queue.FinishedJob
		var nextErr error
		fetched := make(chan struct{})
		if len(jobs) == size {
			after := jobs[len(jobs)-1]
			size = min(2*size, c.cfg.MaxBatchSize)
			limit := size
			go func() {
				defer close(fetched)
				next, nextErr = c.jobs.FinishedJobsOf(ctx, verdicts, limit, &after)
			}()
		} else {
			close(fetched)
		}
		results := c.work(ctx, jobs)
		<-fetched
		if err := waitFinished(); err != nil {
			return res, err
		}
		b := tally(jobs, results)
		res.add(b.counts)
		finishing = make(chan finished, 1)
		go func() { finishing <- c.finish(ctx, b) }()
		done := res.Archived + res.Deleted + res.Missing
		c.cfg.Figures.Progress(figures.LoopCleanup, done)
		progress.Update(ctx, done)

		switch {
		case ctx.Err() != nil:
			if err := waitFinished(); err != nil {
				return res, err
			}
			return res, ctx.Err()
		case nextErr != nil:
			return res, nextErr
		case len(b.done) == 0 && len(b.failures) > 0:
			c.logger.WarnContext(ctx, "every job of a batch failed its cleanup: the rest waits for the next pass",
				"failed", len(b.failures))
			next = nil
		case b.counts.Held > 0:
			// A tree turned out to be at fault: read no more of the
			// jobs that need it.
			var ok bool
			if verdicts, ok = c.verdicts(ctx); !ok {
				next = nil
			}
		}
		jobs = next
	}
	if err := waitFinished(); err != nil {
		return res, err
	}
	if _, err := c.jobs.PurgeCleanupFailures(ctx); err != nil {
		return res, err
	}
	c.logPass(ctx, res, time.Since(start))
	return res, nil
}

func (c *Cleaner) logPass(ctx context.Context, res Result, took time.Duration) {
	attrs := []any{"archived", res.Archived, "deleted", res.Deleted, "missing", res.Missing,
		"incomplete", res.Incomplete, "failed", res.Failed, "deferred", res.Deferred, "held", res.Held,
		"rows_removed", res.Rows, "duration", took.Round(time.Millisecond)}
	// Held jobs alone make no line: their tree's fault was logged once, and
	// a pass comes every few seconds while it lasts.
	if res.Archived+res.Deleted+res.Missing+res.Failed+res.Deferred == 0 {
		c.logger.DebugContext(ctx, "cleanup pass", attrs...)
		return
	}
	c.logger.InfoContext(ctx, "cleaned up finished jobs", attrs...)
}
