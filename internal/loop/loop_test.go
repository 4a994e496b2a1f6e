package loop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// passTimes records when each pass started, relative to the bubble's start.
type passTimes struct {
	start time.Time
	at    []time.Duration
	errs  []error // returned by pass i (nil past the end)
}

func (p *passTimes) pass(ctx context.Context) error {
	i := len(p.at)
	p.at = append(p.at, time.Since(p.start))
	if i < len(p.errs) {
		return p.errs[i]
	}
	return nil
}

func TestRunner(t *testing.T) {
	t.Parallel()

	t.Run("PassAtOnceThenEveryDelay", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			p := &passTimes{start: time.Now()}
			ctx, cancel := context.WithCancel(t.Context())
			r := &Runner{Name: "t", DelayFunc: func() time.Duration { return time.Minute }, Pass: p.pass}
			done := make(chan error)
			go func() { done <- r.Run(ctx) }()
			time.Sleep(3*time.Minute + time.Second)
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run() = %v, want nil", err)
			}
			want := []time.Duration{0, time.Minute, 2 * time.Minute, 3 * time.Minute}
			if fmt.Sprint(p.at) != fmt.Sprint(want) {
				t.Errorf("passes at %v, want %v", p.at, want)
			}
		})
	})

	t.Run("WakeStartsPassAtOnce", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			p := &passTimes{start: time.Now()}
			wake := make(chan struct{}, 1)
			r := &Runner{DelayFunc: func() time.Duration { return time.Hour }, Wake: wake, Pass: p.pass}
			ctx, cancel := context.WithCancel(t.Context())
			go r.Run(ctx)
			time.Sleep(10 * time.Second)
			wake <- struct{}{}
			synctest.Wait()
			cancel()
			synctest.Wait()
			want := []time.Duration{0, 10 * time.Second}
			if fmt.Sprint(p.at) != fmt.Sprint(want) {
				t.Errorf("passes at %v, want %v", p.at, want)
			}
		})
	})

	t.Run("WakeDoesNotCutBackoffShort", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			boom := errors.New("boom")
			p := &passTimes{start: time.Now(), errs: []error{boom}}
			wake := make(chan struct{}, 1)
			r := &Runner{
				Logger:    slog.New(slog.DiscardHandler),
				DelayFunc: func() time.Duration { return time.Hour },
				Wake:      wake,
				Pass:      p.pass,
			}
			ctx, cancel := context.WithCancel(t.Context())
			go r.Run(ctx)
			time.Sleep(100 * time.Millisecond)
			wake <- struct{}{} // arrivals during the outage
			time.Sleep(2 * time.Second)
			cancel()
			synctest.Wait()
			// The retry waits out MinBackoff; the buffered wake-up then
			// starts one more pass at once.
			want := []time.Duration{0, MinBackoff, MinBackoff}
			if fmt.Sprint(p.at) != fmt.Sprint(want) {
				t.Errorf("passes at %v, want %v", p.at, want)
			}
		})
	})

	t.Run("ChangedDelayTakesEffectDuringWait", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			p := &passTimes{start: time.Now()}
			var delay atomic.Int64
			delay.Store(int64(time.Hour))
			var b Broadcast
			r := &Runner{
				DelayFunc: func() time.Duration { return time.Duration(delay.Load()) },
				Changed:   b.C,
				Pass:      p.pass,
			}
			ctx, cancel := context.WithCancel(t.Context())
			go r.Run(ctx)
			time.Sleep(time.Minute)
			delay.Store(int64(2 * time.Minute)) // due 2m after the first pass
			b.Notify()
			time.Sleep(3*time.Minute + time.Second)
			cancel()
			synctest.Wait()
			want := []time.Duration{0, 2 * time.Minute, 4 * time.Minute}
			if fmt.Sprint(p.at) != fmt.Sprint(want) {
				t.Errorf("passes at %v, want %v", p.at, want)
			}
		})
	})

	t.Run("BacksOffAfterFailuresAndResets", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			boom := errors.New("boom")
			p := &passTimes{start: time.Now(), errs: []error{boom, boom, boom, nil}}
			r := &Runner{
				Logger:    slog.New(slog.DiscardHandler),
				DelayFunc: func() time.Duration { return time.Hour },
				Pass:      p.pass,
			}
			ctx, cancel := context.WithCancel(t.Context())
			go r.Run(ctx)
			time.Sleep(time.Hour + 8*time.Second)
			cancel()
			synctest.Wait()
			// failures at 0, 1s, 3s; success at 7s; next pass an hour later.
			want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, time.Hour + 7*time.Second}
			if fmt.Sprint(p.at) != fmt.Sprint(want) {
				t.Errorf("passes at %v, want %v", p.at, want)
			}
		})
	})

	t.Run("OutageIsLeftToTheTracker", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			down, boom := errors.New("connection refused"), errors.New("boom")
			p := &passTimes{start: time.Now(), errs: []error{down, down, down, down, boom, nil}}
			o := &fakeOutage{unreachable: down}
			var logged atomic.Int64
			r := &Runner{
				Logger:    slog.New(countHandler{&logged}),
				DelayFunc: func() time.Duration { return time.Hour },
				Pass:      p.pass,
				Outage:    o,
			}
			ctx, cancel := context.WithCancel(t.Context())
			go r.Run(ctx)
			time.Sleep(time.Hour + 20*time.Second)
			cancel()
			synctest.Wait()
			// Outage failures at 0, 1s, 3s, 5s (backoff capped at
			// MaxOutageBackoff although the delay is an hour); then a failure
			// of another kind (5th failure: backoff 16s), then success.
			want := []time.Duration{0, time.Second, 3 * time.Second, 5 * time.Second, 7 * time.Second, 23 * time.Second}
			if fmt.Sprint(p.at) != fmt.Sprint(want) {
				t.Errorf("passes at %v, want %v", p.at, want)
			}
			if o.failed.Load() != 5 || o.answered.Load() != 1 {
				t.Errorf("outage told %d failures and %d successes, want 5 and 1", o.failed.Load(), o.answered.Load())
			}
			if n := logged.Load(); n != 1 {
				t.Errorf("%d lines logged at ERROR, want 1 (the failure that is not an outage)", n)
			}
		})
	})

	t.Run("DatabaseBackEndsTheBackoff", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			down := errors.New("connection refused")
			p := &passTimes{start: time.Now(), errs: []error{down, down, down}}
			o := &fakeOutage{unreachable: down}
			r := &Runner{
				Logger:    slog.New(slog.DiscardHandler),
				DelayFunc: func() time.Duration { return time.Hour },
				Pass:      p.pass,
				Outage:    o,
			}
			ctx, cancel := context.WithCancel(t.Context())
			go r.Run(ctx)
			time.Sleep(3*time.Second + 500*time.Millisecond) // failures at 0, 1s, 3s
			o.back.Notify()                                  // another loop got through
			synctest.Wait()
			cancel()
			synctest.Wait()
			want := []time.Duration{0, time.Second, 3 * time.Second, 3*time.Second + 500*time.Millisecond}
			if fmt.Sprint(p.at) != fmt.Sprint(want) {
				t.Errorf("passes at %v, want %v", p.at, want)
			}
		})
	})

	t.Run("FatalErrorEndsRun", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			fatal := fmt.Errorf("storage root gone: %w", ErrFatal)
			r := &Runner{
				DelayFunc: func() time.Duration { return time.Minute },
				Pass:      func(context.Context) error { return fatal },
			}
			if err := r.Run(t.Context()); !errors.Is(err, ErrFatal) {
				t.Errorf("Run() = %v, want ErrFatal", err)
			}
		})
	})

	t.Run("CancelledPassIsNotAnError", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			r := &Runner{
				DelayFunc: func() time.Duration { return time.Minute },
				Pass: func(ctx context.Context) error {
					cancel()
					return ctx.Err()
				},
			}
			if err := r.Run(ctx); err != nil {
				t.Errorf("Run() = %v, want nil", err)
			}
		})
	})
}

// fakeOutage takes the error unreachable for an outage.
type fakeOutage struct {
	unreachable      error
	failed, answered atomic.Int64
	back             Broadcast
}

func (o *fakeOutage) Failed(err error) bool {
	o.failed.Add(1)
	return errors.Is(err, o.unreachable)
}

func (o *fakeOutage) Answered() { o.answered.Add(1) }

func (o *fakeOutage) Back() <-chan struct{} { return o.back.C() }

// countHandler counts the records at ERROR and above.
type countHandler struct{ n *atomic.Int64 }

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.n.Add(1)
	}
	return nil
}

func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }

func (h countHandler) WithGroup(string) slog.Handler { return h }

func TestWaitFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		delay    time.Duration
		failures int
		want     time.Duration
	}{
		{5 * time.Minute, 0, 5 * time.Minute},
		{5 * time.Minute, 1, time.Second},
		{5 * time.Minute, 2, 2 * time.Second},
		{5 * time.Minute, 7, MaxBackoff},
		{5 * time.Minute, 100, MaxBackoff},
		{3 * time.Second, 5, 3 * time.Second},
	}
	for _, tt := range tests {
		if got := waitFor(tt.delay, tt.failures, false); got != tt.want {
			t.Errorf("waitFor(%v, %d) = %v, want %v", tt.delay, tt.failures, got, tt.want)
		}
	}
	// The database out of reach: never more than MaxOutageBackoff.
	for failures, want := range []time.Duration{5 * time.Minute, time.Second, MaxOutageBackoff, MaxOutageBackoff} {
		if got := waitFor(5*time.Minute, failures, true); got != want {
			t.Errorf("waitFor(5m, %d, unreachable) = %v, want %v", failures, got, want)
		}
	}
	if got := waitFor(500*time.Millisecond, 3, true); got != 500*time.Millisecond {
		t.Errorf("waitFor(500ms, 3, unreachable) = %v, want the delay", got)
	}
}

func TestBroadcast(t *testing.T) {
	t.Parallel()
	var b Broadcast
	c1, c2 := b.C(), b.C()
	b.Notify()
	for i, c := range []<-chan struct{}{c1, c2} {
		select {
		case <-c:
		default:
			t.Errorf("channel %d not closed by Notify", i)
		}
	}
	select {
	case <-b.C():
		t.Error("a channel taken after Notify is already closed")
	default:
	}
	b.Notify()
	b.Notify() // no waiters: must not panic
}
