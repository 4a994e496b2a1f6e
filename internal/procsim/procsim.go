// Package procsim is a simulated crash processor: a stand-in for the real
// Socorro processors in the demo, the benchmarks and the end-to-end tests. It
// does exactly what the processor protocol says a processor does, through
// Session: it registers, heartbeats, claims its priority work
// then its own jobs (oldest first), reads each crash's json and dump from the
// standard tree or else the deferred tree (never moving or deleting them),
// waits a configurable work time, and records success or, for a configurable
// share of crashes, failure. It stops cleanly when its context ends, or
// "crashes" on request: it stops heartbeating and working at once, leaving
// its claimed jobs started, as a hung or killed processor does.
package procsim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
)

// Defaults for the Config fields left zero.
const (
	DefaultConcurrency   = 4
	DefaultIdle          = 500 * time.Millisecond
	DefaultFinishBatch   = 100
	DefaultFinishEvery   = 100 * time.Millisecond
	DefaultCheckIn       = 5 * time.Minute
	minHeartbeatInterval = 10 * time.Millisecond
	// stopTimeout bounds the clean stop's database work.
	stopTimeout = 10 * time.Second
)

// ErrCrashed is what Run returns after Crash: the processor stopped without
// a clean stop.
var ErrCrashed = errors.New("processor crashed on request (no clean stop)")

// Config is a simulated processor's behaviour.
type Config struct {
	// Name is the processors.name it registers as (a classic processor
	// uses <hostname>_<pid>).
	Name string
	// CheckIn is processorCheckInTime: it heartbeats three times per
	// CheckIn, so it stays live through a slow statement.
	CheckIn time.Duration
	// WorkTime is how long each job takes, per worker.
	WorkTime time.Duration
	// FailRatio is the share of crashes whose processing fails (0..1).
	// The outcome is a function of the crash id and Seed, so a crash that
	// fails once fails again wherever it is processed.
	FailRatio float64
	// Seed varies which crashes fail.
	Seed uint64
	// Concurrency is the number of workers; jobs are claimed this many at
	// a time, when the previous batch is handed out.
	Concurrency int
	// Idle is the pause when there was nothing to claim (the classic
	// processorLoopTime).
	Idle time.Duration
	// FinishBatch and FinishEvery bound how many results wait, and how
	// long, before they are recorded in one statement.
	FinishBatch int
	FinishEvery time.Duration
	// Standard is the standard tree; Deferred, when not nil, the deferred
	// tree searched when a crash is not in the standard one.
	Standard, Deferred *crashstore.Store
	// Recorded, when not nil, is told each result whose finish was
	// committed, once, after the commit: the fault-injection suite counts
	// how often each crash was processed. It runs on the goroutine that
	// records results and must not block.
	Recorded func(JobResult)
}

// Stats counts what a processor did. Recorded counts are committed results.
type Stats struct {
	Claimed         int64 // jobs claimed
	Priority        int64 // of which from the priority table
	Succeeded       int64 // recorded successes
	Failed          int64 // recorded failures
	NotFound        int64 // of the failures: files in neither tree
	Dropped         int64 // results not recorded: the job had moved away
	SkippedPriority int64 // priority ids skipped (job missing or started)
	Reregistered    int64 // registrations after being reaped
}

// Processor is one simulated processor.
type Processor struct {
	cfg     Config
	session *Session
	logger  *slog.Logger

	crashOnce sync.Once
	crashed   chan struct{}
	// regMu serialises registrations after a reap: the heartbeat and the
	// dispatcher may both find out at once.
	regMu sync.Mutex

	claimed, priority, succeeded, failed, notFound, dropped, skipped, reregistered atomic.Int64
}

// New returns a processor working through session. Nothing happens until
// Run.
func New(cfg Config, session *Session, logger *slog.Logger) *Processor {
	cfg.CheckIn = cmp.Or(cfg.CheckIn, DefaultCheckIn)
	cfg.Concurrency = cmp.Or(cfg.Concurrency, DefaultConcurrency)
	cfg.Idle = cmp.Or(cfg.Idle, DefaultIdle)
	cfg.FinishBatch = cmp.Or(cfg.FinishBatch, DefaultFinishBatch)
	cfg.FinishEvery = cmp.Or(cfg.FinishEvery, DefaultFinishEvery)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Processor{cfg: cfg, session: session, logger: logger, crashed: make(chan struct{})}
}

// ID returns the processor's id (zero before it registered).
func (p *Processor) ID() int64 { return p.session.ID() }

// Stats returns the counts so far.
func (p *Processor) Stats() Stats {
	return Stats{
		Claimed: p.claimed.Load(), Priority: p.priority.Load(),
		Succeeded: p.succeeded.Load(), Failed: p.failed.Load(), NotFound: p.notFound.Load(),
		Dropped: p.dropped.Load(), SkippedPriority: p.skipped.Load(), Reregistered: p.reregistered.Load(),
	}
}

// Crash simulates a crash: from now on the processor writes nothing to the
// database (no heartbeat, no claim, no result, no clean stop) and Run
// returns ErrCrashed. Its claimed jobs stay started until the monitor reaps
// it. Safe to call more than once, from any goroutine.
func (p *Processor) Crash() {
	p.crashOnce.Do(func() { close(p.crashed) })
}

// Run registers the processor and works until ctx is done, then stops
// cleanly: it stops claiming, lets each worker finish its job, records the
// results and does the clean stop. It returns nil after a clean stop,
// ErrCrashed after Crash, or the error that stopped it (registration failed,
// the database went away).
func (p *Processor) Run(ctx context.Context) error {
	id, err := p.session.Register(ctx, p.cfg.Name)
	if err != nil {
		return err
	}
	p.logger.InfoContext(ctx, "processor registered", "name", p.cfg.Name, "id", id,
		"concurrency", p.cfg.Concurrency, "work_time", p.cfg.WorkTime, "fail_ratio", p.cfg.FailRatio)

	// work ends on a stop (ctx), a crash or a fatal error; db ends only on
	// a crash or a fatal error, so that results of finished work are still
	// recorded during a clean stop.
	dbCtx, dbCancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer dbCancel(nil)
	workCtx, workCancel := context.WithCancelCause(ctx)
	defer workCancel(nil)
	fatal := func(err error) {
		dbCancel(err)
		workCancel(err)
	}
	go func() {
		select {
		case <-p.crashed:
			fatal(ErrCrashed)
		case <-dbCtx.Done():
		}
	}()

	// The heartbeat goes on while the last results are recorded.
	hbCtx, hbCancel := context.WithCancel(dbCtx)
	defer hbCancel()
	jobs := make(chan ClaimedJob)
	results := make(chan JobResult, p.cfg.Concurrency)
	var workers, background sync.WaitGroup
	background.Go(func() { p.heartbeat(hbCtx, fatal) })
	for range p.cfg.Concurrency {
		workers.Go(func() { p.work(dbCtx, jobs, results) })
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		p.finish(dbCtx, results, fatal)
	}()

	p.dispatch(workCtx, jobs, fatal)
	close(jobs)
	workers.Wait()
	close(results)
	<-finished
	hbCancel()
	background.Wait()

	if cause := context.Cause(dbCtx); cause != nil {
		if errors.Is(cause, ErrCrashed) {
			p.logger.WarnContext(ctx, "processor crashed on request: heartbeat and work stopped, no clean stop",
				"id", p.ID(), "stats", fmt.Sprintf("%+v", p.Stats()))
		}
		return cause
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if err := p.session.CleanStop(sctx); err != nil {
		return err
	}
	p.logger.InfoContext(ctx, "processor stopped cleanly", "id", p.ID(),
		"stats", fmt.Sprintf("%+v", p.Stats()))
	return nil
}

// heartbeat checks in three times per CheckIn until ctx is done. A
// processor reaped meanwhile (judged dead) registers again under a new id.
func (p *Processor) heartbeat(ctx context.Context, fatal func(error)) {
	interval := max(p.cfg.CheckIn/3, minHeartbeatInterval)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		id := p.ID()
		err := p.session.Heartbeat(ctx)
		if errors.Is(err, ErrProcessorGone) {
			err = p.reregister(ctx, id)
		}
		if err != nil && ctx.Err() == nil {
			fatal(err)
			return
		}
	}
}

// reregister registers again after the monitor reaped processor old, unless
// that was done already.
func (p *Processor) reregister(ctx context.Context, old int64) error {
	p.regMu.Lock()
	defer p.regMu.Unlock()
	if p.ID() != old {
		return nil
	}
	id, err := p.session.Register(ctx, p.cfg.Name)
	if err != nil {
		return err
	}
	if id != old {
		p.reregistered.Add(1)
		p.logger.WarnContext(ctx, "the monitor reaped this processor (judged dead); registered again",
			"old_id", old, "id", id)
	}
	return nil
}

// dispatch claims jobs, Concurrency at a time, and hands them to the
// workers, until ctx is done.
func (p *Processor) dispatch(ctx context.Context, jobs chan<- ClaimedJob, fatal func(error)) {
	for ctx.Err() == nil {
		id := p.ID()
		c, err := p.session.ClaimJobs(ctx, p.cfg.Concurrency)
		if errors.Is(err, ErrProcessorGone) {
			err = p.reregister(ctx, id)
			if err == nil {
				continue
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				fatal(err)
			}
			return
		}
		for _, uuid := range c.SkippedPriority {
			p.skipped.Add(1)
			p.logger.InfoContext(ctx, "priority job skipped: no job, or already started", "uuid", uuid)
		}
		if len(c.Jobs) == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(p.cfg.Idle):
			}
			continue
		}
		p.claimed.Add(int64(len(c.Jobs)))
		for _, j := range c.Jobs {
			if j.Priority {
				p.priority.Add(1)
				p.logger.InfoContext(ctx, "priority job claimed", "uuid", j.UUID, "job", j.ID)
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				// Claimed but never worked on: the job stays started
				// until the monitor reaps this processor (a clean stop
				// makes it dead at once) or it registers again.
				return
			}
		}
	}
}
