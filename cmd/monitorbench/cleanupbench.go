package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"time"

	"github.com/crashmonitor/monitor/cleanup"
	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/crashgen"
	"github.com/crashmonitor/monitor/internal/procsim"
	"github.com/crashmonitor/monitor/scanner"
)

// Sizes of the processors' work in the setups.
const (
	// claimBatch is how many jobs a simulated processor claims and
	// finishes at once while setting up.
	claimBatch = 5000
	// enqueueBatch is the scanner's batch size, for queuing a dead
	// processor's jobs.
	enqueueBatch = 2000
	// failOneIn: one crash in this many fails its processing (by a hash of
	// its id), so the cleanup fills both archives.
	failOneIn = 20
)

// finishedBacklog writes n pairs into dir/toBeProcessed as collectors write
// them, queues them by a scanner pass and processes them (claimed, finished,
// one in failOneIn failing) through the processor protocol, in a fresh
// schema with live processors: a backlog of finished jobs for the cleanup.
func (h *harness) finishedBacklog(ctx context.Context, what, dir string, n int) (*crashstore.Store, *scenarioDB, error) {
	g, err := h.backlogGenerator(n, 5)
	if err != nil {
		return nil, nil, err
	}
	standard, err := h.generate(ctx, what, filepath.Join(dir, "toBeProcessed"), g)
	if err != nil {
		return nil, nil, err
	}
	db, err := h.newDB(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := h.finishAll(ctx, what, standard, db, n); err != nil {
		return nil, nil, errors.Join(err, db.close())
	}
	return standard, db, nil
}

// finishAll queues the n pairs of standard by a scanner pass and has live
// processors finish them.
func (h *harness) finishAll(ctx context.Context, what string, standard *crashstore.Store, db *scenarioDB, n int) error {
	sessions, _, err := db.register(ctx, "bench-processor-", liveProcessors)
	if err != nil {
		return err
	}
	h.step("%s: queuing and processing %s crashes", what, formatInt(int64(n)))
	queueing := time.Now()
	sc := scanner.New(scanner.Config{
		DelayFunc:   fixed(5 * time.Minute),
		CheckInFunc: fixed(checkIn),
		Settle:      time.Nanosecond, // the generator has finished writing
	}, standard, db.jobs, h.logger)
	res, err := sc.RunOnce(ctx)
	if err != nil {
		return fmt.Errorf("queue the crashes: %w", err)
	}
	if res.Queued != n {
		return fmt.Errorf("the scanner queued %d of %d crashes (%d incomplete)", res.Queued, n, res.Incomplete)
	}
	// Statistics, as autovacuum gathers them after such a change: the
	// processors' claims plan badly on a table never analyzed.
	if err := db.bench.Analyze(ctx); err != nil {
		return err
	}
	h.step("%s: queued in %s", what, formatDuration(time.Since(queueing)))
	processing := time.Now()
	finished := 0
	for _, p := range sessions {
		k, err := processAll(ctx, p)
		if err != nil {
			return err
		}
		finished += k
	}
	if finished != n {
		return fmt.Errorf("the processors finished %d of %d jobs", finished, n)
	}
	h.step("%s: processed in %s", what, formatDuration(time.Since(processing)))
	return db.bench.Analyze(ctx)
}

func fixed(d time.Duration) func() time.Duration { return func() time.Duration { return d } }

// cleanupScenario times one pass of the cleanup loop (cleanup.RunOnce, in
// this process) over n finished jobs whose pairs are archived into trees on
// the same file system (see finishedBacklog).
func (h *harness) cleanupScenario(ctx context.Context, n int) error {
	dir, err := h.dir("cleanup")
	if err != nil {
		return err
	}
	defer h.removeTree(dir)
	standard, db, err := h.finishedBacklog(ctx, "cleanup", dir, n)
	if err != nil {
		return err
	}
	defer db.close()
	archive := func(name string) *crashstore.Store {
		return newTree(filepath.Join(dir, name))
	}
	cl := cleanup.New(cleanup.Config{DelayFunc: fixed(5 * time.Minute)}, cleanup.Trees{
		Standard:   standard,
		Successful: archive("successful"),
		Failed:     archive("failed"),
	}, db.jobs, h.logger)
	h.step("cleanup: one pass over %s finished jobs", formatInt(int64(n)))
	began := time.Now()
	r, err := cl.RunOnce(ctx)
	if err != nil {
		return err
	}
	took := time.Since(began)
	if r.Archived != n || r.Rows != int64(n) || r.Incomplete+r.Missing+r.Failed != 0 {
		return fmt.Errorf("cleanup archived %d pairs (%d incomplete, %d missing, %d failed) and removed %d rows, want %d",
			r.Archived, r.Incomplete, r.Missing, r.Failed, r.Rows, n)
	}
	f := rateFigure(figCleanup, fmt.Sprintf("cleanup, archive on the same fs (%s jobs)", formatInt(int64(n))), n, took)
	f.Note = "cleanup RunOnce in-process: pairs renamed into the archives, rows deleted; " + formatDuration(took)
	h.figures[figCleanup] = f.judged(atLeast(10_000, "≥ 10,000 pairs/s"))
	return nil
}

// processAll claims and finishes every job of the processor p, failing one
// crash in failOneIn. It returns the number finished.
func processAll(ctx context.Context, p *procsim.Session) (int, error) {
	finished := 0
	for {
		c, err := p.ClaimJobs(ctx, claimBatch)
		if err != nil {
			return finished, err
		}
		if len(c.Jobs) == 0 {
			return finished, nil
		}
		results := make([]procsim.JobResult, len(c.Jobs))
		for i, j := range c.Jobs {
			results[i] = procsim.JobResult{ID: j.ID, Success: true}
			if fails(j.UUID) {
				results[i] = procsim.JobResult{ID: j.ID, Message: "monitorbench: simulated failure"}
			}
		}
		done, err := p.FinishJobs(ctx, results)
		if err != nil {
			return finished, err
		}
		finished += len(done)
	}
}

// fails decides, by a hash of the crash id, whether its processing fails.
func fails(id string) bool {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32()%failOneIn == 0
}

// deadMoveScenario times queue.ReapDeadProcessors moving the n jobs of a
// dead processor (a tenth of them started, half of those finished, as a
// processor at work leaves them) to three live ones.
func (h *harness) deadMoveScenario(ctx context.Context, n int) error {
	db, err := h.newDB(ctx)
	if err != nil {
		return err
	}
	defer db.close()
	dead, _, err := db.register(ctx, "bench-dead-", 1)
	if err != nil {
		return err
	}
	g, err := crashgen.New(crashgen.Options{Count: n, Seed: 8})
	if err != nil {
		return err
	}
	h.step("deadmove: queuing %s jobs to the processor that will die", formatInt(int64(n)))
	setup := time.Now()
	ids := make([]string, 0, enqueueBatch)
	for i := 0; i < n; i += enqueueBatch {
		ids = ids[:0]
		for j := i; j < min(i+enqueueBatch, n); j++ {
			ids = append(ids, g.ID(j))
		}
		if _, err := db.jobs.Enqueue(ctx, ids, 0, checkIn, nil); err != nil {
			return err
		}
	}
	if err := db.bench.Analyze(ctx); err != nil {
		return err
	}
	h.step("deadmove: queued in %s", formatDuration(time.Since(setup)))
	setup = time.Now()
	c, err := dead[0].ClaimJobs(ctx, n/10)
	if err != nil {
		return err
	}
	var results []procsim.JobResult
	for _, j := range c.Jobs[:len(c.Jobs)/2] {
		results = append(results, procsim.JobResult{ID: j.ID, Success: !fails(j.UUID)})
	}
	if _, err := dead[0].FinishJobs(ctx, results); err != nil {
		return err
	}
	h.step("deadmove: claimed and finished in %s", formatDuration(time.Since(setup)))
	// Its last heartbeat in 1999: dead.
	if err := dead[0].CleanStop(ctx); err != nil {
		return err
	}
	if _, _, err := db.register(ctx, "bench-processor-", liveProcessors); err != nil {
		return err
	}

	if err := db.bench.Analyze(ctx); err != nil {
		return err
	}
	began := time.Now()
	r, err := db.jobs.ReapDeadProcessors(ctx, checkIn)
	if err != nil {
		return err
	}
	took := time.Since(began)
	if len(r.Dead) != 1 || r.MovedJobs != int64(n) {
		return fmt.Errorf("reaped %v and moved %d jobs, want 1 processor and %d jobs", r.Dead, r.MovedJobs, n)
	}
	h.figures[figDeadMove] = Figure{
		Name:    figDeadMove,
		Label:   fmt.Sprintf("dead processor's jobs moved (%s jobs)", formatInt(int64(n))),
		Value:   took.Seconds(),
		Unit:    "s",
		Shown:   formatDuration(took),
		Note:    fmt.Sprintf("ReapDeadProcessors, one transaction, to %d live processors: %s jobs/s", liveProcessors, formatInt(int64(perSecond(n, took)))),
		Details: map[string]float64{"jobs": float64(n), "seconds": took.Seconds()},
	}.judged(atMost(2, "≤ 2 s"))
	return nil
}
