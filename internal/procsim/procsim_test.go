package procsim_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/crashgen"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/procsim"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
	"github.com/crashmonitor/monitor/scanner"
)

// waitTimeout bounds every wait for the processors to do something: three
// times testkit's, for the processors' own timing on a loaded machine.
func waitTimeout() time.Duration { return 3 * testkit.WaitTimeout() }

// waitFor polls cond until it holds, failing the test at the deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.EventuallyWithin(t, waitTimeout(), what, cond)
}

// testBundle is a schema, a standard and a deferred tree.
type testBundle struct {
	pool               *pgxpool.Pool
	jobs               *queue.Store
	standard, deferred *crashstore.Store
	logger             *slog.Logger
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	dir := t.TempDir()
	pool := pgtest.Schema(t)
	return &testBundle{
		pool:     pool,
		jobs:     queue.NewStore(pool),
		standard: crashstore.New(filepath.Join(dir, "toBeProcessed"), crashstore.Options{GID: -1}),
		deferred: crashstore.New(filepath.Join(dir, "toBeDeferred"), crashstore.Options{GID: -1}),
		logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

// generate writes n crashes into store and returns their ids.
func generate(t *testing.T, store *crashstore.Store, n int) []string {
	t.Helper()
	g := testkit.Generate(t, store, crashgen.Options{Count: n, DumpSize: 64, Webheads: []string{"web1", "web2"}})
	ids := make([]string, n)
	for i := range ids {
		ids[i] = g.ID(i)
	}
	return ids
}

// running is a processor running in the background.
type running struct {
	*procsim.Processor
	cancel context.CancelFunc
	done   chan error
}

// start runs a processor until the test ends (or stop).
func (b *testBundle) start(t *testing.T, cfg procsim.Config) *running {
	t.Helper()
	cfg.Standard, cfg.Deferred = b.standard, b.deferred
	p := procsim.New(cfg, procsim.NewSession(b.pool), b.logger.With("processor", cfg.Name))
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	r := &running{Processor: p, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	waitFor(t, cfg.Name+" to register", func() bool { return p.ID() != 0 })
	return r
}

// stop stops the processor cleanly (if it still runs) and returns what Run
// returned.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for a later stop
		return err
	case <-time.After(waitTimeout()):
		t.Fatalf("processor did not stop")
		return nil
	}
}

// count runs a counting query.
func (b *testBundle) count(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	return int64(testkit.QueryInt(t, b.pool, sql, args...))
}

// status reads the queue summary.
func (b *testBundle) status(t *testing.T, checkIn time.Duration) queue.Status {
	t.Helper()
	st, err := b.jobs.Status(t.Context(), checkIn)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestEndToEnd runs the real scanner and two simulated processors over a
// generated tree: every crash is queued, one processor dies (its heartbeat
// stops), the scanner's dead-processor sweep moves its work, and every crash
// ends up processed exactly once, its files untouched.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	const (
		checkIn   = time.Second // dead after 2 s without a heartbeat
		failRatio = 0.2
		seed      = 99
		crashes   = 300
	)
	b := setup(t)
	ids := generate(t, b.standard, crashes)
	deferredIDs := generate(t, b.deferred, 3)

	fast := b.start(t, procsim.Config{Name: "fast", CheckIn: checkIn, WorkTime: time.Millisecond,
		Concurrency: 2, FailRatio: failRatio, Seed: seed})
	slow := b.start(t, procsim.Config{Name: "slow", CheckIn: checkIn, WorkTime: 30 * time.Millisecond,
		Concurrency: 2, FailRatio: failRatio, Seed: seed})
	waitFor(t, "two live processors", func() bool {
		return testkit.CountLive(t, b.pool, checkIn) == 2
	})

	sc := scanner.New(scanner.Config{
		DelayFunc:   func() time.Duration { return time.Hour },
		CheckInFunc: func() time.Duration { return checkIn },
		Settle:      time.Nanosecond,
	}, b.standard, b.jobs, b.logger.With("loop", "scanner"))
	res, err := sc.RunOnce(t.Context())
	if err != nil || res.Queued != crashes {
		t.Fatalf("scanner RunOnce = %+v, %v; want %d queued", res, err, crashes)
	}
	slowID := slow.ID()
	slowShare := b.count(t, `SELECT count(*) FROM jobs WHERE owner = $1`, slowID)
	if slowShare < crashes/2-1 {
		t.Fatalf("the slow processor got %d of %d jobs, want about half", slowShare, crashes)
	}

	// What the monitor's priority loop does for a crash only in the
	// deferred tree: queue it with priority and tell its owner.
	q, err := b.jobs.Enqueue(t.Context(), deferredIDs[:1], 1, checkIn, nil)
	if err != nil || len(q.Queued) != 1 {
		t.Fatalf("Enqueue deferred crash = %+v, %v", q, err)
	}
	table := pgx.Identifier{fmt.Sprintf("priority_jobs_%d", q.Queued[0].Owner)}.Sanitize()
	if _, err := b.pool.Exec(t.Context(), `INSERT INTO `+table+` (uuid) VALUES ($1)`, deferredIDs[0]); err != nil {
		t.Fatal(err)
	}

	// The slow processor dies a short way into its share.
	waitFor(t, "the slow processor to finish some jobs", func() bool {
		st := slow.Stats()
		return st.Succeeded+st.Failed >= 10
	})
	slow.Crash()
	if err := slow.stop(t); !errors.Is(err, procsim.ErrCrashed) {
		t.Fatalf("crashed processor's Run = %v, want ErrCrashed", err)
	}
	left := b.count(t, `SELECT count(*) FROM jobs WHERE owner = $1 AND success IS NULL`, slowID)
	if left == 0 {
		t.Fatalf("the slow processor finished its share before it crashed; the test needs it to leave work")
	}
	t.Logf("slow processor %d crashed with %d of its %d jobs unfinished", slowID, left, slowShare)

	// The scanner's sweep finds it dead within about 2 checkIn and moves
	// its jobs to the live processor.
	waitFor(t, "the scanner to reap the dead processor", func() bool {
		res, err := sc.RunOnce(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Reaped.Dead) > 0 {
			if !slices.Equal(res.Reaped.Dead, []int64{slowID}) || res.Reaped.MovedJobs != slowShare {
				t.Errorf("reap = %+v, want processor %d and its %d jobs", res.Reaped, slowID, slowShare)
			}
			return true
		}
		return false
	})
	waitFor(t, "every job to finish", func() bool {
		st := b.status(t, checkIn)
		return st.Queued == 0 && st.Started == 0
	})

	total := int64(crashes + 1)
	if n := b.count(t, `SELECT count(DISTINCT uuid) FROM jobs WHERE success IS NOT NULL AND completeddatetime IS NOT NULL`); n != total {
		t.Errorf("%d distinct finished jobs, want %d", n, total)
	}
	if n := b.count(t, `SELECT count(*) FROM jobs WHERE owner IS DISTINCT FROM $1`, fast.ID()); n != 0 {
		t.Errorf("%d jobs not owned by the surviving processor", n)
	}
	var wantFailed int64
	for _, id := range append(ids, deferredIDs[0]) {
		if procsim.Fails(id, seed, failRatio) {
			wantFailed++
		}
	}
	if n := b.count(t, `SELECT count(*) FROM jobs WHERE NOT success AND message LIKE 'simulated%'`); n != wantFailed {
		t.Errorf("%d simulated failures recorded, want %d", n, wantFailed)
	}
	if n := b.count(t, `SELECT count(*) FROM jobs WHERE uuid = $1 AND success IS NOT NULL AND (success OR message LIKE 'simulated%')`,
		deferredIDs[0]); n != 1 {
		t.Errorf("the deferred crash was not processed from the deferred tree")
	}
	fs, ss := fast.Stats(), slow.Stats()
	if got := fs.Succeeded + fs.Failed + ss.Succeeded + ss.Failed; got != total {
		t.Errorf("results recorded: fast %+v + slow %+v = %d, want %d (each job once)", fs, ss, got, total)
	}
	if fs.Priority < 1 {
		t.Errorf("no priority job claimed: %+v", fs)
	}
	if n := b.count(t, `SELECT count(*) FROM processors WHERE id = $1`, slowID); n != 0 {
		t.Errorf("the dead processor's row is still there")
	}

	// The processors only read: every pair is still in place, and the
	// scanner left nothing in the inbox.
	for _, id := range append(slices.Clone(ids), deferredIDs...) {
		store := b.standard
		if slices.Contains(deferredIDs, id) {
			store = b.deferred
		}
		e, err := store.Lookup(t.Context(), id)
		if err != nil {
			t.Fatalf("Lookup(%s): %v", id, err)
		}
		for _, p := range []string{e.JSONPath, e.DumpPath} {
			if _, err := os.Stat(p); err != nil {
				t.Errorf("crash file gone: %v", err)
			}
		}
	}

	if err := fast.stop(t); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	if n := b.count(t, `SELECT count(*) FROM processors WHERE id = $1 AND lastseendatetime = '1999-01-01'`, fast.ID()); n != 1 {
		t.Errorf("clean stop did not set lastseendatetime to 1999-01-01")
	}
	if n := b.count(t, `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'priority\_jobs\_%'`); n != 0 {
		t.Errorf("%d priority tables left after the clean stop and the reap", n)
	}
}

func TestCrashLeavesClaimedJobsStarted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := generate(t, b.standard, 10)
	p := b.start(t, procsim.Config{Name: "hung", CheckIn: time.Minute, WorkTime: time.Hour, Concurrency: 3})
	if _, err := b.jobs.Enqueue(t.Context(), ids, 0, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	// Three jobs at work, three more claimed and waiting for a worker.
	waitFor(t, "the processor to claim two batches", func() bool { return p.Stats().Claimed == 6 })
	var lastSeen time.Time
	if err := b.pool.QueryRow(t.Context(), `SELECT lastseendatetime FROM processors WHERE id = $1`, p.ID()).Scan(&lastSeen); err != nil {
		t.Fatal(err)
	}
	p.Crash()
	if err := p.stop(t); !errors.Is(err, procsim.ErrCrashed) {
		t.Fatalf("Run after Crash = %v, want ErrCrashed", err)
	}
	if n := b.count(t, `SELECT count(*) FROM jobs WHERE starteddatetime IS NOT NULL AND success IS NULL`); n != 6 {
		t.Errorf("%d jobs started and unfinished after the crash, want 6", n)
	}
	if n := b.count(t, `SELECT count(*) FROM processors WHERE id = $1 AND lastseendatetime <= $2`, p.ID(), lastSeen); n != 1 {
		t.Errorf("the crashed processor checked in again or stopped cleanly")
	}
	if n := b.count(t, `SELECT count(*) FROM processors WHERE id = $1 AND lastseendatetime = '1999-01-01'`, p.ID()); n != 0 {
		t.Errorf("a crash did a clean stop")
	}
}

func TestCleanStopRecordsWorkInHand(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := generate(t, b.standard, 4)
	p := b.start(t, procsim.Config{Name: "leaving", CheckIn: time.Minute, WorkTime: 200 * time.Millisecond,
		Concurrency: 2, FinishEvery: time.Hour})
	if _, err := b.jobs.Enqueue(t.Context(), ids, 0, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two jobs at work", func() bool { return p.Stats().Claimed >= 2 })
	if err := p.stop(t); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	// The jobs being worked on were finished and recorded (FinishEvery is
	// an hour: by the final flush); those claimed but not yet taken by a
	// worker (the stop may come between the claim and the hand-off) wait
	// for the monitor's sweep.
	st := p.Stats()
	if st.Succeeded < 1 || st.Succeeded != b.count(t, `SELECT count(*) FROM jobs WHERE success`) {
		t.Errorf("stats %+v; want the jobs in hand recorded", st)
	}
	if n := b.count(t, `SELECT count(*) FROM processors WHERE id = $1 AND lastseendatetime = '1999-01-01'`, p.ID()); n != 1 {
		t.Errorf("no clean stop")
	}
}

func TestFilesMissing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.start(t, procsim.Config{Name: "p", CheckIn: time.Minute, Idle: 10 * time.Millisecond})
	// Queued, but written nowhere.
	if _, err := b.jobs.Enqueue(t.Context(), []string{"00000000-0000-0000-0000-000002090928"}, 0, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job to fail", func() bool { return p.Stats().Failed == 1 })
	if n := b.count(t, `SELECT count(*) FROM jobs WHERE NOT success AND message LIKE 'crash files not found%'`); n != 1 {
		t.Errorf("the missing crash is not recorded as a failure saying so")
	}
	if st := p.Stats(); st.NotFound != 1 {
		t.Errorf("stats %+v, want NotFound 1", st)
	}
}

func TestRegistersAgainAfterBeingReaped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.start(t, procsim.Config{Name: "p", CheckIn: 150 * time.Millisecond, Idle: 10 * time.Millisecond})
	old := p.ID()
	// What a reap does to a processor without jobs.
	if _, err := b.pool.Exec(t.Context(), fmt.Sprintf(`DELETE FROM processors WHERE id = %d; DROP TABLE priority_jobs_%d`, old, old)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new registration", func() bool { return p.ID() != old && p.Stats().Reregistered == 1 })
	ids := generate(t, b.standard, 3)
	if _, err := b.jobs.Enqueue(t.Context(), ids, 0, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the jobs to be processed", func() bool { return p.Stats().Succeeded == 3 })
}

// TestRecorded: Recorded is told each committed result once, with its crash
// id and verdict.
func TestRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := generate(t, b.standard, 20)
	var mu sync.Mutex
	got := map[string][]bool{}
	p := b.start(t, procsim.Config{Name: "p", CheckIn: time.Minute, Idle: 10 * time.Millisecond,
		FailRatio: 0.5, Seed: 3, Recorded: func(r procsim.JobResult) {
			mu.Lock()
			defer mu.Unlock()
			got[r.UUID] = append(got[r.UUID], r.Success)
		}})
	if _, err := b.jobs.Enqueue(t.Context(), ids, 0, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the jobs to be processed", func() bool {
		st := p.Stats()
		return st.Succeeded+st.Failed == int64(len(ids))
	})
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if want := !procsim.Fails(id, 3, 0.5); !slices.Equal(got[id], []bool{want}) {
			t.Errorf("%s: recorded %v, want [%v]", id, got[id], want)
		}
	}
	if len(got) != len(ids) {
		t.Errorf("%d crashes recorded, want %d", len(got), len(ids))
	}
}

func TestFails(t *testing.T) {
	t.Parallel()
	g, err := crashgen.New(crashgen.Options{Count: 10000, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, ratio := range []float64{0, 0.05, 0.5, 1} {
		n := 0
		for i := range 10000 {
			if procsim.Fails(g.ID(i), 1, ratio) {
				n++
			}
		}
		if want := ratio * 10000; float64(n) < want-300 || float64(n) > want+300 {
			t.Errorf("ratio %g: %d of 10000 fail", ratio, n)
		}
	}
	if procsim.Fails("x", 1, 0.5) != procsim.Fails("x", 1, 0.5) {
		t.Errorf("Fails is not deterministic")
	}
}
