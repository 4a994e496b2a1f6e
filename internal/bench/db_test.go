package bench_test

import (
	"slices"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/internal/bench"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
)

// TestBenchProbesAndCopy: CopyJobs inserts unstarted jobs owned round-robin;
// the probes see them.
func TestBenchProbesAndCopy(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	ctx := t.Context()
	b := bench.NewDB(pool)
	if hi, err := b.HighestJobID(ctx); err != nil || hi != 0 {
		t.Fatalf("empty jobs: highest id %d, %v", hi, err)
	}
	procs := testkit.ProcessorsSeen(t, pool, 2, 0)
	ids := testkit.CrashIDs("copy", 5)
	n, err := b.CopyJobs(ctx, ids, procs)
	if err != nil || n != 5 {
		t.Fatalf("CopyJobs = %d, %v", n, err)
	}
	if c, err := b.JobCount(ctx); err != nil || c != 5 {
		t.Errorf("JobCount = %d, %v", c, err)
	}
	if hi, err := b.HighestJobID(ctx); err != nil || hi < 5 {
		t.Errorf("HighestJobID = %d, %v", hi, err)
	}
	if c, err := b.OwnedCount(ctx, procs[0]); err != nil || c != 3 {
		t.Errorf("OwnedCount = %d, %v; want 3", c, err)
	}
	loads := testkit.UnfinishedLoads(t, pool)
	if loads[procs[0]] != 3 || loads[procs[1]] != 2 {
		t.Errorf("owners: %v", loads)
	}
	if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs WHERE starteddatetime IS NULL AND priority = 0 AND pathname = ''`); n != 5 {
		t.Errorf("%d plain unstarted jobs, want 5", n)
	}
	found, err := b.QueuedAmong(ctx, []string{ids[1], "not-queued", ids[4]})
	slices.Sort(found)
	if err != nil || !slices.Equal(found, []string{ids[1], ids[4]}) {
		t.Errorf("QueuedAmong = %v, %v", found, err)
	}
	if found, err := b.QueuedAmong(ctx, nil); err != nil || found != nil {
		t.Errorf("QueuedAmong(nil) = %v, %v", found, err)
	}
	if _, err := b.CopyJobs(ctx, ids[:1], nil); err == nil {
		t.Error("CopyJobs without owners: no error")
	}
	if _, err := b.CopyJobs(ctx, ids[:1], procs); err == nil {
		t.Error("CopyJobs of an id already queued: no error")
	}
	if err := b.Analyze(ctx); err != nil {
		t.Error(err)
	}
}

// TestBenchClassic: the classic scheduler's snapshot lists every processor,
// a stale or dead one with a count of 0 (liveness in the join condition),
// and ClassicQueueJob inserts one job per call, a duplicate being an error.
func TestBenchClassic(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	ctx := t.Context()
	b := bench.NewDB(pool)
	live := testkit.Processor(t, pool, 0)
	stale := testkit.Processor(t, pool, 3*time.Hour)
	testkit.NumberedJobs(t, pool, live, "live", 3, testkit.Queued)
	testkit.NumberedJobs(t, pool, live, "done", 2, testkit.Succeeded)
	testkit.NumberedJobs(t, pool, stale, "stale", 4, testkit.Queued)

	loads, err := b.ClassicLoads(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(loads, func(a, b bench.ClassicLoad) int { return int(a.ID - b.ID) })
	want := []bench.ClassicLoad{{ID: live, Count: 3}, {ID: stale, Count: 0}}
	if !slices.Equal(loads, want) {
		t.Errorf("ClassicLoads = %v, want %v", loads, want)
	}

	at := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	if err := b.ClassicQueueJob(ctx, "classic-1", live, at); err != nil {
		t.Fatal(err)
	}
	if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs WHERE uuid = 'classic-1' AND owner = $1 AND priority = 0 AND starteddatetime IS NULL`, live); n != 1 {
		t.Errorf("classic job rows = %d", n)
	}
	if err := b.ClassicQueueJob(ctx, "classic-1", stale, at); err == nil {
		t.Error("a duplicate: no error (the classic monitor got a unique violation)")
	}
}
