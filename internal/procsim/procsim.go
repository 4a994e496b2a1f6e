// Package procsim is a simulated crash processor: a stand-in for the real
// Socorro processors in the demo, the benchmarks and the end-to-end tests. It
// does exactly what CONTRACT section 3 says a processor does, through
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
	"hash/fnv"
	"log/slog"
	"os"
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

// work processes jobs until the channel closes or ctx ends (a crash).
func (p *Processor) work(ctx context.Context, jobs <-chan ClaimedJob, results chan<- JobResult) {
	for j := range jobs {
		r, ok := p.process(ctx, j)
		if !ok {
			return
		}
		select {
		case results <- r:
		case <-ctx.Done():
			return
		}
	}
}

// process reads a crash's pair, takes WorkTime, and decides its outcome. It
// reports false when ctx ended first.
func (p *Processor) process(ctx context.Context, j ClaimedJob) (JobResult, bool) {
	r := JobResult{ID: j.ID, Success: true}
	size, err := p.read(ctx, j.UUID)
	switch {
	case errors.Is(err, crashstore.ErrNotFound):
		p.notFound.Add(1)
		r.Success, r.Message = false, "crash files not found in the standard or deferred storage"
	case err != nil:
		r.Success, r.Message = false, "cannot read the crash: "+err.Error()
	case p.fails(j.UUID):
		r.Success, r.Message = false, fmt.Sprintf("simulated processing failure (fail ratio %g)", p.cfg.FailRatio)
	}
	if p.cfg.WorkTime > 0 {
		t := time.NewTimer(p.cfg.WorkTime)
		select {
		case <-ctx.Done():
			t.Stop()
			return r, false
		case <-t.C:
		}
	}
	if ctx.Err() != nil {
		return r, false
	}
	p.logger.DebugContext(ctx, "job processed", "uuid", j.UUID, "job", j.ID, "priority", j.Priority,
		"success", r.Success, "dump_bytes", size)
	return r, true
}

// read reads the crash's json and dump, from the standard tree or else the
// deferred one, and returns the dump's size. It never changes the trees.
func (p *Processor) read(ctx context.Context, uuid string) (int, error) {
	e, err := p.cfg.Standard.Lookup(ctx, uuid)
	if errors.Is(err, crashstore.ErrNotFound) && p.cfg.Deferred != nil {
		e, err = p.cfg.Deferred.Lookup(ctx, uuid)
	}
	if err != nil {
		return 0, err
	}
	if _, err := os.ReadFile(e.JSONPath); err != nil {
		return 0, err
	}
	dump, err := os.ReadFile(e.DumpPath)
	return len(dump), err
}

// fails reports whether the crash's simulated processing fails: a hash of
// the seed and the id below FailRatio.
func (p *Processor) fails(uuid string) bool {
	return Fails(uuid, p.cfg.Seed, p.cfg.FailRatio)
}

// Fails reports whether a processor with this seed and fail ratio fails the
// crash uuid. Tests and the demo use it to know the expected failures.
func Fails(uuid string, seed uint64, ratio float64) bool {
	if ratio <= 0 {
		return false
	}
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(seed >> (8 * i))
	}
	h.Write(b[:])
	h.Write([]byte(uuid))
	return float64(h.Sum64()>>11)/(1<<53) < ratio
}

// finish records results in batches until the channel closes (then the
// rest, during a clean stop) or ctx ends (a crash: the rest is lost, as in
// a killed process).
func (p *Processor) finish(ctx context.Context, results <-chan JobResult, fatal func(error)) {
	var batch []JobResult
	t := time.NewTicker(p.cfg.FinishEvery)
	defer t.Stop()
	flush := func() bool {
		if len(batch) == 0 {
			return true
		}
		if err := p.record(ctx, batch); err != nil {
			if ctx.Err() == nil {
				fatal(err)
			}
			return false
		}
		batch = batch[:0]
		return true
	}
	for {
		select {
		case <-ctx.Done():
			return
		case r, ok := <-results:
			if !ok {
				flush()
				return
			}
			batch = append(batch, r)
			if len(batch) >= p.cfg.FinishBatch && !flush() {
				return
			}
		case <-t.C:
			if !flush() {
				return
			}
		}
	}
}

// record finishes a batch, trying again a few times after an error (a
// deadlock with a concurrent reap, for instance).
func (p *Processor) record(ctx context.Context, batch []JobResult) error {
	var done []int64
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		if done, err = p.session.FinishJobs(ctx, batch); err == nil {
			break
		}
		p.logger.WarnContext(ctx, "recording results failed; trying again", "jobs", len(batch), "error", err)
	}
	if err != nil {
		return err
	}
	recorded := make(map[int64]bool, len(done))
	for _, id := range done {
		recorded[id] = true
	}
	var ok, failed, dropped int64
	for _, r := range batch {
		switch {
		case !recorded[r.ID]:
			dropped++
		case r.Success:
			ok++
		default:
			failed++
		}
	}
	p.succeeded.Add(ok)
	p.failed.Add(failed)
	p.dropped.Add(dropped)
	p.logger.InfoContext(ctx, "finished jobs", "succeeded", ok, "failed", failed, "dropped", dropped,
		"total_succeeded", p.succeeded.Load(), "total_failed", p.failed.Load())
	if dropped > 0 {
		p.logger.WarnContext(ctx, "results dropped: those jobs were moved to another processor", "dropped", dropped)
	}
	return nil
}
