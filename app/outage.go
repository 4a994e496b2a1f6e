package app

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/loop"
	"github.com/crashmonitor/monitor/queue"
)

// outageGrace is how long the database must stay out of reach before it
// counts as an outage: a connection lost and replaced at once (a backend
// killed by pg_terminate_backend, a pooler dropping a server connection) is
// not one.
const outageGrace = time.Second

// outage tracks whether the database answers the running daemon, for its
// three loops and the priority listener together (a loop.Outage). Each
// reports its failures and successes; an error that queue.Unreachable takes
// for an outage is not theirs to log: the outage is logged here once at
// ERROR when it has lasted outageGrace, and its end once at INFO, however
// many loops retry meanwhile. A connection failure that a success follows
// within outageGrace is logged once at WARNING. The figures get the outage
// as one event when it starts and one when it ends. It is safe for
// concurrent use.
type outage struct {
	logger  *slog.Logger
	figures *figures.Figures
	scope   outageScope
	now     func() time.Time
	back    loop.Broadcast // notified when the database answers again

	mu    sync.Mutex
	since time.Time // the first failure of the current stretch; zero while the database answers
	first error     // that failure
	down  bool      // the stretch has lasted outageGrace: an outage, logged
}

// outageScope is what an outage tracker watches, for its log lines.
type outageScope struct {
	through string // "" (every connection), or the setting of the connections watched
	who     string // who retries
	check   string // what the operator should check
}

// newOutageTrackers returns the outage tracker of the loops and that of the
// priority listener. They are one and the same, watching every connection,
// unless databaseURL goes through a transaction pooler: then the loops'
// connections through it and the listener's direct one are watched apart,
// so that one of the two failing alone is one outage rather than one that
// the other's successes keep ending.
func newOutageTrackers(logger *slog.Logger, f *figures.Figures, pooled bool) (loops, listener *outage) {
	if !pooled {
		o := newOutage(logger, f, outageScope{who: "the loops and the priority listener retry",
			check: "check that PostgreSQL (and the pooler, when databaseURL goes through one) is up and accepts connections from this host"})
		return o, o
	}
	return newOutage(logger, f, outageScope{through: "databaseURL", who: "the loops retry",
			check: "check that the pooler and PostgreSQL behind it are up and accept connections from this host"}),
		newOutage(logger, f, outageScope{through: "databaseSessionURL",
			who:   "the priority listener retries",
			check: "priority requests wait for the periodic pass meanwhile; check that PostgreSQL is up and accepts connections from this host"})
}

func newOutage(logger *slog.Logger, f *figures.Figures, scope outageScope) *outage {
	return &outage{logger: logger, figures: f, scope: scope, now: time.Now}
}

// through is the scope's setting as a phrase, "" for every connection.
func (o *outage) through() string {
	if o.scope.through == "" {
		return ""
	}
	return " through " + o.scope.through
}

// Failed reports whether err means that the database is out of reach, and
// then records it.
func (o *outage) Failed(err error) bool {
	if !queue.Unreachable(err) {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	if o.since.IsZero() {
		o.since, o.first = now, err
	}
	if !o.down && now.Sub(o.since) >= outageGrace {
		o.down = true
		o.logger.Error(fmt.Sprintf("database unreachable%s; %s every %s until it answers: %s",
			o.through(), o.scope.who, loop.MaxOutageBackoff, o.scope.check), "error", err)
		o.figures.DatabaseUnreachable(err)
	}
	return true
}

// Answered records that database work succeeded, which ends an outage.
func (o *outage) Answered() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.since.IsZero() {
		return
	}
	took := o.now().Sub(o.since).Round(100 * time.Millisecond)
	if o.down {
		o.logger.Info(fmt.Sprintf("database answers again%s after %s", o.through(), took), "outage", took)
		o.figures.DatabaseAnswers()
		o.back.Notify()
	} else {
		o.logger.Warn("a database connection was lost; a new one answers"+o.through(), "error", o.first, "after", took)
	}
	o.since, o.first, o.down = time.Time{}, nil, false
}

// Back returns a channel closed when the database next answers again after
// an outage.
func (o *outage) Back() <-chan struct{} { return o.back.C() }
