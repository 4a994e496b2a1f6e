package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/crashmonitor/monitor/internal/crashgen"
)

// The shape of the generated backlogs: as many webheads as a mid-sized
// collector fleet, every minute slot used by each, about this many pairs in
// each webhead directory (so a backlog of 200,000 pairs spans some twelve
// days of slots).
const (
	backlogWebheads = 8
	pairsPerLeaf    = 1.5
)

// runScenarios runs the selected scenarios in order, stopping at the first
// failure.
func (h *harness) runScenarios(ctx context.Context) error {
	s := h.opts.sizes
	main, err := h.backlogGenerator(s.drain, 1)
	if err != nil {
		return err
	}
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"walk", func(ctx context.Context) error { return h.walkScenario(ctx, main, h.work, "") }},
		{"copy", func(ctx context.Context) error { return h.copyScenario(ctx, main) }},
		{"drain", func(ctx context.Context) error { return h.drainScenario(ctx, main, h.work, "") }},
		{"classic", func(ctx context.Context) error { return h.classicScenario(ctx, main, s.classicBudget) }},
		{"tmpfs", func(ctx context.Context) error { return h.tmpfsScenario(ctx, main) }},
		{"scraped", func(ctx context.Context) error { return h.scrapedScenario(ctx, main) }},
		{"arrival", func(ctx context.Context) error { return h.arrivalScenario(ctx, s.arrivals, true) }},
		{"arrival", func(ctx context.Context) error { return h.arrivalScenario(ctx, s.arrivals, false) }},
		{"priority", func(ctx context.Context) error { return h.priorityScenario(ctx, s.priority, 0) }},
		{"cleanup", func(ctx context.Context) error { return h.cleanupScale(ctx, s.cleanup) }},
		{"deadmove", func(ctx context.Context) error { return h.deadMoveScenario(ctx, s.deadmove) }},
		{"page", func(ctx context.Context) error { return h.pageScenario(ctx, s.page, 10_000) }},
		{"scale", func(ctx context.Context) error { return h.drainScale(ctx, s.scale, s.scaleCold) }},
		{"priorityload", func(ctx context.Context) error { return h.priorityScenario(ctx, s.priority, s.priorityLoad) }},
	}
	for _, st := range steps {
		if !h.opts.runs(st.name) || st.name == "tmpfs" && h.tmpfsWork == "" {
			continue
		}
		began := time.Now()
		if err := st.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
		h.step("%s: done in %s", st.name, formatDuration(time.Since(began)))
	}
	return nil
}

// tmpfsScenario drains the main backlog again, and walks and unlinks it, on
// the tmpfs work directory: an extra column, to see what the disk costs.
func (h *harness) tmpfsScenario(ctx context.Context, g *crashgen.Generator) error {
	if err := h.walkScenario(ctx, g, h.tmpfsWork, "_tmpfs"); err != nil {
		return err
	}
	return h.drainScenario(ctx, g, h.tmpfsWork, "_tmpfs")
}

// drainScale drains a backlog of each size through `monitor run` for the
// scaling table: first trees just written (the kernel's caches hold their
// metadata), then trees read from the disk (cold: every dirty page written
// back and the caches dropped before the exec), as after an outage whose
// backlog outgrew memory. The peak memory is judged at 1,000,000 pairs.
func (h *harness) drainScale(ctx context.Context, warm, cold []int) error {
	type drainSize struct {
		n    int
		cold bool
	}
	var runs []drainSize
	for _, n := range warm {
		runs = append(runs, drainSize{n, false})
	}
	if len(cold) > 0 && os.Geteuid() != 0 {
		// The sizes still run (the peak memory is judged at a million),
		// on trees just written.
		h.step("scale: the drains of cold trees need root (to drop the kernel's caches): their sizes drain trees just written")
		for _, n := range cold {
			if !slices.Contains(warm, n) {
				runs = append(runs, drainSize{n, false})
			}
		}
		cold = nil
	}
	for _, n := range cold {
		runs = append(runs, drainSize{n, true})
	}
	for i, r := range runs {
		n := r.n
		g, err := h.backlogGenerator(n, uint64(20+i))
		if err != nil {
			return err
		}
		dir, err := h.dir(fmt.Sprintf("scale-%d", n))
		if err != nil {
			return err
		}
		root := filepath.Join(dir, "toBeProcessed")
		store, err := h.generate(ctx, "scale", root, g)
		if err != nil {
			return err
		}
		scenario, note := scaleDrain, "monitor run, exec to an empty inbox, the tree just written"
		if r.cold {
			took, err := dropCaches()
			if err != nil {
				h.removeTree(dir)
				return err
			}
			h.step("scale: dirty pages written back and the kernel's caches dropped in %s", formatDuration(took))
			scenario, note = scaleDrainCold, "monitor run, exec to an empty inbox, caches dropped first"
		}
		d, err := h.drain(ctx, dir, root, store, n, false)
		h.removeTree(dir)
		if err != nil {
			return err
		}
		row := rateRow(scenario, n, d.took, note+"; first commit after "+formatDuration(d.firstCommit))
		row.PeakMiB = float64(d.peak) / (1 << 20)
		h.scaling = append(h.scaling, row)
		h.step("scale: %s pairs drained (%s) in %s (%.1f µs/pair), peak memory %.1f MiB", formatInt(int64(n)), scenario,
			formatDuration(d.took), row.MicrosPerPair, row.PeakMiB)
		if n == oneMillion {
			h.figures[figMemory1M] = Figure{
				Name: figMemory1M, Label: "monitor peak memory, drain of 1,000,000 (VmHWM)",
				Value: row.PeakMiB, Unit: "MiB", Shown: fmt.Sprintf("%.1f MiB", row.PeakMiB),
				Note:    fmt.Sprintf("scaling table's drain (%s): %s", scenario, formatRate(row.Rate)),
				Details: map[string]float64{"bytes": float64(d.peak), "pairs": float64(n)},
			}.judged(memoryMax)
		}
	}
	return nil
}

// backlogGenerator describes count pairs as an outage leaves them, shaped
// like production's inbox: submitted by backlogWebheads collectors over as
// many days of one-minute slots as it takes for each webhead directory to
// hold about pairsPerLeaf pairs, the last a minute before the run.
func (h *harness) backlogGenerator(count int, seed uint64) (*crashgen.Generator, error) {
	return crashgen.New(crashgen.Options{
		Count:     count,
		DumpSize:  h.opts.dumpSize,
		Webheads:  crashgen.WebheadNames(backlogWebheads),
		Submitted: h.start.Add(-time.Minute),
		Spread:    crashgen.SpreadFor(count, backlogWebheads, pairsPerLeaf),
		Seed:      seed,
	})
}

// workDir makes the run's work directory under parent.
func (h *harness) workDir(parent string) (string, error) {
	d, err := os.MkdirTemp(parent, "monitorbench-")
	if err != nil {
		return "", fmt.Errorf("work directory: %w", err)
	}
	return d, nil
}

// removeWork removes a work directory at the end, unless -keep.
func (h *harness) removeWork(dir string) {
	if h.opts.keep {
		h.step("kept the work directory %s", dir)
		return
	}
	h.removeTree(dir)
}

// removeTree removes a scenario's directory, freeing its room for the next
// one (unless -keep). A tree on disk takes long to remove, so its top
// directories (the days) go in parallel.
func (h *harness) removeTree(dir string) {
	if h.opts.keep {
		return
	}
	began := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		sub := filepath.Join(dir, e.Name())
		subs, err := os.ReadDir(sub)
		if err != nil || !e.IsDir() {
			continue
		}
		for _, s := range subs {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				_ = os.RemoveAll(filepath.Join(sub, s.Name()))
			})
		}
	}
	wg.Wait()
	if err := os.RemoveAll(dir); err != nil {
		h.step("could not remove %s: %v", dir, err)
	}
	if took := time.Since(began); took > 5*time.Second {
		h.step("removed %s in %s", dir, formatDuration(took))
	}
}
