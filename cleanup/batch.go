package cleanup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/queue"
)

// outcome is what became of one job of a batch.
type outcome uint8

const (
	outcomeSkipped  outcome = iota // not tried: the loop is stopping
	outcomeArchived                // archived (maybe incomplete): row goes
	outcomeDeleted                 // deleted: row goes
	outcomeMissing                 // found nowhere: row goes
	outcomeFailed                  // kept, retried later
	outcomeDeferred                // still in the inbox: links removed, row kept for the next pass
	outcomeHeld                    // a tree it needs is at fault: kept, nothing recorded
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

// batchOutcome is what a batch's disk work came to: the jobs that are done
// (their rows go), the failures to record, and the counts by outcome.
type batchOutcome struct {
	done     []queue.FinishedJob
	failures []queue.CleanupFailure
	counts   Result // Archived, Incomplete, Deleted, Missing, Deferred, Failed
}

// doneIDs returns the ids of the jobs that are done.
func (b batchOutcome) doneIDs() []string {
	ids := make([]string, len(b.done))
	for i, j := range b.done {
		ids[i] = j.UUID
	}
	return ids
}

// tally sorts out the results of a batch.
func tally(jobs []queue.FinishedJob, results []jobResult) batchOutcome {
	var b batchOutcome
	for i, r := range results {
		switch r.outcome {
		case outcomeArchived:
			b.counts.Archived++
			if r.incomplete {
				b.counts.Incomplete++
			}
		case outcomeDeleted:
			b.counts.Deleted++
		case outcomeMissing:
			b.counts.Missing++
		case outcomeDeferred:
			b.counts.Deferred++
			continue
		case outcomeHeld:
			b.counts.Held++
			continue
		case outcomeFailed:
			b.counts.Failed++
			b.failures = append(b.failures, queue.CleanupFailure{UUID: jobs[i].UUID, Error: r.err.Error()})
			continue
		default:
			continue
		}
		b.done = append(b.done, jobs[i])
	}
	return b
}

// add counts a batch's outcome into r.
func (r *Result) add(c Result) {
	r.Archived += c.Archived
	r.Incomplete += c.Incomplete
	r.Deleted += c.Deleted
	r.Missing += c.Missing
	r.Deferred += c.Deferred
	r.Failed += c.Failed
	r.Held += c.Held
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
func (c *Cleaner) finish(ctx context.Context, b batchOutcome) finished {
	done, failures := b.doneIDs(), b.failures
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
			if c.fault(ctx, err) {
				return finished{}
			}
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
	c.count(b)
	return finished{rows: n}
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
	if c.waits(archive) || c.waits(c.trees.Standard) {
		return jobResult{outcome: outcomeHeld}
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
	if c.unsettled.held(job.UUID) {
		// Its links went in an earlier pass of this run, which the
		// scanner's first pass may have read: its row waits for that pass.
		return jobResult{outcome: outcomeDeferred}
	}
	if found && src == c.trees.Standard && src.InInbox(e) {
		// Queued, but its inbox links outlived the commit (the monitor was
		// killed in between, and the scanner has not come round yet). Only
		// the standard tree's inbox is walked by the scanner.
		// Deleting the row now could let a scanner pass that read the link
		// before this insert the crash again, its files gone. So take it
		// out of the inbox and leave the row to the next pass.
		c.unsettled.add(job.UUID)
		if err := src.RemoveLinks(e); err != nil {
			return c.failed(ctx, fmt.Errorf("remove the inbox links of %s: %w", job.UUID, err))
		}
		c.worked(ctx, src, nil, false)
		return jobResult{outcome: outcomeDeferred}
	}

	if archive == nil {
		if !found {
			if err := c.trees.Standard.ExpectTree(); err != nil {
				return c.failed(ctx, err)
			}
			c.logger.WarnContext(ctx, "crash of a finished job not found for cleanup (deleted by an interrupted pass, or lost); row removed",
				"uuid", job.UUID)
			return jobResult{outcome: outcomeMissing}
		}
		if err := src.RemovePair(e); err != nil {
			return c.failed(ctx, fmt.Errorf("delete %s: %w", job.UUID, err))
		}
		c.worked(ctx, src, nil, false)
		return jobResult{outcome: outcomeDeleted}
	}

	r, err := src.ArchivePair(ctx, e, archive)
	if err != nil {
		return c.failed(ctx, err)
	}
	if r.Found() {
		c.worked(ctx, src, archive, wrote(r))
	} else {
		// Gone, by what the trees show: make sure they show everything.
		if err := c.trees.Standard.ExpectTree(); err != nil {
			return c.failed(ctx, err)
		}
		if _, err := archive.CheckRoot(); err != nil {
			return c.failed(ctx, err)
		}
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

// failed is the result of a job whose disk work failed; a failure caused by
// the loop stopping is no failure of the job, nor is a fault of a whole tree
// (recorded on the board, the job held).
func (c *Cleaner) failed(ctx context.Context, err error) jobResult {
	switch {
	case ctx.Err() != nil:
		return jobResult{}
	case errors.Is(err, errHeld), c.fault(ctx, err):
		return jobResult{outcome: outcomeHeld}
	}
	return jobResult{outcome: outcomeFailed, err: err}
}

// searched returns the trees a finished job's pair is looked for in, in
// order: the standard tree, then the deferred tree.
func (t Trees) searched() []*crashstore.Store {
	if t.Deferred == nil {
		return []*crashstore.Store{t.Standard}
	}
	return []*crashstore.Store{t.Standard, t.Deferred}
}

// find looks a crash up in the standard tree, then in the deferred tree
// (crashstore.Find). It returns the tree holding it, or
// crashstore.ErrNotFound (with the standard tree) when neither does;
// errHeld when a tree to look in waits for its fault to clear.
func (c *Cleaner) find(ctx context.Context, id string) (*crashstore.Store, crashstore.Entry, error) {
	held := func(s *crashstore.Store) error {
		if c.waits(s) {
			return errHeld
		}
		return nil
	}
	return crashstore.Find(ctx, id, held, c.trees.searched()...)
}

// count tells the figures what a batch whose outcome is recorded did.
func (c *Cleaner) count(b batchOutcome) {
	fig := c.cfg.Figures
	if fig == nil {
		return
	}
	fig.Cleaned(figures.CleanedArchived, b.counts.Archived)
	fig.Cleaned(figures.CleanedDeleted, b.counts.Deleted)
	fig.Cleaned(figures.CleanedMissing, b.counts.Missing)
	fig.Cleaned(figures.CleanedFailed, b.counts.Failed)
	for _, j := range b.done {
		if j.Turnaround > 0 {
			fig.Turnaround(j.Success, j.Turnaround)
		}
	}
}
