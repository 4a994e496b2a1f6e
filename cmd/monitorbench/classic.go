package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/crashmonitor/monitor/internal/bench"
	"github.com/crashmonitor/monitor/internal/crashgen"
)

// classicScenario times the classic monitor's standard loop
// (socorro-classic 3.3, 3.5), re-implemented in internal/bench, on the
// drain's own tree (the same generation again): a walk of the inbox that,
// for each pair whose two files are there, removes its links first and then
// queues it with one INSERT and one COMMIT, to the processor the classic
// balanced scheduler picks. It stops after budget (the classic loop takes
// minutes where the monitor takes seconds) and counts what it queued.
func (h *harness) classicScenario(ctx context.Context, g *crashgen.Generator, budget time.Duration) error {
	n := g.Options().Count
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

	h.step("classic: the classic standard loop on the drain's %s pairs, for %s at most", formatInt(int64(n)), budget)
	began := time.Now()
	stopSampling := sampler(ctx, began, db.bench.HighestJobID)
	cctx, cancel := context.WithTimeout(ctx, budget)
	_, err = bench.ClassicPass(cctx, store, db.bench, checkIn)
	took := time.Since(began)
	cancel()
	timeline, serr := stopSampling()
	if err != nil && (!errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil) {
		return err
	}
	if serr != nil {
		return serr
	}
	queued, err := db.bench.JobCount(ctx)
	if err != nil {
		return err
	}
	if queued == 0 {
		return fmt.Errorf("the classic loop queued nothing in %s", budget)
	}
	h.timelines.classic = append(timeline, Point{T: took.Seconds(), V: float64(queued)})
	f := rateFigure(figClassic, fmt.Sprintf("classic standard loop (the drain's tree, %s budget)", formatDuration(budget)), int(queued), took)
	f.Note = fmt.Sprintf("re-implemented here: links removed, then one INSERT + COMMIT per crash; %s of %s pairs in %s",
		formatInt(queued), formatInt(int64(n)), formatDuration(took))
	h.figures[figClassic] = f
	return nil
}
