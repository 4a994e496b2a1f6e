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
	// firstCommitPoll is how often the jobs table is asked for its first
	// row after the exec: the first commit's figure is this precise.
	firstCommitPoll = time.Millisecond
	drainPoll       = 20 * time.Millisecond
	// drainMinRate bounds the wait for a drain: slower than this is a
	// failure, not a figure.
	drainMinRate = 500 // pairs/s
)

// drainScenario times `monitor run` draining the backlog g describes, on a
// tree under parent (the work directory, or the tmpfs one with suffix
// "_tmpfs"): from the exec to the first commit, to every pair's jobs row
// and an empty inbox; and the monitor's peak memory meanwhile.
func (h *harness) drainScenario(ctx context.Context, g *crashgen.Generator, parent, suffix string) error {
	n := g.Options().Count
	dir, err := h.dirIn(parent, "drain"+suffix)
	if err != nil {
		return err
	}
	defer h.removeTree(dir)
	root := filepath.Join(dir, "toBeProcessed")
	store, err := h.generate(ctx, "drain"+suffix, root, g)
	if err != nil {
		return err
	}
	d, err := h.drain(ctx, dir, root, store, n, false)
	if err != nil {
		return err
	}
	fs := filesystemType(dir)
	if suffix != "" {
		f := rateFigure(figDrainTmpfs, fmt.Sprintf("backlog drain on %s (%s pairs)", fs, formatInt(int64(n))), n, d.took)
		f.Note = formatDuration(d.took) + " from exec to an empty inbox; " + dir
		h.figures[figDrainTmpfs] = f
		return nil
	}
	f := rateFigure(figDrain, fmt.Sprintf("backlog drain, monitor run (%s pairs, %s)", formatInt(int64(n)), fs), n, d.took)
	f.Note = fmt.Sprintf("%s from exec to the last job and an empty inbox; %d live processors", formatDuration(d.took), liveProcessors)
	h.figures[figDrain] = f
	h.figures[figFirstCommit] = Figure{
		Name:    figFirstCommit,
		Label:   fmt.Sprintf("  first commit after exec (%s-pair backlog)", formatInt(int64(n))),
		Value:   ms(d.firstCommit),
		Unit:    "ms",
		Shown:   formatDuration(d.firstCommit),
		Note:    fmt.Sprintf("exec to the first jobs row seen, polled every %s", formatDuration(firstCommitPoll)),
		Details: map[string]float64{"pairs": float64(n)},
	}.judged(firstCommitMax)
	mib := float64(d.peak) / (1 << 20)
	h.figures[figMemory] = Figure{
		Name: figMemory, Label: fmt.Sprintf("  monitor peak memory, drain of %s (VmHWM)", formatInt(int64(n))),
		Value: mib, Unit: "MiB", Shown: fmt.Sprintf("%.1f MiB", mib), Verdict: Reference,
		Note:    "the target applies at 1,000,000 pairs (scaling table)",
		Details: map[string]float64{"bytes": float64(d.peak), "pairs": float64(n)},
	}
	h.timelines.drain = d.timeline
	h.step("drain: %s pairs in %s, first commit after %s; peak memory %.1f MiB",
		formatInt(int64(n)), formatDuration(d.took), formatDuration(d.firstCommit), mib)
	return nil
}

// scrapedScenario drains the backlog g describes again, while a Prometheus
// scrapes /metrics ten times a second.
func (h *harness) scrapedScenario(ctx context.Context, g *crashgen.Generator) error {
	n := g.Options().Count
	dir, err := h.dir("scraped")
	if err != nil {
		return err
	}
	defer h.removeTree(dir)
	root := filepath.Join(dir, "toBeProcessed")
	store, err := h.generate(ctx, "scraped", root, g)
	if err != nil {
		return err
	}
	d, err := h.drain(ctx, dir, root, store, n, true)
	if err != nil {
		return err
	}
	f := rateFigure(figScraped, fmt.Sprintf("backlog drain, /metrics scraped 10×/s (%s pairs)", formatInt(int64(n))), n, d.took)
	f.Note = fmt.Sprintf("%s; %d scrapes, slowest %s", formatDuration(d.took), d.scrapes, formatDuration(d.slowestScrape))
	f.Details["scrapes"] = float64(d.scrapes)
	h.figures[figScraped] = f
	return nil
}

// drained is what one drain measured.
type drained struct {
	took          time.Duration
	firstCommit   time.Duration
	peak          int64   // VmHWM, bytes
	timeline      []Point // highest job id over time
	scrapes       int
	slowestScrape time.Duration
}

// scrapeEvery is how often the scraped drain asks for /metrics.
const scrapeEvery = 100 * time.Millisecond

// drain times `monitor run` draining the n pairs of store (its tree at root)
// into a fresh schema with live processors, from the exec to the first
// commit and to every pair's jobs row and an empty inbox; the monitor's
// configuration, log and archives are in dir. With scrape, /metrics is
// fetched every scrapeEvery meanwhile.
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
	err = waitFor(ctx, m, firstCommitPoll, startTimeout, "the first commit", func() (bool, error) {
		hi, err := db.bench.HighestJobID(ctx)
		return hi > 0, err
	})
	if err != nil {
		return d, errors.Join(err, stopScraping())
	}
	d.firstCommit = time.Since(began)
	d.timeline = []Point{{0, 0}, {d.firstCommit.Seconds(), 0}}
	timeout := time.Minute + time.Duration(n/drainMinRate)*time.Second
	err = waitFor(ctx, m, drainPoll, timeout, fmt.Sprintf("%d jobs", n), func() (bool, error) {
		// The highest id is one index lookup; count only when it is there.
		hi, err := db.bench.HighestJobID(ctx)
		if err != nil {
			return false, err
		}
		d.timeline = append(d.timeline, Point{T: time.Since(began).Seconds(), V: float64(hi)})
		if hi < int64(n) {
			return false, nil
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
	d.timeline = append(d.timeline, Point{T: d.took.Seconds(), V: float64(n)})
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

// walkScenario times the yardsticks on disk of a backlog g describes, on a
// tree under parent: the bare walk counting the inbox links (not on the
// tmpfs run), then the walk removing each pair's two links, with no
// database: the least disk work a drain must do.
func (h *harness) walkScenario(ctx context.Context, g *crashgen.Generator, parent, suffix string) error {
	n := g.Options().Count
	dir, err := h.dirIn(parent, "walk"+suffix)
	if err != nil {
		return err
	}
	defer h.removeTree(dir)
	store, err := h.generate(ctx, "walk"+suffix, filepath.Join(dir, "toBeProcessed"), g)
	if err != nil {
		return err
	}
	fs := filesystemType(dir)
	if suffix == "" {
		began := time.Now()
		links, err := countInbox(ctx, store)
		if err != nil {
			return fmt.Errorf("walk: %w", err)
		}
		took := time.Since(began)
		if links != n {
			return fmt.Errorf("walk: %d inbox links, want %d", links, n)
		}
		f := rateFigure(figWalk, fmt.Sprintf("bare inbox walk, no unlink (%s links)", formatInt(int64(n))), n, took)
		f.Note = "crashstore Walk counting links: " + formatDuration(took)
		h.figures[figWalk] = f
	}
	began := time.Now()
	removed, err := bench.WalkUnlink(ctx, store)
	if err != nil {
		return err
	}
	took := time.Since(began)
	if removed != n {
		return fmt.Errorf("walk and unlink: %d pairs, want %d", removed, n)
	}
	name := figWalkUnlink
	if suffix != "" {
		name = figWalkTmpfs
	}
	f := rateFigure(name, fmt.Sprintf("bare walk + link removal on %s (%s pairs, no DB)", fs, formatInt(int64(n))), n, took)
	f.Note = "crashstore Walk and RemoveLinks, one goroutine: " + formatDuration(took)
	h.figures[name] = f
	h.step("walk%s: %s pairs walked and unlinked in %s", suffix, formatInt(int64(n)), formatDuration(took))
	return nil
}

// copyScenario times the database's side of the ceiling: the drain's ids
// copied into an empty jobs table in one COPY, no disk involved.
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
	f := rateFigure(figCopy, fmt.Sprintf("COPY of the same %s ids (no disk)", formatInt(int64(n))), n, took)
	f.Note = "pgx CopyFrom into an empty jobs table, one commit: " + formatDuration(took)
	h.figures[figCopy] = f
	return nil
}

// dirIn makes and returns a scenario's directory under parent.
func (h *harness) dirIn(parent, name string) (string, error) {
	d := filepath.Join(parent, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	return d, nil
}
