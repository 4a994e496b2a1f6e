package queue_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

func TestReapDeadProcessors(t *testing.T) {
	t.Parallel()

	const (
		checkIn = 5 * time.Minute
		stale   = 3 * checkIn / 2
		dead    = 3 * checkIn
	)

	t.Run("MovesJobsAndPriorityRequests", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		liveA := testkit.Processor(t, pool, 0)
		d := testkit.Processor(t, pool, dead)
		liveB := testkit.Processor(t, pool, time.Minute)
		st := testkit.Processor(t, pool, stale)

		testkit.NumberedJobs(t, pool, liveA, "a", 1, testkit.Queued)
		testkit.NumberedJobs(t, pool, liveB, "b", 4, testkit.Started)
		testkit.NumberedJobs(t, pool, liveB, "bok", 3, testkit.Succeeded)
		testkit.NumberedJobs(t, pool, d, "started", 3, testkit.Started)
		testkit.NumberedJobs(t, pool, d, "queued", 2, testkit.Queued)
		testkit.NumberedJobs(t, pool, d, "ok", 2, testkit.Succeeded)
		testkit.NumberedJobs(t, pool, d, "ko", 1, testkit.Failed)
		testkit.NumberedJobs(t, pool, st, "stale", 2, testkit.Started)
		testkit.PriorityTableWith(t, pool, liveA, "pa")
		testkit.PriorityTableWith(t, pool, d, "p1", "p2")
		testkit.PriorityTableWith(t, pool, st, "ps")
		testkit.Exec(t, pool, `INSERT INTO priorityjobs (uuid) VALUES ('p2'), ('other')`)

		finishedBefore := testkit.SortedStrings(t, pool, `
SELECT uuid || ' ' || success || ' ' || starteddatetime || ' ' || completeddatetime || ' ' || coalesce(message, '')
FROM jobs WHERE success IS NOT NULL AND owner = $1`, d)
		staleBefore := testkit.SortedStrings(t, pool, `SELECT j::text FROM jobs j WHERE owner = $1`, st)
		allBefore := testkit.SortedStrings(t, pool, `SELECT uuid FROM jobs`)

		res, err := queue.NewStore(pool).ReapDeadProcessors(t.Context(), checkIn)
		if err != nil {
			t.Fatalf("ReapDeadProcessors: %v", err)
		}
		want := queue.ReapResult{Dead: []int64{d}, MovedJobs: 8, RequeuedPriority: 1}
		if !equalReap(res, want) {
			t.Errorf("ReapDeadProcessors = %+v, want %+v", res, want)
		}

		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM processors WHERE id = $1`, d); n != 0 {
			t.Errorf("dead processor %d still has its row", d)
		}
		if testkit.HasPriorityTable(t, pool, d) {
			t.Errorf("priority_jobs_%d still exists", d)
		}
		if got := testkit.SortedStrings(t, pool, `SELECT uuid FROM jobs`); !slices.Equal(got, allBefore) {
			t.Errorf("jobs after the reap = %v, want the same as before, %v", got, allBefore)
		}
		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs WHERE owner IS NULL OR owner NOT IN ($1, $2, $3)`,
			liveA, liveB, st); n != 0 {
			t.Errorf("%d jobs owned by neither a live nor the stale processor", n)
		}
		// Unfinished: unstarted now, and A (load 1) and B (load 4) share the
		// 5 so that both end at 5.
		if n := testkit.QueryInt64(t, pool, `
SELECT count(*) FROM jobs
WHERE (uuid LIKE 'started-%' OR uuid LIKE 'queued-%') AND starteddatetime IS NOT NULL`); n != 0 {
			t.Errorf("%d moved unfinished jobs still started", n)
		}
		loads := testkit.UnfinishedLoads(t, pool)
		if loads[liveA] != 5 || loads[liveB] != 5 {
			t.Errorf("live loads after the reap = %v, want 5 for %d and %d", loads, liveA, liveB)
		}
		// Finished: everything kept but the owner, spread over both.
		if got := testkit.SortedStrings(t, pool, `
SELECT uuid || ' ' || success || ' ' || starteddatetime || ' ' || completeddatetime || ' ' || coalesce(message, '')
FROM jobs WHERE uuid LIKE 'ok-%' OR uuid LIKE 'ko-%'`); !slices.Equal(got, finishedBefore) {
			t.Errorf("moved finished jobs:\n%q\nwant\n%q", got, finishedBefore)
		}
		finishedOwners := testkit.CountBy(t, pool, `
SELECT owner, count(*) FROM jobs WHERE uuid LIKE 'ok-%' OR uuid LIKE 'ko-%' GROUP BY owner`)
		// Round-robin in id order: A, B, A.
		if finishedOwners[liveA] != 2 || finishedOwners[liveB] != 1 {
			t.Errorf("moved finished jobs per owner = %v, want 2 for %d, 1 for %d", finishedOwners, liveA, liveB)
		}

		if got, want := testkit.SortedStrings(t, pool, `SELECT uuid FROM priorityjobs`), []string{"other", "p1", "p2"}; !slices.Equal(got, want) {
			t.Errorf("priorityjobs = %v, want %v", got, want)
		}
		// The others are untouched: the stale one keeps its row, its started
		// jobs and its table; the live ones their tables.
		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM processors`); n != 3 {
			t.Errorf("%d processors left, want 3", n)
		}
		if got := testkit.SortedStrings(t, pool, `SELECT j::text FROM jobs j WHERE owner = $1`, st); !slices.Equal(got, staleBefore) {
			t.Errorf("stale processor's jobs = %v, want unchanged %v", got, staleBefore)
		}
		for _, p := range []int64{liveA, st} {
			if !testkit.HasPriorityTable(t, pool, p) {
				t.Errorf("priority_jobs_%d dropped", p)
			}
		}
	})

	// Nothing dead: nothing to do, not even with no live processor.
	t.Run("NoDeadProcessor", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		p := testkit.Processor(t, pool, stale)
		testkit.NumberedJobs(t, pool, p, "s", 2, testkit.Started)
		testkit.PriorityTableWith(t, pool, p, "x")
		before := testkit.DBState(t, pool)

		res, err := queue.NewStore(pool).ReapDeadProcessors(t.Context(), checkIn)
		if err != nil || !equalReap(res, queue.ReapResult{}) {
			t.Errorf("ReapDeadProcessors = %+v, %v; want zero, nil", res, err)
		}
		if after := testkit.DBState(t, pool); after != before {
			t.Errorf("database changed:\nbefore %s\nafter  %s", before, after)
		}
	})

	t.Run("NoLiveProcessor", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		d := testkit.Processor(t, pool, dead)
		st := testkit.Processor(t, pool, stale)
		testkit.NumberedJobs(t, pool, d, "d", 2, testkit.Started)
		testkit.NumberedJobs(t, pool, d, "ok", 1, testkit.Succeeded)
		testkit.NumberedJobs(t, pool, st, "s", 1, testkit.Queued)
		testkit.PriorityTableWith(t, pool, d, "p1")
		before := testkit.DBState(t, pool)

		res, err := queue.NewStore(pool).ReapDeadProcessors(t.Context(), checkIn)
		if err != nil {
			t.Fatalf("ReapDeadProcessors: %v", err)
		}
		if want := (queue.ReapResult{NoLiveProcessor: true}); !equalReap(res, want) {
			t.Errorf("ReapDeadProcessors = %+v, want %+v", res, want)
		}
		if after := testkit.DBState(t, pool); after != before {
			t.Errorf("database changed:\nbefore %s\nafter  %s", before, after)
		}
	})

	// Classic 6.1 #23, fixed: every processor dead is a report, not an exit.
	t.Run("AllDead", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		procs := testkit.ProcessorsSeen(t, pool, 5, 11*time.Minute)
		for _, p := range procs {
			testkit.NumberedJobs(t, pool, p, fmt.Sprint("j", p), 1, testkit.Queued)
		}
		before := testkit.DBState(t, pool)

		res, err := queue.NewStore(pool).ReapDeadProcessors(t.Context(), checkIn)
		if err != nil || !equalReap(res, queue.ReapResult{NoLiveProcessor: true}) {
			t.Errorf("ReapDeadProcessors = %+v, %v; want NoLiveProcessor, nil", res, err)
		}
		if after := testkit.DBState(t, pool); after != before {
			t.Errorf("database changed:\nbefore %s\nafter  %s", before, after)
		}
	})

	t.Run("NeverSeen", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		live := testkit.Processor(t, pool, 0)
		never := testkit.ProcessorLastSeen(t, pool, "NULL")
		testkit.NumberedJobs(t, pool, never, "n", 3, testkit.Queued)
		testkit.PriorityTableWith(t, pool, never)

		res, err := queue.NewStore(pool).ReapDeadProcessors(t.Context(), checkIn)
		if err != nil {
			t.Fatalf("ReapDeadProcessors: %v", err)
		}
		if want := (queue.ReapResult{Dead: []int64{never}, MovedJobs: 3}); !equalReap(res, want) {
			t.Errorf("ReapDeadProcessors = %+v, want %+v", res, want)
		}
		if got := testkit.UnfinishedLoads(t, pool); got[live] != 3 || len(got) != 1 {
			t.Errorf("loads = %v, want 3 jobs for %d", got, live)
		}
		if testkit.HasPriorityTable(t, pool, never) {
			t.Errorf("priority_jobs_%d still exists", never)
		}
	})

	// A clean stop sets lastseendatetime to 1999-01-01 and drops the table.
	t.Run("CleanlyStopped", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		live := testkit.Processor(t, pool, 0)
		stopped := testkit.ProcessorLastSeen(t, pool, "'1999-01-01'")
		testkit.NumberedJobs(t, pool, stopped, "ok", 2, testkit.Succeeded)
		testkit.NumberedJobs(t, pool, stopped, "q", 1, testkit.Queued)

		res, err := queue.NewStore(pool).ReapDeadProcessors(t.Context(), checkIn)
		if err != nil {
			t.Fatalf("ReapDeadProcessors: %v", err)
		}
		if want := (queue.ReapResult{Dead: []int64{stopped}, MovedJobs: 3}); !equalReap(res, want) {
			t.Errorf("ReapDeadProcessors = %+v, want %+v", res, want)
		}
		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs WHERE owner = $1`, live); n != 3 {
			t.Errorf("live processor owns %d jobs, want 3", n)
		}
	})

	t.Run("SeveralDead", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		live := testkit.ProcessorsSeen(t, pool, 3, 0)
		d1 := testkit.Processor(t, pool, dead)
		d2 := testkit.ProcessorLastSeen(t, pool, "NULL")
		d3 := testkit.Processor(t, pool, dead)
		testkit.NumberedJobs(t, pool, d1, "d1", 4, testkit.Started)
		testkit.NumberedJobs(t, pool, d3, "d3", 5, testkit.Queued)
		testkit.NumberedJobs(t, pool, d3, "d3ok", 3, testkit.Succeeded)
		testkit.PriorityTableWith(t, pool, d1, "x1", "x2")
		testkit.PriorityTableWith(t, pool, d3, "x2", "x3")

		res, err := queue.NewStore(pool).ReapDeadProcessors(t.Context(), checkIn)
		if err != nil {
			t.Fatalf("ReapDeadProcessors: %v", err)
		}
		want := queue.ReapResult{Dead: []int64{d1, d2, d3}, MovedJobs: 12, RequeuedPriority: 3}
		if !equalReap(res, want) {
			t.Errorf("ReapDeadProcessors = %+v, want %+v", res, want)
		}
		loads := testkit.UnfinishedLoads(t, pool)
		if s := testkit.Spread(loads, live); s > 1 || loads[live[0]]+loads[live[1]]+loads[live[2]] != 9 {
			t.Errorf("live loads = %v, want 9 jobs spread within 1", loads)
		}
		if got, want := testkit.SortedStrings(t, pool, `SELECT uuid FROM priorityjobs`), []string{"x1", "x2", "x3"}; !slices.Equal(got, want) {
			t.Errorf("priorityjobs = %v, want %v", got, want)
		}
	})

	// A heartbeat committed before the reap: the processor is live again.
	t.Run("HeartbeatBefore", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		testkit.Processor(t, pool, 0)
		p := testkit.Processor(t, pool, dead)
		testkit.NumberedJobs(t, pool, p, "p", 2, testkit.Started)
		testkit.PriorityTableWith(t, pool, p, "x")

		tx, err := pool.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(t.Context(), `UPDATE processors SET lastseendatetime = localtimestamp WHERE id = $1`, p); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		before := testkit.DBState(t, pool)

		res, err := queue.NewStore(pool).ReapDeadProcessors(t.Context(), checkIn)
		if err != nil || !equalReap(res, queue.ReapResult{}) {
			t.Errorf("ReapDeadProcessors = %+v, %v; want zero, nil", res, err)
		}
		if after := testkit.DBState(t, pool); after != before {
			t.Errorf("database changed:\nbefore %s\nafter  %s", before, after)
		}
	})

	// A heartbeat that commits while the reap waits for the row lock: the
	// reap checks the row again and leaves the processor alone, while it
	// reaps another that really is dead.
	t.Run("HeartbeatDuringReap", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		live := testkit.Processor(t, pool, 0)
		beating := testkit.Processor(t, pool, dead)
		gone := testkit.Processor(t, pool, dead)
		testkit.NumberedJobs(t, pool, beating, "beating", 2, testkit.Started)
		testkit.NumberedJobs(t, pool, gone, "gone", 2, testkit.Started)
		testkit.PriorityTableWith(t, pool, beating, "x")
		beatingJobs := testkit.SortedStrings(t, pool, `SELECT j::text FROM jobs j WHERE owner = $1`, beating)

		ctx := t.Context()
		hb, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer hb.Release()
		tx, err := hb.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		if _, err := tx.Exec(ctx, `UPDATE processors SET lastseendatetime = localtimestamp WHERE id = $1`, beating); err != nil {
			t.Fatal(err)
		}

		type result struct {
			res queue.ReapResult
			err error
		}
		done := make(chan result, 1)
		go func() {
			res, err := queue.NewStore(pool).ReapDeadProcessors(ctx, checkIn)
			done <- result{res, err}
		}()
		waitBlockedBy(t, pool, hb.Conn().PgConn().PID(), done)
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		r := <-done

		if r.err != nil {
			t.Fatalf("ReapDeadProcessors: %v", r.err)
		}
		if want := (queue.ReapResult{Dead: []int64{gone}, MovedJobs: 2}); !equalReap(r.res, want) {
			t.Errorf("ReapDeadProcessors = %+v, want %+v", r.res, want)
		}
		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM processors WHERE id = $1`, beating); n != 1 {
			t.Errorf("processor %d, which checked in, was deleted", beating)
		}
		if !testkit.HasPriorityTable(t, pool, beating) {
			t.Errorf("priority_jobs_%d, of a processor that checked in, was dropped", beating)
		}
		if got := testkit.SortedStrings(t, pool, `SELECT j::text FROM jobs j WHERE owner = $1`, beating); !slices.Equal(got, beatingJobs) {
			t.Errorf("jobs of the processor that checked in = %v, want unchanged %v", got, beatingJobs)
		}
		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs WHERE owner = $1 AND uuid LIKE 'gone-%'`, live); n != 2 {
			t.Errorf("live processor got %d jobs of the dead one, want 2", n)
		}
	})

	t.Run("NoSchema", func(t *testing.T) {
		t.Parallel()
		pool, _ := pgtest.EmptySchema(t)

		_, err := queue.NewStore(pool).ReapDeadProcessors(t.Context(), checkIn)
		if !errors.Is(err, queue.ErrSchemaMissing) {
			t.Errorf("ReapDeadProcessors without tables: err = %v, want ErrSchemaMissing", err)
		}
	})

	// 100,000 jobs move in one statement; the time is logged, not asserted.
	t.Run("ManyJobs", func(t *testing.T) {
		if testing.Short() {
			t.Skip("100,000 jobs: skipped in -short mode")
		}
		t.Parallel()
		pool := pgtest.Schema(t)
		live := testkit.ProcessorsSeen(t, pool, 3, 0)
		for i, p := range live {
			testkit.NumberedJobs(t, pool, p, fmt.Sprint("l", p), 1000*i, testkit.Queued)
		}
		d := testkit.Processor(t, pool, dead)
		testkit.NumberedJobs(t, pool, d, "started", 10_000, testkit.Started)
		testkit.NumberedJobs(t, pool, d, "queued", 80_000, testkit.Queued)
		testkit.NumberedJobs(t, pool, d, "ok", 10_000, testkit.Succeeded)
		vacuumAnalyze(t, pool)

		start := time.Now()
		res, err := queue.NewStore(pool).ReapDeadProcessors(t.Context(), checkIn)
		elapsed := time.Since(start)
		if err != nil {
			t.Fatalf("ReapDeadProcessors: %v", err)
		}
		t.Logf("reaping a processor with 100,000 jobs took %v", elapsed)
		if want := (queue.ReapResult{Dead: []int64{d}, MovedJobs: 100_000}); !equalReap(res, want) {
			t.Errorf("ReapDeadProcessors = %+v, want %+v", res, want)
		}
		loads := testkit.UnfinishedLoads(t, pool)
		if s := testkit.Spread(loads, live); s > 1 || len(loads) != 3 {
			t.Errorf("live loads = %v, want 93,000 jobs over %v within 1", loads, live)
		}
		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs WHERE success IS NULL AND starteddatetime IS NOT NULL`); n != 0 {
			t.Errorf("%d unfinished jobs still started", n)
		}
	})
}

// equalReap compares reap results, a nil Dead equal to an empty one.
func equalReap(a, b queue.ReapResult) bool {
	return slices.Equal(a.Dead, b.Dead) && a.MovedJobs == b.MovedJobs &&
		a.RequeuedPriority == b.RequeuedPriority && a.NoLiveProcessor == b.NoLiveProcessor
}

// waitBlockedBy returns once some session waits for a lock held by the
// backend pid. It fails the test if done delivers first: the operation that
// should wait did not.
func waitBlockedBy[T any](t *testing.T, pool *pgxpool.Pool, pid uint32, done <-chan T) {
	t.Helper()
	for {
		select {
		case r := <-done:
			t.Fatalf("finished without waiting for the lock: %+v", r)
		default:
		}
		var blocked bool
		err := pool.QueryRow(t.Context(),
			`SELECT EXISTS (SELECT FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid)))`, pid).Scan(&blocked)
		if err != nil {
			t.Fatal(err)
		}
		if blocked {
			return
		}
	}
}

// BenchmarkReapDeadProcessors reaps a processor owning 100,000 jobs (10,000
// started, 80,000 queued, 10,000 finished) in favour of 3 live processors.
func BenchmarkReapDeadProcessors(b *testing.B) {
	const checkIn = 5 * time.Minute
	pool := pgtest.Schema(b)
	store := queue.NewStore(pool)
	live := testkit.ProcessorsSeen(b, pool, 3, 0)

	for i := range b.N {
		b.StopTimer()
		if _, err := pool.Exec(b.Context(), `TRUNCATE jobs`); err != nil {
			b.Fatal(err)
		}
		for j, p := range live {
			testkit.NumberedJobs(b, pool, p, fmt.Sprint("l", p), 1000*j, testkit.Queued)
		}
		d := testkit.Processor(b, pool, 3*checkIn)
		testkit.NumberedJobs(b, pool, d, fmt.Sprint("started", i), 10_000, testkit.Started)
		testkit.NumberedJobs(b, pool, d, fmt.Sprint("queued", i), 80_000, testkit.Queued)
		testkit.NumberedJobs(b, pool, d, fmt.Sprint("ok", i), 10_000, testkit.Succeeded)
		testkit.PriorityTableWith(b, pool, d, "x", "y")
		vacuumAnalyze(b, pool)
		b.StartTimer()

		res, err := store.ReapDeadProcessors(b.Context(), checkIn)
		if err != nil {
			b.Fatal(err)
		}
		if res.MovedJobs != 100_000 || len(res.Dead) != 1 {
			b.Fatalf("ReapDeadProcessors = %+v", res)
		}
	}
}
