// Package election elects the active monitor among the monitors that share
// one jobs database and one storageRoot: exactly one runs the loops, the
// others stand by and take over when it stops, dies or loses its session.
//
// The election is a lease row of the database (queue's LeaseSession,
// migration 007), never a session advisory lock: a lock's holder learns of
// its loss only when it next speaks to the server, a lock taken again on
// every heartbeat stacks, and a lock outlives a silent host until TCP gives
// up. The lease instead holds until expires_at, on the database's clock; the
// holder renews it every Renew, and another monitor takes it only once it
// has expired, in a new term.
//
// The holder steps down at once, cancelling the context of its loops, when
// a renewal fails (its session died, a statement failed), when the lease
// says it no longer holds, or when it could not renew for TTL minus Margin
// since its last renewal was sent, whichever comes first; it never goes on
// acting on a belief that it leads. Whatever it still has in flight is
// fenced: every transaction that changes jobs checks the lease of its term
// first, under a lock that a takeover waits for (queue's Store.Fenced). A
// monitor that stepped down resigns its lease if it still holds one and
// leaves the other monitors Cooldown to take over before it bids again; a
// monitor that stops resigns once its loops have returned, so a standby
// takes over within Poll.
//
// The election runs on a connection of its own (Config.Connect), not on the
// loops' pool, so a saturated pool never delays a renewal; a lost connection
// is replaced after a capped backoff, and the outage is logged when it starts
// and when it ends.
package election

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/loop"
	"github.com/crashmonitor/monitor/queue"
)

// Defaults of the lease settings.
const (
	// DefaultTTL is how long a lease holds without a renewal: the longest a
	// dead holder keeps the others waiting.
	DefaultTTL = 3 * time.Second
	// DefaultRenew is how often the holder renews its lease: six times a
	// TTL, so that a few renewals may fail before the lease is at risk.
	DefaultRenew = DefaultTTL / 6
	// DefaultPoll is how often a standby looks at the lease: as often as
	// the holder renews it.
	DefaultPoll = DefaultRenew
	// DefaultMargin is how long before its lease could expire (TTL after
	// the last renewal was sent) a holder that could not renew steps down:
	// one renewal's time.
	DefaultMargin = DefaultRenew
	// statementTimeout bounds a standby's statements. Acquire may wait for the last holder's fenced
	// transactions, which the fence keeps from idling for longer than 3 s.
	statementTimeout = 15 * time.Second
	// connectTimeout bounds one connection attempt.
	connectTimeout = 10 * time.Second
)

// Config configures an Elector. Zero durations take the defaults.
type Config struct {
	// Instance is this monitor.
	Instance queue.Instance
	// Connect opens the election's session, a connection of its own.
	Connect func(ctx context.Context) (*queue.LeaseSession, error)

	TTL, Renew, Poll, Margin time.Duration
	// Cooldown is how long a monitor that stepped down leaves the others to
	// take over before it bids again (twice Poll by default).
	Cooldown time.Duration
	// Reconnect paces the attempts to replace a lost session (250 ms
	// doubling up to 2 s by default).
	Reconnect loop.Backoff

	Logger *slog.Logger
	// Figures, when not nil, receives the notable events of the election.
	Figures *figures.Figures
	// Outage, when not nil, is told whether the session's database answers:
	// an outage of the database is logged there once for the whole daemon,
	// not here too. Failures it does not take for an outage are logged here.
	Outage loop.Outage
}

// LeadFunc runs the loops of a term until ctx is done, and returns then
// (nil) or on a failure that must stop the monitor (an error). It may also
// return nil early after finding the lease gone (a fenced write said so).
type LeadFunc func(ctx context.Context, lease queue.Lease) error

// Elector runs the election of one monitor.
type Elector struct {
	cfg Config
	log *slog.Logger
	// recheck asks for a renewal now: a fenced write found the lease gone.
	recheck chan struct{}
	// decided is closed once this monitor knows whether it is active.
	decided chan struct{}

	// What follows belongs to Run's goroutine.
	sess     *queue.LeaseSession
	term     *term       // the term this monitor leads or is leaving; nil on standby
	cool     time.Time   // no bid before this
	shown    queue.Lease // the other monitor last logged as active
	fails    int         // failed connection attempts in a row
	sessDown loop.Episode
}

// term is a term of office of this monitor.
type term struct {
	lease  queue.Lease
	cancel context.CancelFunc
	done   chan error // receives the LeadFunc's result
	// deadline is when, without a renewal, the lease may be about to
	// expire: the last renewal's send time plus TTL minus Margin.
	deadline time.Time
	// leading is set while the loops run and were not told to stop.
	leading bool
}

// New returns the elector of cfg.
func New(cfg Config) *Elector {
	cfg.TTL = cmp.Or(cfg.TTL, DefaultTTL)
	cfg.Renew = cmp.Or(cfg.Renew, DefaultRenew)
	cfg.Poll = cmp.Or(cfg.Poll, DefaultPoll)
	cfg.Margin = cmp.Or(cfg.Margin, DefaultMargin)
	cfg.Cooldown = cmp.Or(cfg.Cooldown, 2*cfg.Poll)
	if cfg.Reconnect == (loop.Backoff{}) {
		cfg.Reconnect = loop.Backoff{Min: 250 * time.Millisecond, Max: 2 * time.Second}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Elector{cfg: cfg, log: log, recheck: make(chan struct{}, 1), decided: make(chan struct{})}
}

// Decided returns a channel closed once this monitor knows its first role:
// it took the lease, or it saw another monitor hold it.
func (e *Elector) Decided() <-chan struct{} { return e.decided }

// decide closes decided, once.
func (e *Elector) decide() {
	select {
	case <-e.decided:
	default:
		close(e.decided)
	}
}

// Recheck asks the elector to renew the lease now, because a fenced write
// found it gone: if it is, the loops stop at once. It does not block and is
// safe to call from any goroutine.
func (e *Elector) Recheck() {
	select {
	case e.recheck <- struct{}{}:
	default:
	}
}

// Run takes part in the election until ctx is done. Each time this monitor
// takes the lease it calls lead, in a goroutine of its own, with a context
// that ends when the monitor steps down or stops; it waits for lead to
// return before bidding again. When ctx is done it stops the loops, renews
// the lease until they have returned, resigns it and leaves. It returns
// lead's error, if lead failed (the monitor must stop), and nil otherwise.
func (e *Elector) Run(ctx context.Context, lead LeadFunc) error {
	defer e.closeSession()
	timer := time.NewTimer(0)
	defer timer.Stop()
	stopping := false
	for {
		var done <-chan error
		if e.term != nil {
			done = e.term.done
		}
		stop := ctx.Done()
		if stopping {
			stop = nil
		}
		select {
		case <-stop:
			stopping = true
			if e.term == nil {
				e.leave(ctx)
				return nil
			}
			// The loops stop; the lease is renewed until they have.
			e.term.cancel()
			e.cfg.Figures.SetActive(false)
			continue
		case err := <-done:
			t := e.term
			e.term = nil
			t.cancel()
			e.cfg.Figures.SetActive(false)
			if stopping || err != nil {
				e.resign(ctx, t)
				e.leave(ctx)
				return err
			}
			if t.leading {
				e.stepDown(t, "a write found the lease gone")
			}
			e.log.Info("the loops have stopped", "term", t.lease.Term)
		case <-e.recheck:
			if e.term == nil || !e.term.leading {
				continue
			}
		case <-timer.C:
		}
		timer.Reset(e.tick(ctx, stopping, lead))
	}
}

// tick does what is due and returns when the next tick is.
func (e *Elector) tick(ctx context.Context, stopping bool, lead LeadFunc) time.Duration {
	if e.sess == nil && !e.connect(ctx) {
		if e.term != nil && e.term.leading {
			e.stepDown(e.term, "the election session is lost")
		}
		return e.cfg.Reconnect.Delay(e.fails)
	}
	if e.term != nil && e.term.leading {
		e.renew(ctx)
		return e.cfg.Renew
	}
	e.standBy(ctx, stopping, lead)
	return jitter(e.cfg.Poll)
}
