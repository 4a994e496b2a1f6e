// Package loop is the kit every loop of the monitor is built from: the
// Runner that schedules passes (a pass at once, then one every delay, sooner
// when woken, with capped backoff after failures, a shorter one while the
// database is out of reach, which an Outage shared by the loops logs once;
// the scanner, priority and cleanup loops are each a Runner around their own
// RunOnce), the capped
// exponential Backoff every retry uses, the Episode that logs a lasting
// condition once when it starts and once when it ends, and the Memory of
// per-crash bookkeeping across passes.
package loop

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Backoff bounds: the first retry after a failed pass waits MinBackoff, each
// further consecutive failure doubles the wait, and the wait never exceeds
// the loop's delay (nor MaxBackoff). While the database is out of reach the
// wait never exceeds MaxOutageBackoff, so that every loop resumes within
// seconds of the database answering again.
const (
	MinBackoff       = time.Second
	MaxBackoff       = time.Minute
	MaxOutageBackoff = 2 * time.Second
)

// Runner calls Pass at once and then again whenever the delay has elapsed
// since the end of the previous pass, or a wake-up arrives, until its context
// is cancelled.
type Runner struct {
	// Name names the loop in logs ("scanner", "priority", "cleanup").
	Name string
	// Logger receives one line per failed pass; successful passes log
	// themselves.
	Logger *slog.Logger
	// DelayFunc returns the time between passes. It is called before every
	// wait, so a reloaded configuration takes effect at once.
	DelayFunc func() time.Duration
	// Wake, when not nil, starts a pass as soon as it receives (a hint that
	// work arrived: new files, a NOTIFY). It should be buffered to 1 with
	// non-blocking sends so hints coalesce. After a failed pass it is not
	// listened to until the backoff has passed, so a stream of arrivals
	// during an outage does not turn into a stream of failing passes; a
	// hint sent meanwhile stays buffered and costs one extra pass at most.
	Wake <-chan struct{}
	// Changed, when not nil, returns a channel closed when the settings
	// change; a waiting runner then re-reads DelayFunc and re-arms its timer
	// from the end of the last pass.
	Changed func() <-chan struct{}
	// Pass does one pass. An error is logged once here and the next pass is
	// tried after a backoff; a pass that fails because ctx was cancelled ends
	// the loop quietly.
	Pass func(ctx context.Context) error
	// Observer, when not nil, is told when passes start and end and when
	// waits begin (the monitor's figures and health check).
	Observer Observer
	// Outage, when not nil, is told how each pass went. A pass that failed
	// because the database is out of reach (Outage.Failed says so) is not
	// logged here, since Outage logs the outage once for every loop; the
	// next pass is tried after a backoff capped at MaxOutageBackoff, or as
	// soon as Outage says that the database answers again.
	Outage Outage
}

// Outage tracks the reachability of the database for several loops, so
// that an outage is logged once when it starts and once when it ends rather
// than once per failed pass of each loop. Its methods must be safe for
// concurrent use and must not block.
type Outage interface {
	// Failed is told the error of a failed pass; it reports whether err
	// means that the database is out of reach, in which case it has taken
	// care of saying so and the caller logs nothing.
	Failed(err error) bool
	// Answered is told that database work succeeded.
	Answered()
	// Back returns a channel closed when the database next answers again
	// after an outage: a loop backing off may try again at once.
	Back() <-chan struct{}
}

// Observer is told what a Runner does. Its methods must not block.
type Observer interface {
	// PassStarted: loop began a pass; delay is its current delay.
	PassStarted(loop string, delay time.Duration)
	// PassEnded: loop's pass ended after took, with err (nil for success,
	// the context's error when stopped).
	PassEnded(loop string, took time.Duration, err error)
	// Waiting: loop began waiting for its next pass.
	Waiting(loop string)
}

// Run runs passes until ctx is done, then returns nil. It returns early only
// if Pass returns an error wrapping ErrFatal.
func (r *Runner) Run(ctx context.Context) error {
	logger := r.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger.DebugContext(ctx, "loop started")
	defer logger.DebugContext(ctx, "loop stopped")

	failures := 0
	unreachable := false // the last pass failed for an outage
	for {
		start := time.Now()
		if r.Observer != nil {
			r.Observer.PassStarted(r.Name, r.DelayFunc())
		}
		// Taken before the pass, so that the database answering while the
		// pass fails still ends the backoff at once.
		var back <-chan struct{}
		if r.Outage != nil {
			back = r.Outage.Back()
		}
		err := r.Pass(ctx)
		if r.Observer != nil {
			perr := err
			if ctx.Err() != nil {
				perr = nil // stopped, not failed
			}
			r.Observer.PassEnded(r.Name, time.Since(start), perr)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrFatal):
			return err
		case err != nil:
			failures++
			unreachable = r.Outage != nil && r.Outage.Failed(err)
			if !unreachable {
				logger.ErrorContext(ctx, "pass failed", "error", err, "consecutive_failures", failures)
			}
		default:
			failures, unreachable = 0, false
			if r.Outage != nil {
				r.Outage.Answered()
			}
		}
		if r.Observer != nil {
			r.Observer.Waiting(r.Name)
		}
		if !unreachable {
			back = nil
		}
		if !r.wait(ctx, time.Now(), failures, unreachable, back) {
			return nil
		}
	}
}

// wait blocks until the next pass is due (delay after passEnd, or the
// backoff after a failure), a wake-up arrives, back is closed (the database
// answers again), or ctx is done; it returns false only when ctx is done.
func (r *Runner) wait(ctx context.Context, passEnd time.Time, failures int, unreachable bool, back <-chan struct{}) bool {
	for {
		var changed <-chan struct{}
		if r.Changed != nil {
			changed = r.Changed()
		}
		due := passEnd.Add(waitFor(r.DelayFunc(), failures, unreachable))
		timer := time.NewTimer(time.Until(due))
		wake := r.Wake
		if failures > 0 {
			wake = nil // backing off: only the timer, back or ctx ends the wait
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-timer.C:
			return true
		case <-wake:
			timer.Stop()
			return true
		case <-back:
			timer.Stop()
			return true
		case <-changed:
			timer.Stop() // settings changed: recompute the due time
		}
	}
}

// waitFor is the pause before the next pass: the delay, or after failures a
// backoff of MinBackoff doubled per consecutive failure, capped by the delay
// and MaxBackoff, or by MaxOutageBackoff when the last failure was the
// database out of reach.
func waitFor(delay time.Duration, failures int, unreachable bool) time.Duration {
	if failures == 0 {
		return delay
	}
	limit := MaxBackoff
	if unreachable {
		limit = MaxOutageBackoff
	}
	return min(Backoff{Min: MinBackoff, Max: limit}.Delay(failures), delay)
}

// ErrFatal marks a pass error after which the daemon cannot usefully go on
// (for example the storage root vanished); Run returns it and the process
// exits non-zero so its supervisor can act.
var ErrFatal = errors.New("fatal")

// Broadcast tells any number of waiters that something changed: C returns a
// channel that is closed by the next Notify. The zero value is ready to use.
type Broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

// C returns a channel closed at the next Notify.
func (b *Broadcast) C() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

// Notify wakes every waiter holding a channel from C.
func (b *Broadcast) Notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}
