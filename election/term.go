package election

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/queue"
)

// finalTimeout bounds the resignation and the leave of a monitor that stops.
const finalTimeout = 2 * time.Second

// standBy records the heartbeat, looks at the lease and takes it when it has
// expired, unless the monitor is stopping, its loops are still winding down,
// or it stepped down less than Cooldown ago.
func (e *Elector) standBy(ctx context.Context, stopping bool, lead LeadFunc) {
	sctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	l, err := e.sess.Observe(sctx, e.cfg.Instance)
	if err != nil {
		e.dropSession(err)
		return
	}
	if l.Valid && l.ID == e.cfg.Instance.ID {
		// A lease of a term this monitor stepped down from (its session
		// died while the lease held): give it up, so that another monitor
		// takes over now rather than when it expires.
		if _, err := e.sess.Resign(sctx, l.ID); err != nil {
			e.dropSession(err)
			return
		}
		e.log.Info("resigned the lease of the term this monitor stepped down from", "term", l.Term)
		l.Valid = false
	}
	if l.Valid {
		e.showActive(l)
		return
	}
	if stopping || e.term != nil || time.Now().Before(e.cool) {
		return
	}
	sent := time.Now()
	l, took, err := e.sess.Acquire(sctx, e.cfg.Instance, e.cfg.TTL)
	switch {
	case err != nil:
		e.dropSession(err)
	case !took && l.Valid:
		e.showActive(l)
	case took:
		e.start(ctx, l, sent, lead)
	}
}

// start begins the term of l, taken at sent: the loops run under lead.
func (e *Elector) start(ctx context.Context, l queue.Leader, sent time.Time, lead LeadFunc) {
	lctx, cancel := context.WithCancel(ctx)
	t := &term{lease: l.Lease(), cancel: cancel, done: make(chan error, 1),
		deadline: sent.Add(e.cfg.TTL - e.cfg.Margin), leading: true}
	e.term = t
	e.shown = queue.Lease{}
	e.cfg.Figures.SetActive(true)
	e.decide()
	e.log.Info("active: this monitor runs the loops", "term", l.Term)
	e.cfg.Figures.Event(figures.EventElection, fmt.Sprintf("this monitor became active (term %d)", l.Term))
	go func() { t.done <- lead(lctx, t.lease) }()
}

// renew renews the lease of the term being led; when that fails in any way,
// or when the lease could expire before a renewal lands, the monitor steps
// down at once.
func (e *Elector) renew(ctx context.Context) {
	t := e.term
	sent := time.Now()
	if !sent.Before(t.deadline) {
		e.stepDown(t, "the lease could not be renewed in time")
		return
	}
	// Not cut short by a stop: the lease is renewed until the loops have
	// returned. A renewal that cannot land before the deadline is a failure.
	rctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), t.deadline)
	ok, err := e.sess.Renew(rctx, e.cfg.Instance, t.lease, e.cfg.TTL)
	cancel()
	switch {
	case err != nil:
		e.stepDown(t, "the lease could not be renewed")
		e.dropSession(err)
	case !ok:
		e.stepDown(t, "the lease no longer holds (expired, or another monitor took it)")
	default:
		t.deadline = sent.Add(e.cfg.TTL - e.cfg.Margin)
	}
}

// stepDown stops the loops of t at once and starts the cooldown.
func (e *Elector) stepDown(t *term, reason string) {
	t.cancel()
	t.leading = false
	e.cfg.Figures.SetActive(false)
	e.cool = time.Now().Add(e.cfg.Cooldown)
	e.log.Warn("stepping down: "+reason+"; the loops stop", "term", t.lease.Term)
	e.cfg.Figures.Event(figures.EventElection, "this monitor stepped down: "+reason)
}

// showActive says, once per term, that another monitor is active.
func (e *Elector) showActive(l queue.Leader) {
	e.decide()
	if l.Lease() == e.shown {
		return
	}
	e.shown = l.Lease()
	e.log.Info("standing by: another monitor is active", "active_host", l.Host, "active_pid", l.PID,
		"active_since", l.Since.Format(time.RFC3339), "term", l.Term)
	e.cfg.Figures.Event(figures.EventElection, fmt.Sprintf("standing by: the active monitor is %s (term %d)", l.Instance, l.Term))
}

// resign gives up the lease after the loops of t have returned, so that a
// standby takes over on its next look instead of when the lease expires.
func (e *Elector) resign(ctx context.Context, t *term) {
	if e.sess == nil {
		return // the lease expires by itself
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalTimeout)
	defer cancel()
	ok, err := e.sess.Resign(rctx, e.cfg.Instance.ID)
	switch {
	case err != nil:
		e.log.Warn("the lease could not be resigned; it expires by itself", "error", err, "ttl", e.cfg.TTL)
		e.closeSession()
	case ok:
		e.log.Info("resigned the lease: a standby may take over at once", "term", t.lease.Term)
	}
}

// leave removes this monitor from the running monitors, on a clean stop.
func (e *Elector) leave(ctx context.Context) {
	if e.sess == nil {
		return // its heartbeat stops: the others forget it
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalTimeout)
	defer cancel()
	if err := e.sess.Leave(lctx, e.cfg.Instance.ID); err != nil {
		e.log.Debug("not removed from the running monitors; the others forget it", "error", err)
	}
}

// connect opens the session and reports whether it could. A failure starts
// an outage of the election, logged once; the first success after ends it.
func (e *Elector) connect(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	sess, err := e.cfg.Connect(cctx)
	cancel()
	if err != nil {
		e.fails++
		if ctx.Err() == nil && !e.outageFailed(err) && e.sessDown.Begin() {
			e.log.Error("the election cannot reach the database; retrying", "error", err)
		}
		return false
	}
	e.fails = 0
	e.sess = sess
	if e.cfg.Outage != nil {
		e.cfg.Outage.Answered()
	}
	if e.sessDown.End() {
		e.log.Info("the election reaches the database again")
	}
	return true
}

// dropSession closes the session after it failed with err; the next tick
// opens another.
func (e *Elector) dropSession(err error) {
	e.closeSession()
	if errors.Is(err, context.Canceled) {
		return // stopping
	}
	if !e.outageFailed(err) && e.sessDown.Begin() {
		e.log.Error("the election session is lost; reconnecting", "error", err)
	}
}

// outageFailed tells the daemon's outage tracker of a failure, and reports
// whether it took it for an outage of the database (logged there).
func (e *Elector) outageFailed(err error) bool {
	return e.cfg.Outage != nil && e.cfg.Outage.Failed(err)
}

// closeSession closes the session, if any.
func (e *Elector) closeSession() {
	if e.sess == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), finalTimeout)
	defer cancel()
	_ = e.sess.Close(ctx)
	e.sess = nil
}

// jitter returns d plus up to a fifth of it, so that standbys started
// together do not look at the lease in step.
func jitter(d time.Duration) time.Duration {
	return d + rand.N(d/5+1)
}
