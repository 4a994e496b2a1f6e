package queue_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/dispatch"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

func TestEnqueue(t *testing.T) {
	t.Parallel()

	const checkIn = 5 * time.Minute
	// stale is between checkIn and twice checkIn.
	const stale = 3 * checkIn / 2

	// Classic 6.1 #14: 15 fresh processors, no jobs.
	t.Run("Classic14_EqualLoad", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		store := queue.NewStore(pool)
		procs := testkit.ProcessorsSeen(t, pool, 15, 0)

		res, err := store.Enqueue(t.Context(), testkit.CrashIDs("a", 15), 0, checkIn, nil)
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		var owners []int64
		for _, a := range res.Queued {
			owners = append(owners, a.Owner)
		}
		// Equal loads: lowest id first, each processor once.
		if !slices.Equal(owners, procs) {
			t.Errorf("owners of the first 15 = %v, want each processor once, in id order: %v", owners, procs)
		}

		if _, err := store.Enqueue(t.Context(), testkit.CrashIDs("b", 30), 0, checkIn, nil); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		loads := testkit.UnfinishedLoads(t, pool)
		for _, p := range procs {
			if loads[p] != 3 {
				t.Errorf("after 45 ids, processor %d has %d jobs, want 3 (loads %v)", p, loads[p], loads)
			}
		}
	})

	// A pass's batches reuse the load snapshot while it is fresh: the loads
	// are the snapshot's plus what was queued since, not the table's.
	t.Run("EnqueueWithReusesLoads", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		store := queue.NewStore(pool)
		procs := testkit.ProcessorsSeen(t, pool, 2, 0)
		// The table says both are idle; the snapshot says procs[0] has 3.
		// It was read just now and so slowly that it stays fresh.
		snapshot := dispatch.NewLoads([]dispatch.Load{{Processor: procs[0], Jobs: 3}, {Processor: procs[1], Jobs: 0}}, time.Now(), time.Hour)
		loads := &snapshot
		res, err := store.Enqueue(t.Context(), testkit.CrashIDs("a", 3), 0, checkIn, loads)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range res.Queued {
			if a.Owner != procs[1] {
				t.Errorf("%s went to %d, want %d (least loaded by the snapshot)", a.ID, a.Owner, procs[1])
			}
		}
		// Now 3 and 3 by the snapshot plus the batch: the next two split.
		res, err = store.Enqueue(t.Context(), testkit.CrashIDs("b", 2), 0, checkIn, loads)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Queued) != 2 || res.Queued[0].Owner != procs[0] || res.Queued[1].Owner != procs[1] {
			t.Errorf("second batch = %+v, want one each, lowest id first", res.Queued)
		}
		// A zero Loads reads the table, as Enqueue does, and keeps it.
		var fresh dispatch.Loads
		res, err = store.Enqueue(t.Context(), testkit.CrashIDs("c", 1), 0, checkIn, &fresh)
		if err != nil || res.Queued[0].Owner != procs[0] {
			t.Errorf("with a fresh read = %+v, %v; want processor %d (1 job against 4)", res.Queued, err, procs[0])
		}
	})

	t.Run("EqualLoadOneCall", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		procs := testkit.ProcessorsSeen(t, pool, 15, 0)

		res, err := queue.NewStore(pool).Enqueue(t.Context(), testkit.CrashIDs("a", 45), 0, checkIn, nil)
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		// Round-robin in id order: the ids 0-14, 15-29 and 30-44 each hit
		// every processor once.
		for i, a := range res.Queued {
			if want := procs[i%15]; a.Owner != want {
				t.Errorf("id %d went to processor %d, want %d", i, a.Owner, want)
			}
		}
		loads := testkit.UnfinishedLoads(t, pool)
		for _, p := range procs {
			if loads[p] != 3 {
				t.Errorf("processor %d has %d jobs, want 3", p, loads[p])
			}
		}
	})

	// Classic 6.1 #15: unfinished loads 1..5; finished jobs do not count.
	t.Run("Classic15_UnbalancedStart", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		procs := testkit.ProcessorsSeen(t, pool, 5, time.Minute)
		for i, p := range procs {
			// Started and unstarted unfinished jobs both count.
			testkit.NumberedJobs(t, pool, p, fmt.Sprintf("s%d", p), (i+1)/2, testkit.Started)
			testkit.NumberedJobs(t, pool, p, fmt.Sprintf("q%d", p), i+1-(i+1)/2, testkit.Queued)
		}
		// Finished jobs are not load: without this rule processor 1 would
		// get nothing.
		testkit.NumberedJobs(t, pool, procs[0], "ok", 10, testkit.Succeeded)
		testkit.NumberedJobs(t, pool, procs[0], "ko", 10, testkit.Failed)

		res, err := queue.NewStore(pool).Enqueue(t.Context(), testkit.CrashIDs("a", 15), 0, checkIn, nil)
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		got := map[int64]int64{}
		for _, a := range res.Queued {
			got[a.Owner]++
		}
		for i, p := range procs {
			if want := int64(5 - i); got[p] != want {
				t.Errorf("processor %d (load %d) got %d ids, want %d", p, i+1, got[p], want)
			}
		}
		loads := testkit.UnfinishedLoads(t, pool)
		for _, p := range procs {
			if loads[p] != 6 {
				t.Errorf("processor %d ends with %d unfinished jobs, want 6", p, loads[p])
			}
		}
	})

	t.Run("BigBatches", func(t *testing.T) {
		t.Parallel()
		for _, n := range []int{1_000, 10_000} {
			t.Run(fmt.Sprint(n), func(t *testing.T) {
				t.Parallel()
				pool := pgtest.Schema(t)
				procs := testkit.ProcessorsSeen(t, pool, 7, 0)

				res, err := queue.NewStore(pool).Enqueue(t.Context(), testkit.CrashIDs("a", n), 0, checkIn, nil)
				if err != nil {
					t.Fatalf("Enqueue of %d ids: %v", n, err)
				}
				if len(res.Queued) != n || len(res.Existing) != 0 {
					t.Errorf("%d queued, %d existing; want %d, 0", len(res.Queued), len(res.Existing), n)
				}
				if got := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs`); got != int64(n) {
					t.Errorf("%d jobs rows, want %d", got, n)
				}
				loads := testkit.UnfinishedLoads(t, pool)
				if s := testkit.Spread(loads, procs); s > 1 {
					t.Errorf("loads %v: max - min = %d, want <= 1", loads, s)
				}
			})
		}
	})

	// Classic 6.1 #12, fixed: an error, not an exit, and nothing inserted.
	t.Run("Classic12_NoProcessors", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)

		res, err := queue.NewStore(pool).Enqueue(t.Context(), testkit.CrashIDs("a", 3), 0, checkIn, nil)
		if !errors.Is(err, queue.ErrNoLiveProcessor) {
			t.Errorf("Enqueue without processors: err = %v, want ErrNoLiveProcessor", err)
		}
		if len(res.Queued) != 0 || len(res.Existing) != 0 {
			t.Errorf("Enqueue without processors = %+v, want empty", res)
		}
		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs`); n != 0 {
			t.Errorf("%d jobs inserted, want 0", n)
		}
	})

	// Classic 6.1 #13, fixed: stale (and dead) processors get nothing.
	t.Run("Classic13_OnlyStaleProcessors", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		testkit.ProcessorsSeen(t, pool, 3, stale)
		testkit.Processor(t, pool, 3*checkIn)
		testkit.ProcessorLastSeen(t, pool, "NULL")

		_, err := queue.NewStore(pool).Enqueue(t.Context(), testkit.CrashIDs("a", 3), 0, checkIn, nil)
		if !errors.Is(err, queue.ErrNoLiveProcessor) {
			t.Errorf("Enqueue with stale processors only: err = %v, want ErrNoLiveProcessor", err)
		}
		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs`); n != 0 {
			t.Errorf("%d jobs inserted, want 0", n)
		}
	})

	// Classic 6.1 #16, fixed: the live processor gets everything.
	t.Run("Classic16_SomeStaleProcessors", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		testkit.ProcessorsSeen(t, pool, 2, stale)
		live := testkit.Processor(t, pool, 0)
		testkit.ProcessorsSeen(t, pool, 2, stale)

		res, err := queue.NewStore(pool).Enqueue(t.Context(), testkit.CrashIDs("a", 4), 0, checkIn, nil)
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		for _, a := range res.Queued {
			if a.Owner != live {
				t.Errorf("%s went to processor %d, want the live one, %d", a.ID, a.Owner, live)
			}
		}
		if got := testkit.UnfinishedLoads(t, pool); len(got) != 1 || got[live] != 4 {
			t.Errorf("loads = %v, want only processor %d with 4", got, live)
		}
	})

	// Classic 6.1 #24, fixed: an id already queued is not an error.
	t.Run("Classic24_QueueJob", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		store := queue.NewStore(pool)
		procs := testkit.ProcessorsSeen(t, pool, 4, 0)
		ids := testkit.CrashIDs("a", 14)
		// Not sorted, to see that jobs.id follows the order given.
		slices.Reverse(ids[4:10])

		res, err := store.Enqueue(t.Context(), ids, 0, checkIn, nil)
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		if len(res.Existing) != 0 {
			t.Errorf("Existing = %v, want none", res.Existing)
		}
		var gotIDs []string
		returned := map[int64]int64{}
		for _, a := range res.Queued {
			gotIDs = append(gotIDs, a.ID)
			returned[a.Owner]++
			var owner int64
			if err := pool.QueryRow(t.Context(), `SELECT owner FROM jobs WHERE uuid = $1`, a.ID).Scan(&owner); err != nil {
				t.Fatalf("job %s: %v", a.ID, err)
			}
			if owner != a.Owner {
				t.Errorf("job %s: owner %d, Enqueue said %d", a.ID, owner, a.Owner)
			}
		}
		if !slices.Equal(gotIDs, ids) {
			t.Errorf("Queued ids = %v, want %v", gotIDs, ids)
		}
		stored := testkit.CountBy(t, pool, `SELECT owner, count(*) FROM jobs GROUP BY owner`)
		for _, p := range procs {
			if returned[p] != stored[p] {
				t.Errorf("processor %d: Enqueue assigned %d, jobs has %d", p, returned[p], stored[p])
			}
		}
		if s := testkit.Spread(stored, procs); s > 1 {
			t.Errorf("per-owner counts %v: max - min = %d, want <= 1", stored, s)
		}
		byID := testkit.SortedStrings(t, pool, `SELECT lpad(id::text, 10, '0') || ' ' || uuid FROM jobs`)
		for i, s := range byID {
			if want := ids[i]; s[11:] != want {
				t.Errorf("job #%d by id is %s, want %s (the order given)", i, s[11:], want)
			}
		}

		// Again, at another priority: the id comes back in Existing and its
		// row does not change.
		before := testkit.DBState(t, pool)
		res, err = store.Enqueue(t.Context(), []string{ids[3]}, 1, checkIn, nil)
		if err != nil {
			t.Fatalf("Enqueue of a queued id: %v", err)
		}
		if len(res.Queued) != 0 || !slices.Equal(res.Existing, []string{ids[3]}) {
			t.Errorf("Enqueue of a queued id = %+v, want it in Existing only", res)
		}
		if after := testkit.DBState(t, pool); after != before {
			t.Errorf("Enqueue of a queued id changed the database:\nbefore %s\nafter  %s", before, after)
		}

		res, err = store.Enqueue(t.Context(), []string{"new-1", ids[5], "new-2"}, 0, checkIn, nil)
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		if !slices.Equal(res.Existing, []string{ids[5]}) || len(res.Queued) != 2 ||
			res.Queued[0].ID != "new-1" || res.Queued[1].ID != "new-2" {
			t.Errorf("Enqueue(new-1, queued, new-2) = %+v", res)
		}
	})

	t.Run("Duplicates", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		testkit.ProcessorsSeen(t, pool, 2, 0)

		res, err := queue.NewStore(pool).Enqueue(t.Context(), []string{"x", "y", "x", "z", "y"}, 0, checkIn, nil)
		if err != nil {
			t.Fatalf("Enqueue with repeated ids: %v", err)
		}
		var got []string
		for _, a := range res.Queued {
			got = append(got, a.ID)
		}
		if !slices.Equal(got, []string{"x", "y", "z"}) || len(res.Existing) != 0 {
			t.Errorf("Enqueue(x, y, x, z, y) = %+v, want x, y, z queued", res)
		}
		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs`); n != 3 {
			t.Errorf("%d jobs, want 3", n)
		}
	})

	t.Run("Columns", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		testkit.Processor(t, pool, 0)

		if _, err := queue.NewStore(pool).Enqueue(t.Context(), []string{"x"}, 7, checkIn, nil); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		var ok bool
		err := pool.QueryRow(t.Context(), `
SELECT pathname = '' AND priority = 7
       AND queueddatetime BETWEEN localtimestamp - interval '1 minute' AND localtimestamp
       AND starteddatetime IS NULL AND completeddatetime IS NULL AND success IS NULL AND message IS NULL
FROM jobs WHERE uuid = 'x'`).Scan(&ok)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Errorf("job row: %s", testkit.DBState(t, pool))
		}
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)

		for _, ids := range [][]string{nil, {}} {
			res, err := queue.NewStore(pool).Enqueue(t.Context(), ids, 0, checkIn, nil)
			if err != nil || len(res.Queued) != 0 || len(res.Existing) != 0 {
				t.Errorf("Enqueue(%#v) = %+v, %v; want empty, nil", ids, res, err)
			}
		}
	})

	t.Run("NoSchema", func(t *testing.T) {
		t.Parallel()
		pool, _ := pgtest.EmptySchema(t)

		_, err := queue.NewStore(pool).Enqueue(t.Context(), []string{"x"}, 0, checkIn, nil)
		if !errors.Is(err, queue.ErrSchemaMissing) {
			t.Errorf("Enqueue without tables: err = %v, want ErrSchemaMissing", err)
		}
	})
}

// TestLiveness: the liveness rule (monitor_processor_state, migration 005):
// live within processorCheckInTime, stale within twice that, dead beyond or
// never seen.
func TestLiveness(t *testing.T) {
	t.Parallel()

	const checkIn = 5 * time.Minute

	t.Run("Counts", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		store := queue.NewStore(pool)
		states := func() map[string]int {
			st, err := store.Status(t.Context(), checkIn)
			if err != nil {
				t.Fatal(err)
			}
			n := map[string]int{}
			for _, p := range st.Processors {
				n[p.State]++
			}
			return n
		}

		if n := states(); n["live"] != 0 {
			t.Errorf("live processors without processors = %d; want 0", n["live"])
		}
		testkit.Processor(t, pool, 0)
		testkit.Processor(t, pool, checkIn-time.Minute)
		testkit.Processor(t, pool, checkIn+time.Minute)
		testkit.Processor(t, pool, 3*checkIn)
		testkit.ProcessorLastSeen(t, pool, "NULL")
		testkit.ProcessorLastSeen(t, pool, "'1999-01-01'")
		if n := states(); n["live"] != 2 || n["stale"] != 1 || n["dead"] != 3 {
			t.Errorf("states = %v; want 2 live, 1 stale, 3 dead", n)
		}
	})

	t.Run("NoSchema", func(t *testing.T) {
		t.Parallel()
		pool, _ := pgtest.EmptySchema(t)

		_, err := queue.NewStore(pool).Status(t.Context(), checkIn)
		if !errors.Is(err, queue.ErrSchemaMissing) {
			t.Errorf("Status without tables: err = %v, want ErrSchemaMissing", err)
		}
	})
}

// BenchmarkEnqueue queues batches of 1,000 new ids over 4 live processors,
// into an empty queue and into one with a backlog of 100,000 unfinished
// jobs (the load query counts them on every batch).
func BenchmarkEnqueue(b *testing.B) {
	const (
		checkIn = 5 * time.Minute
		batch   = 1_000
	)
	for _, backlog := range []int{0, 100_000} {
		b.Run(fmt.Sprintf("Backlog%d", backlog), func(b *testing.B) {
			pool := pgtest.Schema(b)
			store := queue.NewStore(pool)
			procs := testkit.ProcessorsSeen(b, pool, 4, 0)
			for i, p := range procs {
				testkit.NumberedJobs(b, pool, p, fmt.Sprintf("backlog%d", i), backlog/len(procs), testkit.Queued)
			}
			vacuumAnalyze(b, pool)
			ids := testkit.CrashIDs("bench", b.N*batch)

			b.ResetTimer()
			for i := range b.N {
				res, err := store.Enqueue(b.Context(), ids[i*batch:(i+1)*batch], 0, checkIn, nil)
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Queued) != batch {
					b.Fatalf("queued %d, want %d", len(res.Queued), batch)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "ids/s")
		})
	}
}

// vacuumAnalyze brings the jobs table's statistics and visibility map up to
// date, as autovacuum would on a server at rest.
func vacuumAnalyze(tb testing.TB, pool *pgxpool.Pool) {
	tb.Helper()
	if _, err := pool.Exec(tb.Context(), `VACUUM ANALYZE jobs, processors`); err != nil {
		tb.Fatal(err)
	}
}
