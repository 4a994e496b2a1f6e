package main

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
)

// cleanupRunScenario times `monitor run` cleaning up a backlog of n finished
// jobs (see finishedBacklog), archiving into trees beside the standard tree
// (same file system), from the exec to the poll that finds the last row
// gone. The monitor's scanner meanwhile makes its first pass over an inbox
// whose links are gone (it prunes the emptied minute directories), as after
// a restart on such a backlog.
func (h *harness) cleanupRunScenario(ctx context.Context, n int) error {
	dir, err := h.dir("cleanuprun")
	if err != nil {
		return err
	}
	defer h.removeTree(dir)
	standard, db, err := h.finishedBacklog(ctx, "cleanuprun", dir, n)
	if err != nil {
		return err
	}
	defer db.close()

	h.step("cleanuprun: monitor run on %s finished jobs", formatInt(int64(n)))
	began := time.Now()
	m, err := h.startMonitor(dir, db.monitorConfig(dir, standard.Root()))
	if err != nil {
		return err
	}
	defer m.kill()
	timeout := time.Minute + time.Duration(n/drainMinRate)*time.Second
	err = waitFor(ctx, m, drainPoll, timeout, fmt.Sprintf("the %d finished jobs' rows gone", n), func() (bool, error) {
		c, err := db.bench.JobCount(ctx)
		return c == 0, err
	})
	took := time.Since(began)
	if err != nil {
		return err
	}
	if err := m.stop(); err != nil {
		return err
	}
	archived := 0
	for _, name := range []string{"successful", "failed"} {
		k, err := countPairs(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		archived += k
	}
	if archived != n {
		return fmt.Errorf("%d pairs in the archives, want %d", archived, n)
	}
	f := rateFigure(figCleanupRun, fmt.Sprintf("cleanup, monitor run (%s finished jobs)", formatInt(int64(n))), n, took)
	f.Note = fmt.Sprintf("%s from exec to the last row gone; archives on the same fs", formatDuration(took))
	h.figures[figCleanupRun] = f.judged(atLeast(10_000, "≥ 10,000 pairs/s"))
	return nil
}

// countPairs counts the dump files under an archive's root.
func countPairs(root string) (int, error) {
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, crashstore.DefaultDumpSuffix) {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count the archived pairs: %w", err)
	}
	return n, nil
}
