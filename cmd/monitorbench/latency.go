package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/crashmonitor/monitor/internal/bench"
	"github.com/crashmonitor/monitor/internal/crashgen"
)

// Pacing and polling of the latency scenarios.
const (
	// arrivalGapMin and arrivalGapMax bound the pause between two new
	// pairs (uniform, from a fixed seed).
	arrivalGapMin = 50 * time.Millisecond
	arrivalGapMax = 100 * time.Millisecond
	// arrivalPoll is how often the jobs table is asked about the pairs
	// written and not yet queued.
	arrivalPoll = 2 * time.Millisecond
	// arrivalPolledDelay is standardLoopDelay when the arrival is measured
	// without inbox events (inboxEvents: false): the periodic walk finds
	// each pair.
	arrivalPolledDelay = "500ms"
	// arrivalTimeout fails a pair that is not queued within it.
	arrivalTimeout = 30 * time.Second
	// priorityPoll is MeasureLatency's polling interval.
	priorityPoll = 500 * time.Microsecond
	// startTimeout bounds the monitor's first pass.
	startTimeout = time.Minute
)

// arrivalScenario measures, while the monitor idles (standardLoopDelay five
// minutes), how long each of n new pairs, written one at a time as a
// collector writes them, takes from the moment its json (the last file) is
// written to the moment its jobs row exists. Without events, the monitor
// runs with inboxEvents false and standardLoopDelay arrivalPolledDelay: what
// a tree whose writers raise no events here (NFS) gets.
func (h *harness) arrivalScenario(ctx context.Context, n int, events bool) error {
	name := figArrival
	if !events {
		name = figArrivalPolled
	}
	dir, err := h.dir(name)
	if err != nil {
		return err
	}
	defer h.removeTree(dir)
	root := filepath.Join(dir, "toBeProcessed")
	store := newTree(root)
	db, err := h.registeredDB(ctx, "bench-processor-", liveProcessors)
	if err != nil {
		return err
	}
	defer db.close()
	// Live mode: each pair submitted when written, into the current slot.
	g, err := crashgen.New(crashgen.Options{Count: n + 1, Seed: 6})
	if err != nil {
		return err
	}
	dump := make([]byte, h.opts.dumpSize)
	write := func(i int) (string, time.Time, error) {
		id := g.ID(i)
		at := time.Now().UTC()
		json := fmt.Appendf(nil, `{"uuid":%q,"ProductName":"MonitorBench","submitted_timestamp":%q}`+"\n",
			id, at.Format(time.RFC3339Nano))
		_, err := store.NewEntry(id, "webhead01", at, dump, json)
		return id, time.Now(), err
	}

	cfg := db.monitorConfig(dir, root)
	if !events {
		cfg["inboxEvents"], cfg["standardLoopDelay"] = "false", arrivalPolledDelay
	}
	m, err := h.startMonitor(dir, cfg)
	if err != nil {
		return err
	}
	defer m.kill()
	// A first pair, queued, tells that the monitor runs and idles.
	first, _, err := write(0)
	if err != nil {
		return err
	}
	err = waitFor(ctx, m, 10*time.Millisecond, startTimeout, "the first pair queued", func() (bool, error) {
		found, err := db.bench.QueuedAmong(ctx, []string{first})
		return len(found) == 1, err
	})
	if err != nil {
		return err
	}

	h.step("arrival: %d new pairs, one every %s to %s", n, arrivalGapMin, arrivalGapMax)
	type arrival struct {
		id      string
		written time.Time
	}
	written := make(chan arrival, n)
	var latencies []time.Duration
	grp, gctx := errgroup.WithContext(ctx)
	grp.Go(func() error {
		defer close(written)
		gaps := rand.New(rand.NewPCG(6, 6))
		timer := time.NewTimer(0)
		defer timer.Stop()
		for i := 1; i <= n; i++ {
			select {
			case <-gctx.Done():
				return gctx.Err()
			case <-timer.C:
			}
			id, at, err := write(i)
			if err != nil {
				return err
			}
			written <- arrival{id, at}
			timer.Reset(arrivalGapMin + time.Duration(gaps.Int64N(int64(arrivalGapMax-arrivalGapMin))))
		}
		return nil
	})
	grp.Go(func() error {
		waiting := map[string]time.Time{}
		tick := time.NewTicker(arrivalPoll)
		defer tick.Stop()
		in := written
		for in != nil || len(waiting) > 0 {
			select {
			case <-gctx.Done():
				return gctx.Err()
			case a, ok := <-in:
				if !ok {
					in = nil
					continue
				}
				waiting[a.id] = a.written
				continue
			case <-tick.C:
			}
			if len(waiting) == 0 {
				continue
			}
			ids := make([]string, 0, len(waiting))
			for id := range waiting {
				ids = append(ids, id)
			}
			found, err := db.bench.QueuedAmong(gctx, ids)
			if err != nil {
				return err
			}
			now := time.Now()
			for _, id := range found {
				latencies = append(latencies, now.Sub(waiting[id]))
				delete(waiting, id)
			}
			for id, at := range waiting {
				if now.Sub(at) > arrivalTimeout {
					return fmt.Errorf("pair %s not queued within %s%s", id, arrivalTimeout, m.tail())
				}
			}
			if err := m.alive(); err != nil {
				return err
			}
		}
		return nil
	})
	if err := grp.Wait(); err != nil {
		return err
	}
	if err := m.stop(); err != nil {
		return err
	}
	l := summarize(latencies)
	if !events {
		f := l.figure(figArrivalPolled, fmt.Sprintf("arrival latency, no inbox events (%d new pairs)", n), arrivalPolledMax)
		f.Note = fmt.Sprintf("json written to jobs row, polled every %s; inboxEvents false, standardLoopDelay %s: the periodic walk finds each pair; max %s",
			formatDuration(arrivalPoll), arrivalPolledDelay, formatDuration(l.max))
		h.figures[figArrivalPolled] = f
		return nil
	}
	f := l.figure(figArrival, fmt.Sprintf("arrival latency, inbox events on (%d new pairs, monitor idle)", n), arrivalMax)
	f.Note = fmt.Sprintf("json written to jobs row, polled every %s; standardLoopDelay 5 min; max %s",
		formatDuration(arrivalPoll), formatDuration(l.max))
	h.figures[figArrival] = f
	return nil
}

// priorityScenario measures the priority latency through `monitor run` with
// priorityLoopDelay a minute: n requests made one at a time, each after the
// previous one was resolved, alternately for a crash only in the deferred
// tree (looked up, queued with priority) and for one the scanner has
// already queued (priority raised, owner told). With load, that many
// unfinished jobs are in jobs first (one COPY), as after an outage.
func (h *harness) priorityScenario(ctx context.Context, n, load int) error {
	name := figPriority
	if load > 0 {
		name = figPriority1M
	}
	dir, err := h.dir(name)
	if err != nil {
		return err
	}
	defer h.removeTree(dir)
	db, err := h.newDB(ctx)
	if err != nil {
		return err
	}
	defer db.close()
	_, owners, err := db.register(ctx, "bench-processor-", liveProcessors)
	if err != nil {
		return err
	}
	if load > 0 {
		if err := h.loadJobs(ctx, db, load, owners); err != nil {
			return err
		}
	}
	cfg := db.monitorConfig(dir, filepath.Join(dir, "toBeProcessed"))
	queuedGen, err := h.backlogGenerator(n/2, 3)
	if err != nil {
		return err
	}
	deferredGen, err := h.backlogGenerator(n-n/2, 4)
	if err != nil {
		return err
	}
	if _, err := h.generate(ctx, "priority", cfg["storageRoot"], queuedGen); err != nil {
		return err
	}
	if _, err := h.generate(ctx, "priority", cfg["deferredStorageRoot"], deferredGen); err != nil {
		return err
	}

	m, err := h.startMonitor(dir, cfg)
	if err != nil {
		return err
	}
	defer m.kill()
	err = waitFor(ctx, m, 20*time.Millisecond, startTimeout, "the standard tree queued", func() (bool, error) {
		c, err := db.bench.JobCount(ctx)
		return c == int64(load+n/2), err
	})
	if err != nil {
		return err
	}
	ids := make([]string, 0, n)
	for i := range n - n/2 {
		ids = append(ids, deferredGen.ID(i))
		if i < n/2 {
			ids = append(ids, queuedGen.ID(i))
		}
	}
	h.step("priority: %d requests, one at a time", n)
	ds, err := bench.MeasurePriorityLatency(ctx, db.jobs, db.bench, ids, priorityPoll)
	if err != nil {
		return err
	}
	// Every request resolved, none dropped: the deferred crashes are jobs.
	found, err := db.bench.QueuedAmong(ctx, ids)
	if err != nil {
		return err
	}
	if len(found) != n {
		return fmt.Errorf("%d of the %d requested crashes have a job%s", len(found), n, m.tail())
	}
	if err := m.stop(); err != nil {
		return err
	}
	l := summarize(ds)
	label := fmt.Sprintf("priority latency (%s requests)", formatInt(int64(n)))
	if load > 0 {
		label = fmt.Sprintf("priority latency, %s unfinished jobs (%s requests)", formatInt(int64(load)), formatInt(int64(n)))
		h.scaling = append(h.scaling, ScaleRow{Scenario: "priority p99", Pairs: load, P99ms: ms(l.p99),
			Note: "unfinished jobs in the table; " + formatInt(int64(n)) + " requests"})
	}
	f := l.figure(name, label, priorityMax)
	f.Note = fmt.Sprintf("insert to request gone, polled every %s; priorityLoopDelay 1 min; half deferred, half queued; max %s",
		formatDuration(priorityPoll), formatDuration(l.max))
	h.figures[name] = f
	return nil
}

// loadJobs puts n unfinished jobs, owned by owners in turn, into db's jobs
// table in COPYs of a 100,000 and analyzes it.
func (h *harness) loadJobs(ctx context.Context, db *scenarioDB, n int, owners []int64) error {
	g, err := crashgen.New(crashgen.Options{Count: n, Seed: 9})
	if err != nil {
		return err
	}
	h.step("priority: %s unfinished jobs copied into jobs first", formatInt(int64(n)))
	const batch = 100_000
	ids := make([]string, 0, batch)
	for i := 0; i < n; i += batch {
		ids = ids[:0]
		for j := i; j < min(i+batch, n); j++ {
			ids = append(ids, g.ID(j))
		}
		if _, err := db.bench.CopyJobs(ctx, ids, owners); err != nil {
			return err
		}
	}
	return db.bench.Analyze(ctx)
}
