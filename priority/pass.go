package priority

import (
	"context"
	"errors"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/dispatch"
	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/loop"
	"github.com/crashmonitor/monitor/queue"
)

// pass is the state of one pass.
type pass struct {
	l         *Loop
	ctx       context.Context
	checkIn   time.Duration
	res       *Result
	handedOut bool // something was queued or moved
}

// located is a requested crash found on disk.
type located struct {
	tree  tree
	entry crashstore.Entry
}

// resolve handles one batch of requests: sorts them out by looking in the
// trees, resolves them in one transaction, then removes the inbox links of
// the crashes it queued.
func (p *pass) resolve(reqs []queue.PriorityRequest) error {
	l := p.l
	now := time.Now()
	var b queue.PriorityBatch
	found := map[string]located{}
	for _, r := range reqs {
		l.kept.Seen(r.ID)
		if !crashstore.ValidID(r.ID) {
			l.logger.WarnContext(p.ctx, "malformed priority request dropped: not a crash id",
				"request", truncate(r.ID), "bytes", len(r.ID))
			p.res.Malformed++
			b.Drop = append(b.Drop, r.ID)
			continue
		}
		k := l.kept.Get(r.ID)
		if k != nil && now.Before(k.next) {
			p.res.Kept++
			continue
		}
		if r.HasJob {
			if k != nil && k.reason == keptNoTable && now.Sub(k.since) >= l.cfg.GiveUp {
				l.logger.WarnContext(p.ctx, "the owner of a priority job still has no priority table; request dropped, the job keeps its raised priority",
					"uuid", r.ID, "waited", now.Sub(k.since).Round(time.Second))
				p.res.GaveUp++
				b.Drop = append(b.Drop, r.ID)
				continue
			}
			b.Existing = append(b.Existing, r.ID)
			continue
		}
		switch loc, d := p.locate(r.ID, now); d {
		case decideFound:
			found[r.ID] = loc
			b.Found = append(b.Found, r.ID)
		case decideKeep:
			p.res.Kept++
		case decideDrop:
			b.Drop = append(b.Drop, r.ID)
		}
	}
	if err := p.ctx.Err(); err != nil {
		return err
	}

	outs, err := l.jobs.ResolvePriority(p.ctx, b, p.checkIn, &l.loads)
	if err != nil {
		return err
	}
	for _, o := range outs {
		p.record(o, found[o.ID], now)
	}

	// Committed: the crashes queued now have their jobs; take them out of
	// the inbox so that the scanner does not meet them again.
	for _, o := range outs {
		loc, ok := found[o.ID]
		if !ok || o.Status != dispatch.PriorityQueued || loc.entry.DateLink == "" {
			continue
		}
		if err := loc.tree.store.RemoveLinks(loc.entry); err != nil && !l.fault(p.ctx, err) {
			l.logger.WarnContext(p.ctx, "queued priority crash, but could not remove its inbox links; the scanner will",
				"uuid", o.ID, "tree", loc.tree.name, "error", err)
		}
	}
	return nil
}

// decision is what locate decided for a request.
type decision int

const (
	decideFound decision = iota // a complete pair: queue it
	decideKeep                  // look again later
	decideDrop                  // delete the request
)

// locate looks for a crash in the standard tree, then the deferred tree, and
// returns its pair when complete. Otherwise it decides for the request, and
// logs why: kept (a pair incomplete, a lookup error, the pass stopping) or
// dropped (nowhere, or incomplete for too long).
func (p *pass) locate(id string, now time.Time) (located, decision) {
	l := p.l
	store, e, err := l.find(p.ctx, id)
	t := l.tree(store)
	if until, ok := l.faultWait(p.ctx, store, err); ok {
		// The tree's fault was logged once, on the board.
		l.keep(id, keptFault, now, max(until.Sub(now), minPause))
		return located{}, decideKeep
	}
	switch {
	case errors.Is(err, crashstore.ErrNotFound):
		l.logger.ErrorContext(p.ctx, "priority crash was never found; request dropped", "uuid", id)
		p.res.NotFound++
		l.kept.Forget(id)
		return located{}, decideDrop
	case err != nil:
		if p.ctx.Err() != nil {
			return located{}, decideKeep
		}
		k := l.keep(id, keptLookup, now, retryDelay(l.attempts(id, keptLookup)+1))
		if !k.warned {
			k.warned = true
			l.logger.WarnContext(p.ctx, "cannot look up a priority crash; request kept, retrying",
				"uuid", id, "tree", t.name, "error", err, "retry_in", k.next.Sub(now).Round(time.Millisecond))
		}
		return located{}, decideKeep
	}
	ok, err := store.Complete(e, l.cfg.Settle)
	if ok {
		return located{tree: t, entry: e}, decideFound
	}
	if until, ok := l.faultWait(p.ctx, store, err); ok {
		l.keep(id, keptFault, now, max(until.Sub(now), minPause))
		return located{}, decideKeep
	}
	return located{}, p.incomplete(id, t, e, err, now)
}

// incomplete keeps the request of a pair that is not complete (err tells why
// when it can never become complete as it is) and logs it once, or drops it
// after GiveUp.
func (p *pass) incomplete(id string, t tree, e crashstore.Entry, err error, now time.Time) decision {
	l := p.l
	if k := l.kept.Get(id); k != nil && k.reason == keptIncomplete && now.Sub(k.since) >= l.cfg.GiveUp {
		l.logger.ErrorContext(p.ctx, "priority crash pair never completed; request dropped, the files stay",
			"uuid", id, "tree", t.name, "state", pairState(t.store, e, err), "waited", now.Sub(k.since).Round(time.Second))
		p.res.GaveUp++
		l.kept.Forget(id)
		return decideDrop
	}
	k := l.keep(id, keptIncomplete, now, loop.Backoff{Min: l.cfg.Recheck, Max: MaxRecheck}.Delay(l.attempts(id, keptIncomplete)+1))
	state := pairState(t.store, e, err)
	if !k.warned && (err != nil || state != stateWriting) {
		k.warned = true
		l.logger.WarnContext(p.ctx, "priority crash pair incomplete; request kept, retrying",
			"uuid", id, "tree", t.name, "state", state, "give_up_after", l.cfg.GiveUp)
	}
	return decideKeep
}

// States of an incomplete pair, for the logs.
const (
	stateWriting = "being written"
	stateNoJSON  = "json missing"
	stateNoDump  = "dump missing"
)

// pairState tells why a pair is not complete.
func pairState(s *crashstore.Store, e crashstore.Entry, err error) string {
	if err != nil {
		return err.Error()
	}
	switch on := s.Present(e); {
	case !on.JSON:
		return stateNoJSON
	case !on.Dump:
		return stateNoDump
	}
	return stateWriting
}

// record logs one outcome, counts it and updates the kept requests.
func (p *pass) record(o queue.PriorityOutcome, loc located, now time.Time) {
	l := p.l
	ctx := p.ctx
	fig := l.cfg.Figures
	if o.Resolved() {
		l.kept.Forget(o.ID)
		fig.PriorityLatency(o.Waited)
	}
	switch o.Status {
	case dispatch.PriorityQueued, dispatch.PriorityRaised, dispatch.PriorityMoved:
		p.handedOut = p.handedOut || o.Status != dispatch.PriorityRaised
		if !o.Told {
			p.untold(o, now)
			return
		}
		switch o.Status {
		case dispatch.PriorityQueued:
			p.res.Queued++
			fig.Queued(figures.LoopPriority, 1)
			l.logger.InfoContext(ctx, "priority crash queued", "uuid", o.ID, "tree", loc.tree.name, "owner", o.Owner)
		case dispatch.PriorityRaised:
			p.res.Raised++
			l.logger.InfoContext(ctx, "priority crash was already queued; its owner was told", "uuid", o.ID, "owner", o.Owner)
		case dispatch.PriorityMoved:
			p.res.Moved++
			fig.JobsMoved(1)
			l.logger.InfoContext(ctx, "priority crash was queued to a dead processor; moved, and its new owner told",
				"uuid", o.ID, "from", ownerName(o.From), "owner", o.Owner)
		}
	case dispatch.PriorityFinished:
		p.res.Finished++
		l.logger.InfoContext(ctx, "priority crash already processed; request dropped", "uuid", o.ID)
	case dispatch.PriorityDropped:
		// Logged when decided.
	case dispatch.PriorityWaiting:
		p.res.Kept++
		p.res.Waiting = true
		l.keep(o.ID, keptWaiting, now, l.cfg.WaitForProcessor)
	case dispatch.PriorityRetry:
		p.res.Kept++
		l.keep(o.ID, keptRetry, now, 0)
		l.logger.DebugContext(ctx, "priority crash changed while being resolved; retrying", "uuid", o.ID)
	}
}

// untold keeps the request of a job whose owner could not be told.
func (p *pass) untold(o queue.PriorityOutcome, now time.Time) {
	l := p.l
	p.res.Kept++
	if o.TellErr != nil {
		k := l.keep(o.ID, keptTell, now, retryDelay(l.attempts(o.ID, keptTell)+1))
		if !k.warned {
			k.warned = true
			l.logger.ErrorContext(p.ctx, "cannot tell a processor about a priority crash; request kept, retrying",
				"uuid", o.ID, "owner", o.Owner, "error", o.TellErr, "retry_in", k.next.Sub(now).Round(time.Millisecond))
		}
		return
	}
	k := l.keep(o.ID, keptNoTable, now, l.cfg.WaitForProcessor)
	if !k.warned {
		k.warned = true
		l.logger.WarnContext(p.ctx, "the owner of a priority crash has no priority table yet; priority raised, request kept",
			"uuid", o.ID, "owner", o.Owner, "give_up_after", l.cfg.GiveUp)
	}
}
