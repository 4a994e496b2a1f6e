package scanner

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/dispatch"
	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/loop"
	"github.com/crashmonitor/monitor/queue"
	"golang.org/x/sync/errgroup"
)

// errWaiting ends a walk when no processor is live: nothing more can be
// queued this pass.
var errWaiting = errors.New("waiting for a live processor")

// pass is the state of one walk. A pass is a pipeline of three goroutines
// handing batches along channels of capacity one: the walk collects complete
// pairs into batches; the queuer inserts each batch in one transaction; the
// unlinker removes the inbox links of each committed batch. So the disk work
// of one batch overlaps the database work of the next, while each batch still
// reaches the unlinker only after its commit, and batches are committed in
// walk order. At most three batches are in flight, which bounds memory.
type pass struct {
	s       *Scanner
	checkIn time.Duration

	// Owned by the walk.
	batch   batch
	limit   int      // the size of the batch being collected: small first, growing to BatchSize
	writing int      // incomplete pairs still inside their write window
	past    []string // date directories the walk saw wholly in the past, not yet sent to be pruned
	// ahead are links walked whose pairs are not visited yet: their states
	// are read together, statWorkers at a time (see visitAhead); aheadPast
	// are the past directories the walk finished meanwhile, noted once
	// those pairs are visited.
	ahead     []crashstore.Entry
	aheadPast []string
	states    []pairStat
	aheadErr  error // visitAhead's failure under finished, for the walk to return
	toQueue   chan<- batch
	ctx       context.Context // the pipeline's: done when a stage fails

	// What faults explain: unreadable inbox paths (the walk's), unlinks
	// that failed for the whole tree (the unlinkers').
	faults walkFaults

	// Owned by the unlinker until the pipeline has stopped: the emptied
	// directories it removed, and the first error pruning met.
	pruned   int
	pruneErr error

	// Owned by the queuer until the pipeline has stopped.
	res      *Result
	loads    dispatch.Loads // the live processors' loads, carried from batch to batch
	progress *loop.Progress
}

// batch is pairs to queue in one transaction, with when each became
// complete (for the arrival latency), and the past date directories the
// walk finished before the batch was sent: every pair in them is in this
// batch or an earlier one, so once the batch's links are gone they are
// pruned, and the walk keeps no list of the whole tree.
type batch struct {
	entries []crashstore.Entry
	ready   []time.Time
	prune   []string
}

// pruneChunk is how many finished directories make the walk send them to
// be pruned on their own, when it has no pairs to send with them (a stretch
// of the tree with nothing new).
const pruneChunk = 4096

// run walks the inbox and queues what it finds, returning when every stage
// has stopped: the first stage error (errWaiting included) cancels the rest.
func (p *pass) run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	toQueue := make(chan batch, 1)
	toUnlink := make(chan batch, 1)
	p.progress = loop.NewProgress(p.s.logger, "queuing a backlog")
	p.toQueue, p.ctx = toQueue, gctx
	g.Go(func() error {
		defer close(toUnlink)
		for batch := range toQueue {
			if len(batch.entries) > 0 {
				if err := p.queue(gctx, batch); err != nil {
					return err
				}
			}
			select {
			case toUnlink <- batch:
			case <-gctx.Done():
				// Committed but not unlinked: the next walk meets these
				// links again and removes them (ON CONFLICT).
				return gctx.Err()
			}
		}
		return nil
	})
	g.Go(func() error {
		for batch := range toUnlink {
			p.unlink(ctx, batch.entries)
			p.prune(ctx, batch.prune)
		}
		return nil
	})
	p.limit = min(firstBatch, p.s.cfg.BatchSize)
	err := p.s.crashes.WalkPass(gctx, p.walked, p.faults.noteUnreadable, p.finished)
	if err == nil {
		err = p.aheadErr
	}
	if err == nil {
		err = p.visitAhead()
	}
	if err == nil {
		err = p.send()
	}
	close(toQueue)
	if gerr := g.Wait(); gerr != nil {
		// A stage error also ends the walk with gctx's error: report the
		// cause.
		return gerr
	}
	return err
}

// firstBatch is the size of a pass's first batch: the first commit of a
// backlog comes after a few dozen stats, not thousands. Each batch after is
// twice the one before, up to BatchSize.
const firstBatch = 64

// readAhead is how many links the walk collects before their pairs are
// visited, and statWorkers how many goroutines read their states (the
// pair's directory and two files: three name lookups a pair). When a tree's
// metadata is not in the kernel's caches (a backlog older than memory holds,
// a restart), each lookup may wait for the disk; read one at a time, the
// walk waits for every one in turn, while a disk serves several at once. On
// a tree in memory they cost the same either way.
const (
	readAhead   = 256
	statWorkers = 8
)

// pairStat is what Stat said of a pair, and whether the pair was complete
// then (see complete).
type pairStat struct {
	st    crashstore.PairState
	err   error
	ready bool
}

// walked takes one inbox entry of the walk, visited with the readAhead
// after it.
func (p *pass) walked(e crashstore.Entry) error {
	if err := p.aheadErr; err != nil {
		return err // visitAhead failed under finished
	}
	p.ahead = append(p.ahead, e)
	if len(p.ahead) < readAhead {
		return nil
	}
	return p.visitAhead()
}

// visitAhead reads the states of the pairs walked so far, in parallel, and
// visits them in walk order; then it notes the past directories finished
// among them.
func (p *pass) visitAhead() error {
	n := len(p.ahead)
	p.states = slices.Grow(p.states[:0], n)[:n]
	workers := min(statWorkers, n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				p.states[i].st, p.states[i].err = p.s.crashes.Stat(p.ahead[i])
			}
		})
	}
	wg.Wait()
	// Whether each pair is complete is judged now, by the clock of the
	// stats: by the time a pair is visited, the walk may have waited for
	// an earlier pair to settle or for the queuer, and a pair still being
	// written when it was read would look settled by then.
	for i, e := range p.ahead {
		ps := &p.states[i]
		ps.ready = ps.err == nil && ps.st.Written && p.complete(e, ps.st)
	}
	entries, past := p.ahead, p.aheadPast
	p.ahead, p.aheadPast = entries[:0], past[:0]
	for i, e := range entries {
		ps := p.states[i]
		if !ps.ready {
			// Not complete when read: read again, so that a pair settling
			// or written since is judged as it is now.
			ps.st, ps.err = p.s.crashes.Stat(e)
		}
		if err := p.visit(e, ps.st, ps.err); err != nil {
			return err
		}
	}
	for _, dir := range past {
		p.finishedNow(dir)
	}
	return nil
}

// visit handles one inbox entry of the walk, whose pair Stat found st (or
// err): complete when read, or read again just now. A pair whose files are both there but were written
// moments ago (still settling) keeps its place in submission order: the
// walk waits out the rest of its settle time (at most Settle) instead of
// queuing later pairs ahead of it. A pair really incomplete (a file missing,
// or still being written after that wait) is left for a later pass and
// holds up nothing.
func (p *pass) visit(e crashstore.Entry, st crashstore.PairState, err error) error {
	waited := false
	if err == nil && st.Written && !p.complete(e, st) {
		// A pair already waited for in vain is not waited for again: a
		// pair written for long would delay every pass.
		if in := p.s.incomplete.Get(e.ID); in == nil || !in.waited {
			if err := p.settle(e, st); err != nil {
				return err
			}
			waited = true
			st, err = p.s.crashes.Stat(e)
		}
		if err == nil && st.Written && !p.complete(e, st) {
			st.Written = false // still being written: not this pass
		}
	}
	if crashstore.AsTreeFault(err) != nil {
		return err // the tree, not the pair: stop the walk
	}
	if err != nil {
		p.noteIncomplete(e, err)
		return nil
	}
	if !st.Written {
		p.noteIncomplete(e, nil)
		if waited {
			p.s.incomplete.Get(e.ID).waited = true
		}
		return nil
	}
	p.batch.entries = append(p.batch.entries, e)
	p.batch.ready = append(p.batch.ready, st.Latest)
	if len(p.batch.entries) >= p.limit {
		p.limit = min(2*p.limit, p.s.cfg.BatchSize)
		return p.send()
	}
	return nil
}

// complete reports whether a pair whose files are both there is done: both
// seen closed after writing by the watcher, or left alone for Settle.
func (p *pass) complete(e crashstore.Entry, st crashstore.PairState) bool {
	if w := p.s.watch; w != nil && w.closed(e.ID, st.Latest) {
		return true
	}
	ok, _ := p.s.crashes.Settled(st, p.s.cfg.Settle)
	return ok
}

// settle waits until the settling pair e may be complete: the rest of its
// settle time, or less when the watcher sees its files closed. The pairs
// collected so far go to the queuer first, so that they do not wait too.
func (p *pass) settle(e crashstore.Entry, st crashstore.PairState) error {
	if err := p.send(); err != nil {
		return err
	}
	_, left := p.s.crashes.Settled(st, p.s.cfg.Settle)
	t := time.NewTimer(left)
	defer t.Stop()
	for {
		var closed <-chan struct{}
		if w := p.s.watch; w != nil {
			closed = w.completed()
			if w.closed(e.ID, st.Latest) {
				return nil
			}
		}
		select {
		case <-t.C:
			return nil
		case <-closed:
		case <-p.ctx.Done():
			return p.ctx.Err()
		}
	}
}

// send hands the walk's batch to the queuer.
func (p *pass) send() error {
	if len(p.batch.entries) == 0 && len(p.past) == 0 {
		return nil
	}
	p.batch.prune, p.past = p.past, nil
	select {
	case p.toQueue <- p.batch:
		p.batch = batch{}
		return nil
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
}

// finished notes a past date directory the walk has finished, to be pruned
// once the links of the pairs in it are gone; a long stretch of them
// without pairs goes to be pruned on its own.
func (p *pass) finished(dir string) {
	if len(p.ahead) == 0 {
		p.finishedNow(dir)
		return
	}
	// Its pairs are not visited yet: note it after them. A long stretch
	// of finished directories has the pairs visited now, so that the
	// list stays short (a failure stops the walk at its next link, or
	// after it).
	p.aheadPast = append(p.aheadPast, dir)
	if len(p.aheadPast) >= pruneChunk && p.aheadErr == nil {
		p.aheadErr = p.visitAhead()
	}
}

// finishedNow is finished for a directory whose pairs are all visited.
func (p *pass) finishedNow(dir string) {
	if p.s.unreadable.Get(dir) != nil {
		// Unreadable until now: it stays for this pass, so that the pass
		// can say it reads again (rather than that it is gone).
		return
	}
	p.past = append(p.past, dir)
	if len(p.past) >= pruneChunk && len(p.batch.entries) == 0 {
		_ = p.send() // a failure is the pipeline's, which the walk meets next
	}
}

// prune has the emptied directories of dirs removed (a directory still
// holding a pair, incomplete or not queued, stays); it is the unlinker's,
// after the links of the batch that carried dirs. Under Run they go to the
// scanner's pruner, so that removing them holds up no queuing; when it is
// behind they are dropped, and a later pass, meeting them again, prunes
// them. Without Run (a lone RunOnce) they are removed here.
func (p *pass) prune(ctx context.Context, dirs []string) {
	if len(dirs) == 0 || p.pruneErr != nil {
		return
	}
	if q := p.s.prunes; q != nil {
		select {
		case q <- dirs:
		default:
		}
		return
	}
	n, err := p.s.crashes.PruneDirs(ctx, dirs)
	p.pruned += n
	p.pruneErr = err
}

// noteIncomplete notes a pair that cannot be queued yet: one still being
// written is rechecked soon while inside its write window, then on the
// normal delay; a stuck or broken one (err, e.g. its name directory is gone)
// is reported once and left in the inbox.
func (p *pass) noteIncomplete(e crashstore.Entry, err error) {
	p.res.Incomplete++
	p.s.incomplete.Seen(e.ID)
	now := time.Now()
	in, added := p.s.incomplete.Remember(e.ID)
	if added {
		in.since = now
	}
	if err == nil && now.Sub(in.since) < p.s.cfg.WriteWindow {
		p.writing++
		return
	}
	if in.warned {
		return
	}
	in.warned = true
	if err != nil {
		p.s.logger.WarnContext(p.ctx, "cannot queue a crash: its inbox entry is broken; left in place",
			"uuid", e.ID, "link", e.DateLink, "error", err)
		return
	}
	p.s.logger.WarnContext(p.ctx, "crash pair still incomplete; it will be queued when both files are written",
		"uuid", e.ID, "json", e.JSONPath, "dump", e.DumpPath, "since", in.since.Format(time.RFC3339))
}

// queue inserts a batch in one transaction.
func (p *pass) queue(ctx context.Context, b batch) error {
	ids := make([]string, len(b.entries))
	for i, e := range b.entries {
		ids[i] = e.ID
	}
	r, err := p.s.jobs.Enqueue(ctx, ids, 0, p.checkIn, &p.loads)
	if errors.Is(err, queue.ErrNoLiveProcessor) {
		p.res.Waiting = true
		if p.s.noLive.Begin() {
			p.s.logger.WarnContext(ctx, "no live processor: crashes wait in the inbox until one checks in",
				"waiting_at_least", len(ids))
			p.s.cfg.Figures.Event(figures.EventNoLive, "no live processor: crashes wait in the inbox")
		}
		return errWaiting
	}
	if err != nil {
		return err
	}
	if w := p.s.watch; w != nil {
		w.forget(ids)
	}
	if p.s.noLive.End() {
		p.s.logger.InfoContext(ctx, "a processor is live again: queuing resumed")
		p.s.cfg.Figures.Event(figures.EventNoLive, "a processor is live again: queuing resumed")
	}
	p.res.Queued += len(r.Queued)
	p.res.Existing += len(r.Existing)
	fig := p.s.cfg.Figures
	fig.Queued(figures.LoopScanner, len(r.Queued))
	if fig != nil && len(r.Queued) > 0 {
		committed := time.Now()
		queued := make(map[string]bool, len(r.Queued))
		for _, a := range r.Queued {
			queued[a.ID] = true
		}
		for i, e := range b.entries {
			if queued[e.ID] {
				fig.ArrivalLatency(committed.Sub(b.ready[i]))
			}
		}
	}
	fig.Progress(figures.LoopScanner, p.res.Queued+p.res.Existing)
	p.progress.Update(ctx, p.res.Queued+p.res.Existing)
	if p.s.logger.Enabled(ctx, slog.LevelDebug) { // a line per crash: skip building them unless wanted
		for _, a := range r.Queued {
			p.s.logger.DebugContext(ctx, "queued crash", "uuid", a.ID, "owner", a.Owner)
		}
	}
	return nil
}

// unlinkWorkers is how many goroutines remove the links of a batch. Link
// removal is the costliest part of a pass (two unlinks a pair, in many
// directories); spread over a few workers the kernel overlaps them, which on
// the 2-core development VM's ext4 made passes up to half again faster.
const unlinkWorkers = 4

// unlink removes the inbox links of a committed batch: every id of it now
// has a row (new or existing). Each worker takes a contiguous part of the
// batch, whose links (in walk order) share few webhead directories, and
// removes them through a descriptor of each directory; each entry's links go
// in RemoveLinks's order; the order across entries does not matter.
func (p *pass) unlink(ctx context.Context, batch []crashstore.Entry) {
	var wg sync.WaitGroup
	per := (len(batch) + unlinkWorkers - 1) / unlinkWorkers
	for part := range slices.Chunk(batch, max(per, 1)) {
		wg.Go(func() {
			rm := p.s.crashes.NewLinkRemover()
			defer rm.Close()
			for _, e := range part {
				err := rm.Remove(e)
				if !p.faults.unlinkDone(err) && err != nil {
					// The job exists; the next pass will find the link, see
					// the row (ON CONFLICT) and try the removal again. (A
					// fault of the whole tree is logged once, by the pass.)
					p.s.logger.WarnContext(ctx, "queued crash, but could not remove its inbox links", "uuid", e.ID, "error", err)
				}
			}
		})
	}
	wg.Wait()
}
