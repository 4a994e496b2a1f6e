package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// pageProcessors is how many processors the status page scenario shows.
const pageProcessors = 100

// pageScenario times the status page of a running monitor with 100 live
// processors sharing n unfinished jobs: GET / one request at a time, from
// the request to the last byte. The database figures behind it are read at
// most once a second, so most requests show a read of up to a second ago
// and about one a second pays for the read.
func (h *harness) pageScenario(ctx context.Context, requests, jobs int) error {
	dir, err := h.dir("page")
	if err != nil {
		return err
	}
	defer h.removeTree(dir)
	db, err := h.registeredDB(ctx, "bench-page-processor-", pageProcessors)
	if err != nil {
		return err
	}
	defer db.close()
	ids := make([]string, jobs)
	for i := range ids {
		ids[i] = fmt.Sprintf("00000000-0000-0000-0000-%012d", i)
	}
	if _, err := db.jobs.Enqueue(ctx, ids, 0, checkIn, nil); err != nil {
		return err
	}
	cfg := db.monitorConfig(dir, filepath.Join(dir, "toBeProcessed"))
	if err := os.MkdirAll(cfg["storageRoot"], 0o755); err != nil {
		return err
	}
	m, err := h.startMonitor(dir, cfg)
	if err != nil {
		return err
	}
	defer m.kill()
	addr, err := m.httpAddr(ctx, startTimeout)
	if err != nil {
		return err
	}
	url := "http://" + addr + "/"
	if err := fetch(ctx, url); err != nil { // the first read of the figures
		return err
	}
	h.step("page: %d requests of the status page with %d processors", requests, pageProcessors)
	ds := make([]time.Duration, 0, requests)
	for range requests {
		began := time.Now()
		if err := fetch(ctx, url); err != nil {
			return err
		}
		ds = append(ds, time.Since(began))
		// About ten a second, so the database figures are read again
		// during the run, as a page left open and a scraper cause.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := m.stop(); err != nil {
		return err
	}
	l := summarize(ds)
	f := l.figure(figPage, fmt.Sprintf("status page, %d processors (%s requests)", pageProcessors, formatInt(int64(requests))), atMost(50, "p99 ≤ 50 ms"))
	f.Note = fmt.Sprintf("GET / to the last byte, 10 a second; %s unfinished jobs; max %s", formatInt(int64(jobs)), formatDuration(l.max))
	h.figures[figPage] = f
	return nil
}
