package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"time"

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

func fixed(d time.Duration) func() time.Duration { return func() time.Duration { return d } }

// cleanupScenario times the cleanup of n finished jobs through `monitor
// run`, from the exec to the last row gone, their pairs archived into trees
// on the same file system: the pairs are written as collectors write them,
// queued by a scanner pass (in this process) and processed (claimed,
// finished) through the processor protocol first, so that the monitor
// starts on a finished backlog with an empty inbox. It returns the scaling
// table's row and rows removed over time.
func (h *harness) cleanupScenario(ctx context.Context, n int) (ScaleRow, []Point, error) {
	var row ScaleRow
	dir, err := h.dir("cleanup")
	if err != nil {
		return row, nil, err
	}
	defer h.removeTree(dir)
	g, err := h.backlogGenerator(n, 5)
	if err != nil {
		return row, nil, err
	}
	root := filepath.Join(dir, "toBeProcessed")
	standard, err := h.generate(ctx, "cleanup", root, g)
	if err != nil {
		return row, nil, err
	}
	db, err := h.newDB(ctx)
	if err != nil {
		return row, nil, err
	}
	defer db.close()
	sessions, _, err := db.register(ctx, "bench-processor-", liveProcessors)
	if err != nil {
		return row, nil, err
	}

	h.step("cleanup: queuing and processing %s crashes", formatInt(int64(n)))
	setup := time.Now()
	sc := scanner.New(scanner.Config{
		DelayFunc:   fixed(5 * time.Minute),
		CheckInFunc: fixed(checkIn),
		Settle:      time.Nanosecond, // the generator has finished writing
	}, standard, db.jobs, h.logger)
	res, err := sc.RunOnce(ctx)
	if err != nil {
		return row, nil, fmt.Errorf("queue the crashes: %w", err)
	}
	if res.Queued != n {
		return row, nil, fmt.Errorf("the scanner queued %d of %d crashes (%d incomplete)", res.Queued, n, res.Incomplete)
	}
	// Statistics, as autovacuum gathers them after such a change: the
	// processors' claims plan badly on a table never analyzed.
	if err := db.bench.Analyze(ctx); err != nil {
		return row, nil, err
	}
	finished := 0
	for _, p := range sessions {
		k, err := processAll(ctx, p)
		if err != nil {
			return row, nil, err
		}
		finished += k
	}
	if finished != n {
		return row, nil, fmt.Errorf("the processors finished %d of %d jobs", finished, n)
	}
	if err := db.bench.Analyze(ctx); err != nil {
		return row, nil, err
	}
	h.step("cleanup: %s crashes queued and processed in %s; monitor run", formatInt(int64(n)), formatDuration(time.Since(setup)))

	began := time.Now()
	m, err := h.startMonitor(dir, db.monitorConfig(dir, root))
	if err != nil {
		return row, nil, err
	}
	defer m.kill()
	stopSampling := sampler(ctx, began, func(ctx context.Context) (int64, error) {
		left, err := db.bench.JobCount(ctx)
		return int64(n) - left, err
	})
	err = waitFor(ctx, m, drainPoll, time.Minute+time.Duration(n/drainMinRate)*time.Second, "every row gone", func() (bool, error) {
		left, err := db.bench.JobCount(ctx)
		return left == 0, err
	})
	took := time.Since(began)
	timeline, serr := stopSampling()
	if err := errors.Join(err, serr); err != nil {
		return row, nil, err
	}
	if err := m.stop(); err != nil {
		return row, nil, err
	}
	timeline = append(timeline, Point{T: took.Seconds(), V: float64(n)})
	h.step("cleanup: %s rows gone %s after the exec", formatInt(int64(n)), formatDuration(took))
	return rateRow("cleanup", n, took, "monitor run, exec to the last row gone; archives on the same fs"), timeline, nil
}

// cleanupScale runs the cleanup at each size; the largest gives the table's
// figure and the chart's line.
func (h *harness) cleanupScale(ctx context.Context, ns []int) error {
	for i, n := range ns {
		row, timeline, err := h.cleanupScenario(ctx, n)
		if err != nil {
			return err
		}
		h.scaling = append(h.scaling, row)
		if i < len(ns)-1 {
			continue
		}
		h.timelines.cleanup = timeline
		f := rateFigure(figCleanup, fmt.Sprintf("cleanup, monitor run (%s finished jobs)", formatInt(int64(n))), n, time.Duration(row.Seconds*float64(time.Second)))
		f.Note = "exec to the last row gone; pairs renamed into archives on the same fs: " + formatSeconds(row.Seconds)
		h.figures[figCleanup] = f.judged(cleanupMin)
	}
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

// deadMoveScenario times `monitor run` moving the n jobs of a dead
// processor (a tenth of them started, half of those finished, as a
// processor at work leaves them) to three live ones, from the exec.
func (h *harness) deadMoveScenario(ctx context.Context, n int) error {
	db, err := h.newDB(ctx)
	if err != nil {
		return err
	}
	defer db.close()
	dead, deadIDs, err := db.register(ctx, "bench-dead-", 1)
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
	dir, err := h.dir("deadmove")
	if err != nil {
		return err
	}
	defer h.removeTree(dir)
	cfg := db.monitorConfig(dir, filepath.Join(dir, "toBeProcessed"))
	if err := os.MkdirAll(cfg["storageRoot"], 0o755); err != nil {
		return err
	}
	// The sweep runs at start: the clock runs from the exec to the poll that
	// finds the dead processor owning nothing.
	began := time.Now()
	m, err := h.startMonitor(dir, cfg)
	if err != nil {
		return err
	}
	defer m.kill()
	err = waitFor(ctx, m, 5*time.Millisecond, startTimeout, "the dead processor's jobs moved", func() (bool, error) {
		left, err := db.bench.OwnedCount(ctx, deadIDs[0])
		return left == 0, err
	})
	took := time.Since(began)
	if err != nil {
		return err
	}
	if err := m.stop(); err != nil {
		return err
	}
	h.figures[figDeadMove] = Figure{
		Name:    figDeadMove,
		Label:   fmt.Sprintf("dead processor's jobs moved, monitor run (%s jobs)", formatInt(int64(n))),
		Value:   took.Seconds(),
		Unit:    "s",
		Shown:   formatDuration(took),
		Note:    fmt.Sprintf("exec to the dead processor owning nothing (the sweep at start), to %d live processors", liveProcessors),
		Details: map[string]float64{"jobs": float64(n), "seconds": took.Seconds()},
	}.judged(deadMoveMax)
	return nil
}
