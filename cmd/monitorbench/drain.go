package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/bench"
	"github.com/crashmonitor/monitor/internal/crashgen"
)

// Polling of the drain's progress.
const (
	drainPoll = 20 * time.Millisecond
	// drainMinRate bounds the wait for a drain: slower than this is a
	// failure, not a figure.
	drainMinRate = 500 // pairs/s
)

// drainScenario generates the backlog, times the bare walk of its inbox
// (walk), then times `monitor run` draining it (drain) and reads the
// monitor's peak memory (memory).
func (h *harness) drainScenario(ctx context.Context, g *crashgen.Generator) error {
	n := g.Options().Count
	dir, err := h.dir("drain")
	if err != nil {
		return err
	}
	defer h.removeTree(dir)
	root := filepath.Join(dir, "toBeProcessed")
	store, err := h.generate(ctx, "drain", root, g)
	if err != nil {
		return err
	}

	if h.opts.runs("walk") {
		began := time.Now()
		links, err := countInbox(ctx, store)
		if err != nil {
			return fmt.Errorf("walk: %w", err)
		}
		took := time.Since(began)
		if links != n {
			return fmt.Errorf("walk: %d inbox links, want %d", links, n)
		}
		f := rateFigure(figWalk, fmt.Sprintf("bare inbox walk (%s links, no DB)", formatInt(int64(n))), n, took)
		f.Note = "crashstore Walk counting links: " + formatDuration(took)
		h.figures[figWalk] = f
		h.step("walk: %s links in %s", formatInt(int64(n)), formatDuration(took))
	}
	if h.opts.runs("drain") {
		d, err := h.drain(ctx, dir, root, store, n, false)
		if err != nil {
			return err
		}
		f := rateFigure(figDrain, fmt.Sprintf("backlog drain, monitor run (%s pairs)", formatInt(int64(n))), n, d.took)
		f.Note = fmt.Sprintf("%s from exec to the last job and an empty inbox; first commit after %s; %d live processors",
			formatDuration(d.took), formatDuration(d.firstCommit), liveProcessors)
		f.Details["first_commit_seconds"] = d.firstCommit.Seconds()
		h.figures[figDrain] = f
		mib := float64(d.peak) / (1 << 20)
		h.figures[figMemory] = Figure{
			Name:    figMemory,
			Label:   fmt.Sprintf("monitor peak memory, drain of %s (VmHWM)", formatInt(int64(n))),
			Value:   mib,
			Unit:    "MiB",
			Shown:   fmt.Sprintf("%.1f MiB", mib),
			Details: map[string]float64{"bytes": float64(d.peak), "pairs": float64(n)},
		}.judged(atMost(100, "≤ 100 MiB"))
		h.step("drain: %s pairs in %s; peak memory %.1f MiB", formatInt(int64(n)), formatDuration(d.took), mib)
	}
	if !h.opts.runs("scraped") {
		return nil
	}
	// The same backlog again, drained while a Prometheus scrapes /metrics
	// ten times a second.
	h.removeTree(root)
	if store, err = h.generate(ctx, "scraped", root, g); err != nil {
		return err
	}
	// A directory of its own for the second monitor's configuration and
	// log, so that its address is not read from the first one's log.
	runDir := filepath.Join(dir, "scraped")
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	d, err := h.drain(ctx, runDir, root, store, n, true)
	if err != nil {
		return err
	}
	f := rateFigure(figScraped, fmt.Sprintf("backlog drain, /metrics scraped 10×/s (%s pairs)", formatInt(int64(n))), n, d.took)
	f.Note = fmt.Sprintf("%s; %d scrapes, slowest %s", formatDuration(d.took), d.scrapes, formatDuration(d.slowestScrape))
	f.Details["scrapes"] = float64(d.scrapes)
	h.figures[figScraped] = f
	h.step("scraped: %s pairs in %s with %d scrapes", formatInt(int64(n)), formatDuration(d.took), d.scrapes)
	return nil
}

// drained is what one drain measured.
type drained struct {
	took          time.Duration
	firstCommit   time.Duration // from the exec to the first job row seen
	peak          int64         // VmHWM, bytes
	scrapes       int
	slowestScrape time.Duration
}

// scrapeEvery is how often the scraped drain asks for /metrics.
const scrapeEvery = 100 * time.Millisecond

// drain times `monitor run` draining the n pairs of store (its tree at root)
// into a fresh schema with live processors, from the exec to every pair's
// jobs row and an empty inbox; the monitor's configuration, log and archives
// are in dir. With scrape, /metrics is fetched every scrapeEvery meanwhile.
func (h *harness) drain(ctx context.Context, dir, root string, store *crashstore.Store, n int, scrape bool) (drained, error) {
	var d drained
	db, err := h.registeredDB(ctx, "bench-processor-", liveProcessors)
	if err != nil {
		return d, err
	}
	defer db.close()
	h.step("drain: monitor run on %s pairs", formatInt(int64(n)))
	began := time.Now()
	m, err := h.startMonitor(dir, db.monitorConfig(dir, root))
	if err != nil {
		return d, err
	}
	defer m.kill()
	stopScraping := func() error { return nil }
	if scrape {
		addr, err := m.httpAddr(ctx, startTimeout)
		if err != nil {
			return d, err
		}
		stopScraping = scrapeMetrics(ctx, "http://"+addr+"/metrics", &d)
	}
	timeout := time.Minute + time.Duration(n/drainMinRate)*time.Second
	err = waitFor(ctx, m, drainPoll, timeout, fmt.Sprintf("%d jobs", n), func() (bool, error) {
		// The highest id is one index lookup; count only when it is there.
		hi, err := db.bench.HighestJobID(ctx)
		if err == nil && hi > 0 && d.firstCommit == 0 {
			d.firstCommit = time.Since(began)
		}
		if err != nil || hi < int64(n) {
			return false, err
		}
		c, err := db.bench.JobCount(ctx)
		if err == nil && c > int64(n) {
			err = fmt.Errorf("%d jobs for %d pairs", c, n)
		}
		return c == int64(n), err
	})
	if err != nil {
		return d, errors.Join(err, stopScraping())
	}
	// The links of the last batch go right after its commit.
	err = waitFor(ctx, m, drainPoll, time.Minute, "an empty inbox", func() (bool, error) {
		left, err := countInbox(ctx, store)
		return left == 0, err
	})
	d.took = time.Since(began)
	if err := errors.Join(err, stopScraping()); err != nil {
		return d, err
	}
	if d.peak, err = m.peakRSS(); err != nil {
		return d, err
	}
	return d, m.stop()
}

// scrapeMetrics fetches url every scrapeEvery until the returned stop is
// called, counting the scrapes and the slowest into d; stop returns the
// first failed scrape's error.
func scrapeMetrics(ctx context.Context, url string, d *drained) (stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		tick := time.NewTicker(scrapeEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				done <- nil
				return
			case <-tick.C:
			}
			began := time.Now()
			if err := fetch(ctx, url); err != nil {
				if ctx.Err() != nil {
					done <- nil
				} else {
					done <- fmt.Errorf("scrape %s: %w", url, err)
				}
				return
			}
			d.scrapes++
			d.slowestScrape = max(d.slowestScrape, time.Since(began))
		}
	}()
	return func() error {
		cancel()
		return <-done
	}
}

// fetch GETs url and reads the whole answer, which must be 200.
func fetch(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

// copyScenario times the ceiling: the drain's ids copied into an empty jobs
// table in one COPY, no disk involved.
func (h *harness) copyScenario(ctx context.Context, g *crashgen.Generator) error {
	n := g.Options().Count
	ids := make([]string, n)
	for i := range ids {
		ids[i] = g.ID(i)
	}
	db, err := h.newDB(ctx)
	if err != nil {
		return err
	}
	defer db.close()
	_, owners, err := db.register(ctx, "bench-processor-", liveProcessors)
	if err != nil {
		return err
	}
	began := time.Now()
	copied, err := db.bench.CopyJobs(ctx, ids, owners)
	if err != nil {
		return err
	}
	took := time.Since(began)
	if copied != int64(n) {
		return fmt.Errorf("copied %d rows, want %d", copied, n)
	}
	f := rateFigure(figCopy, fmt.Sprintf("COPY ceiling (the same %s ids, no disk)", formatInt(int64(n))), n, took)
	f.Note = "pgx CopyFrom into an empty jobs table: " + formatDuration(took)
	h.figures[figCopy] = f
	return nil
}

// classicScenario times the classic monitor's standard loop
// (socorro-classic 3.3, 3.5), re-implemented here, on a backlog of n pairs
// of the drain's shape: a walk of the inbox that, for each pair whose two
// files are there, removes its links first and then queues it with one
// INSERT and one COMMIT, to the processor the classic balanced scheduler
// picks.
func (h *harness) classicScenario(ctx context.Context, n int) error {
	g, err := h.backlogGenerator(n, 2)
	if err != nil {
		return err
	}
	dir, err := h.dir("classic")
	if err != nil {
		return err
	}
	defer h.removeTree(dir)
	store, err := h.generate(ctx, "classic", filepath.Join(dir, "toBeProcessed"), g)
	if err != nil {
		return err
	}
	db, err := h.registeredDB(ctx, "bench-processor-", liveProcessors)
	if err != nil {
		return err
	}
	defer db.close()

	h.step("classic: the classic standard loop on %s pairs", formatInt(int64(n)))
	began := time.Now()
	queued, err := bench.ClassicPass(ctx, store, db.bench, checkIn)
	if err != nil {
		return err
	}
	took := time.Since(began)
	if queued != n {
		return fmt.Errorf("the classic loop queued %d of %d pairs", queued, n)
	}
	if c, err := db.bench.JobCount(ctx); err != nil || c != int64(n) {
		return errors.Join(err, fmt.Errorf("%d jobs after the classic loop, want %d", c, n))
	}
	f := rateFigure(figClassic, fmt.Sprintf("classic standard loop (%s-pair sample)", formatInt(int64(n))), n, took)
	f.Note = "re-implemented here: links removed, then one INSERT + COMMIT per crash; " + formatDuration(took)
	h.figures[figClassic] = f
	return nil
}
