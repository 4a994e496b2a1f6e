package priority

import (
	"context"
	"errors"
	"time"

	"github.com/crashmonitor/monitor/internal/loop"
	"github.com/crashmonitor/monitor/queue"
)

// listen wakes the loop whenever a priority request is inserted, until ctx
// is done. It holds a listener connection of its own; when that connection
// cannot be opened or drops, it tries again, at once when the lost
// connection had lived MaxListenBackoff, else after a wait of
// MinListenBackoff doubling to MaxListenBackoff. Every (re)connection wakes
// the loop once, since notifications sent while no one listened are lost.
// Meanwhile the periodic passes find the requests anyway.
//
// A failure that the configured Outage takes for the database out of reach
// is its to log, and the waits are then capped at loop.MaxOutageBackoff and
// end as soon as the Outage says that the database answers again; other
// failures are logged here.
func (l *Loop) listen(ctx context.Context) {
	failures := 0            // attempts failed in a row: the next waits listenDelay(failures)
	unreachable := false     // the last failure was the database out of reach
	var back <-chan struct{} // closed when the database answers again
	connected := false
	for {
		if wait := listenDelay(failures, unreachable); wait > 0 && !loop.Wait(ctx, wait, back) {
			return
		}
		back = l.outageBack()
		lis, err := l.openListener(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			if unreachable = l.outageFailed(err); !unreachable {
				back = nil
				l.logger.WarnContext(ctx, "cannot listen for priority requests; they wait for the next pass until this works",
					"error", err, "retry_in", listenDelay(failures, false))
			}
			continue
		}
		if o := l.listenOutage(); o != nil {
			o.Answered()
		}
		if connected {
			l.logger.InfoContext(ctx, "priority listener reconnected")
		} else {
			l.logger.DebugContext(ctx, "listening for priority requests")
		}
		connected = true
		l.poke()

		up := time.Now()
		err = l.serve(ctx, lis)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		_ = lis.Close(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if time.Since(up) >= MaxListenBackoff {
			failures = 0
		} else {
			failures++
		}
		back = l.outageBack()
		if unreachable = l.outageFailed(err); !unreachable {
			back = nil
			l.logger.WarnContext(ctx, "priority listener connection lost; reconnecting",
				"error", err, "retry_in", listenDelay(failures, false))
		}
	}
}

// listenDelay is the wait before the next attempt to listen after failures
// failed in a row: MinListenBackoff doubling up to MaxListenBackoff, or up
// to loop.MaxOutageBackoff while the database is out of reach.
func listenDelay(failures int, unreachable bool) time.Duration {
	limit := MaxListenBackoff
	if unreachable {
		limit = loop.MaxOutageBackoff
	}
	return loop.Backoff{Min: MinListenBackoff, Max: limit}.Delay(failures)
}

// openListener opens the listener's connection: with Config.Listen, else
// the store's ListenPriority.
func (l *Loop) openListener(ctx context.Context) (*queue.PriorityListener, error) {
	if l.cfg.Listen != nil {
		return l.cfg.Listen(ctx)
	}
	return l.jobs.ListenPriority(ctx)
}

// listenOutage is the Outage told of the listener's connections, if any.
func (l *Loop) listenOutage() loop.Outage {
	if l.cfg.Listener != nil {
		return l.cfg.Listener
	}
	return l.cfg.Outage
}

// outageFailed tells the Outage of err and reports whether err is the
// database out of reach.
func (l *Loop) outageFailed(err error) bool {
	o := l.listenOutage()
	return o != nil && o.Failed(err)
}

// outageBack is the Outage's channel closed when the database answers again
// (nil without an Outage).
func (l *Loop) outageBack() <-chan struct{} {
	if o := l.listenOutage(); o != nil {
		return o.Back()
	}
	return nil
}

// serve wakes the loop for every notification on lis, checking the
// connection with a ping after each quiet HealthCheck, until ctx is done or
// the connection fails.
func (l *Loop) serve(ctx context.Context, lis *queue.PriorityListener) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, l.cfg.HealthCheck)
		err := lis.Wait(wctx)
		cancel()
		switch {
		case err == nil:
			l.poke()
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			err = lis.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}
