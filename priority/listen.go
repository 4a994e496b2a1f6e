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
// cannot be opened or drops, it logs it and tries again, at once when the
// lost connection had lived MaxListenBackoff, else after a wait of
// MinListenBackoff doubling to MaxListenBackoff. Every (re)connection wakes
// the loop once, since notifications sent while no one listened are lost.
// Meanwhile the periodic passes find the requests anyway.
func (l *Loop) listen(ctx context.Context) {
	backoff := loop.Backoff{Min: MinListenBackoff, Max: MaxListenBackoff}
	failures := 0 // attempts failed in a row: the next waits backoff.Delay(failures)
	connected := false
	for {
		if wait := backoff.Delay(failures); wait > 0 && !loop.Sleep(ctx, wait) {
			return
		}
		lis, err := l.jobs.ListenPriority(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			l.logger.WarnContext(ctx, "cannot listen for priority requests; they wait for the next pass until this works",
				"error", err, "retry_in", backoff.Delay(failures))
			continue
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
		l.logger.WarnContext(ctx, "priority listener connection lost; reconnecting", "error", err, "retry_in", backoff.Delay(failures))
	}
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
