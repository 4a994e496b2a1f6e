package main

import (
	"context"
	"fmt"
	"time"
)

// sampleEvery is how often a timeline for the chart is sampled.
const sampleEvery = 100 * time.Millisecond

// sampler polls probe every sampleEvery from start until the returned stop
// is called, recording (seconds since start, count); stop returns the
// samples and the first probe error. A probe failing because stop was
// called is no error.
func sampler(ctx context.Context, start time.Time, probe func(context.Context) (int64, error)) (stop func() ([]Point, error)) {
	ctx, cancel := context.WithCancel(ctx)
	var pts []Point
	done := make(chan error, 1)
	go func() {
		tick := time.NewTicker(sampleEvery)
		defer tick.Stop()
		for {
			v, err := probe(ctx)
			if err != nil {
				if ctx.Err() != nil {
					err = nil
				}
				done <- err
				return
			}
			pts = append(pts, Point{T: time.Since(start).Seconds(), V: float64(v)})
			select {
			case <-ctx.Done():
				done <- nil
				return
			case <-tick.C:
			}
		}
	}()
	return func() ([]Point, error) {
		cancel()
		err := <-done
		return append([]Point{{0, 0}}, pts...), err
	}
}

// chart is the picture of the run: jobs queued over time by the monitor and
// by the classic loop on the same tree, and the cleanup's rows removed.
func (h *harness) chart(hd Header) Chart {
	durable := "durable PostgreSQL"
	if !hd.Durability.Durable() {
		durable = "PostgreSQL NOT durable"
	}
	c := Chart{
		Title: "monitor: backlog drain and cleanup through monitor run",
		Subtitle: fmt.Sprintf("%s, %d CPUs, %s; trees on %s; %s (fsync %s, synchronous_commit %s); %s",
			hd.CPU, hd.CPUs, formatMiB(hd.MemoryMiB), hd.Filesystem, durable, hd.Durability.Fsync,
			hd.Durability.SynchronousCommit, hd.Started.UTC().Format("2006-01-02")),
	}
	if len(h.timelines.drain) > 0 || len(h.timelines.classic) > 0 {
		p := Panel{Title: fmt.Sprintf("Backlog of %s pairs: jobs queued", formatInt(int64(h.opts.sizes.drain))), YLabel: "jobs queued"}
		if len(h.timelines.drain) > 0 {
			p.Series = append(p.Series, Series{Name: "monitor run", Points: h.timelines.drain})
		}
		if len(h.timelines.classic) > 0 {
			p.Series = append(p.Series, Series{Name: fmt.Sprintf("classic loop (one commit per crash), stopped after %s",
				formatDuration(h.opts.sizes.classicBudget)), Points: h.timelines.classic})
		}
		c.Panels = append(c.Panels, p)
	}
	if len(h.timelines.cleanup) > 0 {
		n := h.timelines.cleanup[len(h.timelines.cleanup)-1].V
		c.Panels = append(c.Panels, Panel{
			Title:  fmt.Sprintf("Cleanup of %s finished jobs", formatInt(int64(n))),
			YLabel: "rows removed",
			Series: []Series{{Name: "monitor run", Points: h.timelines.cleanup}},
		})
	}
	return c
}
