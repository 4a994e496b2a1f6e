package procsim

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
)

// work processes jobs until the channel closes or ctx ends (a crash).
func (p *Processor) work(ctx context.Context, jobs <-chan ClaimedJob, results chan<- JobResult) {
	for j := range jobs {
		r, ok := p.process(ctx, j)
		if !ok {
			return
		}
		select {
		case results <- r:
		case <-ctx.Done():
			return
		}
	}
}

// process reads a crash's pair, takes WorkTime, and decides its outcome. It
// reports false when ctx ended first.
func (p *Processor) process(ctx context.Context, j ClaimedJob) (JobResult, bool) {
	r := JobResult{ID: j.ID, UUID: j.UUID, Success: true}
	size, err := p.read(ctx, j.UUID)
	switch {
	case errors.Is(err, crashstore.ErrNotFound):
		p.notFound.Add(1)
		r.Success, r.Message = false, "crash files not found in the standard or deferred storage"
	case err != nil:
		r.Success, r.Message = false, "cannot read the crash: "+err.Error()
	case p.fails(j.UUID):
		r.Success, r.Message = false, fmt.Sprintf("simulated processing failure (fail ratio %g)", p.cfg.FailRatio)
	}
	if p.cfg.WorkTime > 0 {
		t := time.NewTimer(p.cfg.WorkTime)
		select {
		case <-ctx.Done():
			t.Stop()
			return r, false
		case <-t.C:
		}
	}
	if ctx.Err() != nil {
		return r, false
	}
	p.logger.DebugContext(ctx, "job processed", "uuid", j.UUID, "job", j.ID, "priority", j.Priority,
		"success", r.Success, "dump_bytes", size)
	return r, true
}

// read reads the crash's json and dump, from the standard tree or else the
// deferred one, and returns the dump's size. It never changes the trees.
func (p *Processor) read(ctx context.Context, uuid string) (int, error) {
	e, err := p.cfg.Standard.Lookup(ctx, uuid)
	if errors.Is(err, crashstore.ErrNotFound) && p.cfg.Deferred != nil {
		e, err = p.cfg.Deferred.Lookup(ctx, uuid)
	}
	if err != nil {
		return 0, err
	}
	if _, err := os.ReadFile(e.JSONPath); err != nil {
		return 0, err
	}
	dump, err := os.ReadFile(e.DumpPath)
	return len(dump), err
}

// fails reports whether the crash's simulated processing fails: a hash of
// the seed and the id below FailRatio.
func (p *Processor) fails(uuid string) bool {
	return Fails(uuid, p.cfg.Seed, p.cfg.FailRatio)
}

// Fails reports whether a processor with this seed and fail ratio fails the
// crash uuid. Tests and the demo use it to know the expected failures.
func Fails(uuid string, seed uint64, ratio float64) bool {
	if ratio <= 0 {
		return false
	}
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(seed >> (8 * i))
	}
	h.Write(b[:])
	h.Write([]byte(uuid))
	return float64(h.Sum64()>>11)/(1<<53) < ratio
}

// finish records results in batches until the channel closes (then the
// rest, during a clean stop) or ctx ends (a crash: the rest is lost, as in
// a killed process).
func (p *Processor) finish(ctx context.Context, results <-chan JobResult, fatal func(error)) {
	var batch []JobResult
	t := time.NewTicker(p.cfg.FinishEvery)
	defer t.Stop()
	flush := func() bool {
		if len(batch) == 0 {
			return true
		}
		if err := p.record(ctx, batch); err != nil {
			if ctx.Err() == nil {
				fatal(err)
			}
			return false
		}
		batch = batch[:0]
		return true
	}
	for {
		select {
		case <-ctx.Done():
			return
		case r, ok := <-results:
			if !ok {
				flush()
				return
			}
			batch = append(batch, r)
			if len(batch) >= p.cfg.FinishBatch && !flush() {
				return
			}
		case <-t.C:
			if !flush() {
				return
			}
		}
	}
}

// record finishes a batch, trying again a few times after an error (a
// deadlock with a concurrent reap, for instance).
func (p *Processor) record(ctx context.Context, batch []JobResult) error {
	var done []int64
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		if done, err = p.session.FinishJobs(ctx, batch); err == nil {
			break
		}
		p.logger.WarnContext(ctx, "recording results failed; trying again", "jobs", len(batch), "error", err)
	}
	if err != nil {
		return err
	}
	recorded := make(map[int64]bool, len(done))
	for _, id := range done {
		recorded[id] = true
	}
	var ok, failed, dropped int64
	for _, r := range batch {
		switch {
		case !recorded[r.ID]:
			dropped++
			continue
		case r.Success:
			ok++
		default:
			failed++
		}
		if p.cfg.Recorded != nil {
			p.cfg.Recorded(r)
		}
	}
	p.succeeded.Add(ok)
	p.failed.Add(failed)
	p.dropped.Add(dropped)
	p.logger.InfoContext(ctx, "finished jobs", "succeeded", ok, "failed", failed, "dropped", dropped,
		"total_succeeded", p.succeeded.Load(), "total_failed", p.failed.Load())
	if dropped > 0 {
		p.logger.WarnContext(ctx, "results dropped: those jobs were moved to another processor", "dropped", dropped)
	}
	return nil
}
