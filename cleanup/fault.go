package cleanup

import (
	"context"
	"errors"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/treefault"
	"github.com/crashmonitor/monitor/queue"
)

// How the cleanup deals with a fault of a whole tree (crashstore.TreeFault: a
// file system full, read-only, refusing the monitor, failing, or vanished):
// the jobs that need the tree are held, not failed: their rows stay, nothing
// is recorded in monitor_cleanup_failures (whose backoff is for problems of
// one crash), and the tree is tried again as a whole on the Board's backoff.
// The jobs that do not need it go on: a full archive of failed crashes does
// not stop the successful ones. Every job needs the standard tree (the crash
// is looked up there first), so while that tree is at fault nothing is done.

// minPause keeps a loop waiting for a tree's next try from spinning.
const minPause = 100 * time.Millisecond

// errHeld marks a job not tried because a tree it needs waits for its fault
// to clear.
var errHeld = errors.New("a tree this job needs waits for its fault to clear")

// register names the trees on the board, for its log lines.
func (c *Cleaner) register() {
	c.faults.Register(treefault.StorageRoot, c.trees.Standard)
	c.faults.Register(treefault.DeferredStorageRoot, c.trees.Deferred)
	c.faults.Register(treefault.SuccessfulArchive, c.trees.Successful)
	c.faults.Register(treefault.FailedArchive, c.trees.Failed)
}

// roots are the roots of the trees the cleanup works on.
func (c *Cleaner) roots() []string {
	var out []string
	for _, t := range []*crashstore.Store{c.trees.Standard, c.trees.Deferred, c.trees.Successful, c.trees.Failed} {
		if t != nil {
			out = append(out, t.Root())
		}
	}
	return out
}

// delay is the pause after a pass: cleanupJobsLoopDelay, or less when a tree
// at fault is due for its next try.
func (c *Cleaner) delay() time.Duration {
	d := c.cfg.DelayFunc()
	if next := c.faults.NextTry(c.roots()...); !next.IsZero() {
		d = min(d, max(time.Until(next), minPause))
	}
	return d
}

// waits reports whether work on tree t waits for its fault to clear (a nil
// tree, deleting instead of archiving, never waits).
func (c *Cleaner) waits(t *crashstore.Store) bool {
	if t == nil {
		return false
	}
	_, waiting := c.faults.Waiting(t.Root(), true)
	return waiting
}

// ready reports whether work on tree t may be tried now: it does not wait for
// a fault to clear, and its root is where it was (CheckRoot: a tree found
// again ends a vanished fault, a root gone begins one; a root holding no
// tree ends nothing, since a crash looked for there then proves nothing). A
// nil tree is ready.
func (c *Cleaner) ready(ctx context.Context, t *crashstore.Store) bool {
	if t == nil {
		return true
	}
	if c.waits(t) {
		return false
	}
	held, err := t.CheckRoot()
	if err != nil {
		c.fault(ctx, err)
		return false
	}
	if held {
		c.faults.Succeed(ctx, c.logger, t.Root(), false)
	}
	return true
}

// verdicts says which finished jobs can be worked on now: none when the
// standard tree is not ready, else those whose archive tree is ready.
func (c *Cleaner) verdicts(ctx context.Context) (queue.Verdicts, bool) {
	if !c.ready(ctx, c.trees.Standard) {
		return 0, false
	}
	c.ready(ctx, c.trees.Deferred) // its jobs are held one by one
	ok, ko := c.ready(ctx, c.trees.Successful), c.ready(ctx, c.trees.Failed)
	switch {
	case ok && ko:
		return queue.AllVerdicts, true
	case ok:
		return queue.OnlySucceeded, true
	case ko:
		return queue.OnlyFailed, true
	}
	return 0, false
}

// fault records err on the board when it is a TreeFault (the fault's start
// is logged there, once) and reports whether it was.
func (c *Cleaner) fault(ctx context.Context, err error) bool {
	f := crashstore.AsTreeFault(err)
	if f == nil {
		return false
	}
	c.faults.Fail(ctx, c.logger, f)
	return true
}

// worked tells the board that a job's disk work on its trees worked: the
// source tree was changed, and the archive when wrote.
func (c *Cleaner) worked(ctx context.Context, src, archive *crashstore.Store, wrote bool) {
	c.faults.Succeed(ctx, c.logger, src.Root(), true)
	if archive != nil {
		c.faults.Succeed(ctx, c.logger, archive.Root(), wrote)
	}
}

// wrote reports whether ArchivePair put a file into the archive.
func wrote(r crashstore.ArchiveResult) bool {
	placed := func(o crashstore.FileOutcome) bool { return o == crashstore.FileMoved || o == crashstore.FileCopied }
	return placed(r.JSON) || placed(r.Dump)
}
