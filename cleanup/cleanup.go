// Package cleanup is the monitor's job cleanup loop: the crash pairs of jobs
// a processor finished leave the storage trees, and then their rows leave the
// jobs table.
//
// A pass takes the finished jobs (success is not null) oldest first, by
// completion time then id, in bounded batches. Each job's pair is looked up
// in the standard tree, then in the deferred tree, and is archived into the
// successful or failed archive tree (crashstore's ArchivePair: a rename on
// the same file system, a durable copy across file systems), or deleted when
// that archive setting is empty. Only then are the batch's rows deleted, in
// one statement. The disk work of a batch runs on a few goroutines.
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
// the way, permissions, a full disk) is recorded in monitor_cleanup_failures
// and skipped until its retry time (a minute, doubling to an hour), while the
// rest of the batch goes on. `monitor status` shows the failing ones.
package cleanup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/loop"
	"github.com/crashmonitor/monitor/queue"
)

// Defaults for the Config fields left zero.
const (
	// DefaultBatchSize is how many finished jobs one batch takes: one
	// query to read them, one statement to delete their rows.
	DefaultBatchSize = 1000
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
	// Ready, when not nil, is a channel closed when Run may start its first
	// pass: the monitor closes it after the scanner's first pass, so that
	// the inbox links a killed run left behind are settled (their rows
	// found) before any row is deleted here.
	Ready <-chan struct{}

	BatchSize  int
	Workers    int
	RetryFirst time.Duration
	RetryMax   time.Duration
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
	FinishedJobs(ctx context.Context, limit int, after *queue.FinishedJob) ([]queue.FinishedJob, error)
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
	Rows       int64 // job rows deleted
}

// Cleaner is the cleanup loop.
type Cleaner struct {
	cfg    Config
	trees  Trees
	jobs   jobStore
	logger *slog.Logger
}

// New returns a Cleaner cleaning up the finished jobs of jobs in trees.
func New(cfg Config, trees Trees, jobs jobStore, logger *slog.Logger) *Cleaner {
	cfg.BatchSize = cmp.Or(cfg.BatchSize, DefaultBatchSize)
	cfg.Workers = cmp.Or(cfg.Workers, DefaultWorkers)
	cfg.RetryFirst = cmp.Or(cfg.RetryFirst, DefaultRetryFirst)
	cfg.RetryMax = max(cmp.Or(cfg.RetryMax, DefaultRetryMax), cfg.RetryFirst)
	return &Cleaner{cfg: cfg, trees: trees, jobs: jobs, logger: logger}
}

// Run runs passes until ctx is done: once Ready, then every
// cleanupJobsLoopDelay. It returns nil when ctx is done.
func (c *Cleaner) Run(ctx context.Context) error {
	if c.cfg.Ready != nil {
		select {
		case <-c.cfg.Ready:
		case <-ctx.Done():
			return nil
		}
	}
	r := &loop.Runner{
		Name:      "cleanup",
		Logger:    c.logger,
		DelayFunc: c.cfg.DelayFunc,
		Changed:   c.cfg.Changed,
		Pass: func(ctx context.Context) error {
			_, err := c.RunOnce(ctx)
			return err
		},
	}
	return r.Run(ctx)
}

// RunOnce does one pass: batch after batch of finished jobs until none is
// left (but those waiting for a retry), or until a whole batch failed (a
// problem no job will get past now, such as a full archive disk).
//
// The database work overlaps the disk work: while the workers archive a
// batch, the next batch is read (the jobs after the current one's last, in
// the cleanup order) and the rows of the batch before are deleted.
func (c *Cleaner) RunOnce(ctx context.Context) (Result, error) {
	var res Result
	start := time.Now()
	jobs, err := c.jobs.FinishedJobs(ctx, c.cfg.BatchSize, nil)
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
		// is stopping) for another reason, so this one is logged.
		if err := waitFinished(); err != nil && ctx.Err() == nil {
			c.logger.ErrorContext(ctx, "recording the outcome of a cleanup batch failed; its jobs are redone next pass", "error", err)
		}
	}()
	for len(jobs) > 0 {
		var next []queue.FinishedJob
		var nextErr error
		fetched := make(chan struct{})
		if len(jobs) == c.cfg.BatchSize {
			after := jobs[len(jobs)-1]
			go func() {
				defer close(fetched)
				next, nextErr = c.jobs.FinishedJobs(ctx, c.cfg.BatchSize, &after)
			}()
		} else {
			close(fetched)
		}
		results := c.work(ctx, jobs)
		<-fetched
		if err := waitFinished(); err != nil {
			return res, err
		}
		doneIDs, failures := tally(jobs, results, &res)
		finishing = make(chan finished, 1)
		go func() { finishing <- c.finish(ctx, doneIDs, failures) }()

		switch {
		case ctx.Err() != nil:
			if err := waitFinished(); err != nil {
				return res, err
			}
			return res, ctx.Err()
		case nextErr != nil:
			return res, nextErr
		case len(doneIDs) == 0 && len(failures) > 0:
			c.logger.WarnContext(ctx, "every job of a batch failed its cleanup: the rest waits for the next pass",
				"failed", len(failures))
			next = nil
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
		"incomplete", res.Incomplete, "failed", res.Failed, "deferred", res.Deferred, "rows_removed", res.Rows,
		"duration", took.Round(time.Millisecond)}
	if res.Archived+res.Deleted+res.Missing+res.Failed+res.Deferred == 0 {
		c.logger.DebugContext(ctx, "cleanup pass", attrs...)
		return
	}
	c.logger.InfoContext(ctx, "cleaned up finished jobs", attrs...)
}

// outcome is what became of one job of a batch.
type outcome uint8

const (
	outcomeSkipped  outcome = iota // not tried: the loop is stopping
	outcomeArchived                // archived (maybe incomplete): row goes
	outcomeDeleted                 // deleted: row goes
	outcomeMissing                 // found nowhere: row goes
	outcomeFailed                  // kept, retried later
	outcomeDeferred                // still in the inbox: links removed, row kept for the next pass
)

type jobResult struct {
	outcome    outcome
	incomplete bool
	err        error
}

// work does the disk work of jobs on the workers and returns each job's
// result; jobs not started when ctx is done are left outcomeSkipped.
func (c *Cleaner) work(ctx context.Context, jobs []queue.FinishedJob) []jobResult {
	results := make([]jobResult, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(c.cfg.Workers, len(jobs)) {
		wg.Go(func() {
			for i := range next {
				results[i] = c.clean(ctx, jobs[i])
			}
		})
	}
feed:
	for i := range jobs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return results
}

// tally counts the results of a batch into res and returns the jobs that are
// done (their rows go) and the failures to record.
func tally(jobs []queue.FinishedJob, results []jobResult, res *Result) ([]string, []queue.CleanupFailure) {
	var done []string
	var failures []queue.CleanupFailure
	for i, r := range results {
		switch r.outcome {
		case outcomeArchived:
			res.Archived++
			if r.incomplete {
				res.Incomplete++
			}
		case outcomeDeleted:
			res.Deleted++
		case outcomeMissing:
			res.Missing++
		case outcomeDeferred:
			res.Deferred++
			continue
		case outcomeFailed:
			res.Failed++
			failures = append(failures, queue.CleanupFailure{UUID: jobs[i].UUID, Error: r.err.Error()})
			continue
		default:
			continue
		}
		done = append(done, jobs[i].UUID)
	}
	return done, failures
}

// finished is the outcome of a batch's database work.
type finished struct {
	rows int64
	err  error
}

// finish deletes the rows of the jobs that are done, in one statement, and
// records the failures, in another; it logs each failure with its retry
// time. The disk work is done, so it runs even when the loop is being
// stopped (with a short deadline), so that the work is not redone.
func (c *Cleaner) finish(ctx context.Context, done []string, failures []queue.CleanupFailure) finished {
	dbCtx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		dbCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
		defer cancel()
	}
	if len(done) > 0 {
		if err := c.syncTrees(); err != nil {
			// The rows stay; the next pass finds the pairs done and
			// removes them.
			return finished{err: err}
		}
	}
	n, err := c.jobs.DeleteFinishedJobs(dbCtx, done)
	if err != nil {
		return finished{err: err}
	}
	retries, err := c.jobs.RecordCleanupFailures(dbCtx, failures, c.cfg.RetryFirst, c.cfg.RetryMax)
	if err != nil {
		return finished{rows: n, err: err}
	}
	errs := make(map[string]string, len(failures))
	for _, f := range failures {
		errs[f.UUID] = f.Error
	}
	for _, r := range retries {
		c.logger.WarnContext(ctx, "cleanup of a finished job failed; it will be retried",
			"uuid", r.UUID, "error", errs[r.UUID], "attempts", r.Attempts, "retry_in", r.RetryIn.Round(time.Second))
	}
	return finished{rows: n}
}

// syncTrees makes the batch's renames and removals durable before its rows
// are deleted: a same-filesystem archive is a rename, which the file system
// may still lose in a power failure after the commit, bringing back a pair
// whose row is gone. One syncfs per tree and batch (trees on one file
// system cost little more than one).
func (c *Cleaner) syncTrees() error {
	for _, t := range []*crashstore.Store{c.trees.Standard, c.trees.Deferred, c.trees.Successful, c.trees.Failed} {
		if t == nil {
			continue
		}
		if err := t.Sync(); err != nil {
			return err
		}
	}
	return nil
}

// clean archives or deletes the pair of one finished job. It runs on a
// worker goroutine.
func (c *Cleaner) clean(ctx context.Context, job queue.FinishedJob) jobResult {
	if ctx.Err() != nil {
		return jobResult{}
	}
	archive, kind := c.trees.Successful, "successful"
	if !job.Success {
		archive, kind = c.trees.Failed, "failed"
	}
	src, e, err := c.find(ctx, job.UUID)
	found := err == nil
	switch {
	case errors.Is(err, crashstore.ErrInvalidID):
		c.logger.WarnContext(ctx, "finished job's uuid is not a crash id: no file to clean up; row removed", "uuid", job.UUID)
		return jobResult{outcome: outcomeMissing}
	case errors.Is(err, crashstore.ErrNotFound):
		e = crashstore.Entry{ID: job.UUID}
	case err != nil:
		return c.failed(ctx, err)
	}
	if found && src == c.trees.Standard && inInbox(e) {
		// Queued, but its inbox links outlived the commit (the monitor was
		// killed in between, and the scanner has not come round yet). Only
		// the standard tree's inbox is walked by the scanner.
		// Deleting the row now could let a scanner pass that read the link
		// before this insert the crash again, its files gone. So take it
		// out of the inbox and leave the row to the next pass.
		if err := src.RemoveLinks(e); err != nil {
			return c.failed(ctx, fmt.Errorf("remove the inbox links of %s: %w", job.UUID, err))
		}
		return jobResult{outcome: outcomeDeferred}
	}

	if archive == nil {
		if !found {
			c.logger.WarnContext(ctx, "crash of a finished job not found for cleanup (deleted by an interrupted pass, or lost); row removed",
				"uuid", job.UUID)
			return jobResult{outcome: outcomeMissing}
		}
		if err := src.RemovePair(e); err != nil {
			return c.failed(ctx, fmt.Errorf("delete %s: %w", job.UUID, err))
		}
		return jobResult{outcome: outcomeDeleted}
	}

	r, err := src.ArchivePair(ctx, e, archive)
	if err != nil {
		return c.failed(ctx, err)
	}
	switch {
	case !r.Found():
		c.logger.WarnContext(ctx, "crash of a finished job not found for cleanup, nor in the archive; row removed",
			"uuid", job.UUID, "archive", kind)
		return jobResult{outcome: outcomeMissing}
	case !r.Complete():
		c.logger.WarnContext(ctx, "crash pair incomplete: archived what exists; row removed",
			"uuid", job.UUID, "archive", kind, "json", r.JSON.String(), "dump", r.Dump.String(), "dir", r.Target.NameDir)
		return jobResult{outcome: outcomeArchived, incomplete: true}
	}
	// No line per archived crash: at thousands a second it would rotate the
	// log file's history away; the pass logs the counts.
	return jobResult{outcome: outcomeArchived}
}

// inInbox reports whether a crash's date link, which the walks of the
// scanner read, still exists.
func inInbox(e crashstore.Entry) bool {
	if e.DateLink == "" {
		return false
	}
	_, err := os.Lstat(e.DateLink)
	return err == nil
}

// failed is the result of a job whose disk work failed; a failure caused by
// the loop stopping is no failure of the job.
func (c *Cleaner) failed(ctx context.Context, err error) jobResult {
	if ctx.Err() != nil {
		return jobResult{}
	}
	return jobResult{outcome: outcomeFailed, err: err}
}

// find looks a crash up in the standard tree, then in the deferred tree. It
// returns the tree holding it, or crashstore.ErrNotFound (with the standard
// tree) when neither does.
func (c *Cleaner) find(ctx context.Context, id string) (*crashstore.Store, crashstore.Entry, error) {
	e, err := c.trees.Standard.Lookup(ctx, id)
	if !errors.Is(err, crashstore.ErrNotFound) || c.trees.Deferred == nil {
		return c.trees.Standard, e, err
	}
	if e, err := c.trees.Deferred.Lookup(ctx, id); !errors.Is(err, crashstore.ErrNotFound) {
		return c.trees.Deferred, e, err
	}
	return c.trees.Standard, crashstore.Entry{}, err
}
