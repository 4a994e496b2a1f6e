package queue_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

func uuidsOf(jobs []queue.FinishedJob) []string {
	var out []string
	for _, j := range jobs {
		out = append(out, j.UUID)
	}
	return out
}

// allFinished returns every finished job in order.
func allFinished(t *testing.T, store *queue.Store) []queue.FinishedJob {
	t.Helper()
	jobs, err := store.FinishedJobs(t.Context(), 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

func TestFinishedJobs(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	store := queue.NewStore(pool)
	ctx := t.Context()
	owner := testkit.Processor(t, pool, 0)
	// Inserted in an order that differs from the wanted one; ids follow
	// the insertion order.
	testkit.Exec(t, pool, `
INSERT INTO jobs (uuid, owner, queueddatetime, starteddatetime, completeddatetime, success) VALUES
    ('late',     $1, localtimestamp, localtimestamp, localtimestamp - interval '1 minute', true),
    ('queued',   $1, localtimestamp, NULL, NULL, NULL),
    ('early',    $1, localtimestamp, localtimestamp, localtimestamp - interval '1 hour', false),
    ('nodate-b', $1, localtimestamp, localtimestamp, NULL, false),
    ('started',  $1, localtimestamp, localtimestamp, NULL, NULL),
    ('tie-1',    $1, localtimestamp, localtimestamp, '2020-01-01', true),
    ('tie-2',    $1, localtimestamp, localtimestamp, '2020-01-01', true),
    ('nodate-a', $1, localtimestamp, localtimestamp, NULL, true)`, owner)

	jobs, err := store.FinishedJobs(ctx, 100, nil)
	if err != nil {
		t.Fatalf("FinishedJobs: %v", err)
	}
	want := []string{"nodate-b", "nodate-a", "tie-1", "tie-2", "early", "late"}
	if got := uuidsOf(jobs); !slices.Equal(got, want) {
		t.Errorf("FinishedJobs = %v, want %v", got, want)
	}
	for _, j := range jobs {
		if wantOK := j.UUID != "early" && j.UUID != "nodate-b"; j.Success != wantOK {
			t.Errorf("%s: Success = %v, want %v", j.UUID, j.Success, wantOK)
		}
	}
	if jobs, err = store.FinishedJobs(ctx, 2, nil); err != nil || !slices.Equal(uuidsOf(jobs), want[:2]) {
		t.Errorf("FinishedJobs(2) = %v, %v; want %v", uuidsOf(jobs), err, want[:2])
	}
	// Batch after batch, each after the last job of the one before, while
	// the rows are still there: after a job without a completion time, then
	// after ones with equal and with distinct times.
	var got []string
	var after *queue.FinishedJob
	for range 10 {
		batch, err := store.FinishedJobs(ctx, 2, after)
		if err != nil {
			t.Fatalf("FinishedJobs after %v: %v", after, err)
		}
		if len(batch) == 0 {
			break
		}
		got = append(got, uuidsOf(batch)...)
		after = &batch[len(batch)-1]
	}
	if !slices.Equal(got, want) {
		t.Errorf("FinishedJobs in batches of 2 = %v, want %v", got, want)
	}
	for i := range want {
		rest, err := store.FinishedJobs(ctx, 100, &allFinished(t, store)[i])
		if err != nil || !slices.Equal(uuidsOf(rest), want[i+1:]) {
			t.Errorf("FinishedJobs after %s = %v, %v; want %v", want[i], uuidsOf(rest), err, want[i+1:])
		}
	}
	// One verdict only, from the start or after a job of the other one.
	for _, tt := range []struct {
		verdicts queue.Verdicts
		after    int
		want     []string
	}{
		{queue.OnlySucceeded, -1, []string{"nodate-a", "tie-1", "tie-2", "late"}},
		{queue.OnlyFailed, -1, []string{"nodate-b", "early"}},
		{queue.OnlyFailed, 2, []string{"early"}},
		{queue.AllVerdicts, 3, want[4:]},
	} {
		var after *queue.FinishedJob
		if tt.after >= 0 {
			after = &allFinished(t, store)[tt.after]
		}
		got, err := store.FinishedJobsOf(ctx, tt.verdicts, 100, after)
		if err != nil || !slices.Equal(uuidsOf(got), tt.want) {
			t.Errorf("FinishedJobsOf(%d, after %d) = %v, %v; want %v", tt.verdicts, tt.after, uuidsOf(got), err, tt.want)
		}
	}

	// A job whose cleanup failed waits for its retry time; one whose retry
	// time has come is back in order.
	testkit.Exec(t, pool, `
INSERT INTO monitor_cleanup_failures (uuid, attempts, last_error, first_failed_at, last_failed_at, retry_after) VALUES
    ('nodate-b', 1, 'boom', localtimestamp, localtimestamp, localtimestamp + interval '1 minute'),
    ('tie-1', 3, 'boom', localtimestamp, localtimestamp, localtimestamp - interval '1 second')`)
	jobs, err = store.FinishedJobs(ctx, 100, nil)
	if want := []string{"nodate-a", "tie-1", "tie-2", "early", "late"}; err != nil || !slices.Equal(uuidsOf(jobs), want) {
		t.Errorf("FinishedJobs with failures = %v, %v; want %v", uuidsOf(jobs), err, want)
	}
}

func TestDeleteFinishedJobs(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	store := queue.NewStore(pool)
	ctx := t.Context()
	owner := testkit.Processor(t, pool, 0)
	testkit.NumberedJobs(t, pool, owner, "ok", 3, testkit.Succeeded)
	testkit.NumberedJobs(t, pool, owner, "ko", 2, testkit.Failed)
	testkit.NumberedJobs(t, pool, owner, "run", 1, testkit.Started)
	if _, err := store.RecordCleanupFailures(ctx, []queue.CleanupFailure{{"ok-1", "e"}, {"ko-2", "e"}, {"ok-3", "e"}},
		time.Minute, time.Hour); err != nil {
		t.Fatal(err)
	}

	// A finished row goes with its failure record; an unfinished one (the
	// WHERE re-checks) and an unknown one do nothing.
	n, err := store.DeleteFinishedJobs(ctx, []string{"ok-1", "ok-2", "ko-2", "run-1", "nowhere"})
	if err != nil || n != 3 {
		t.Fatalf("DeleteFinishedJobs = %d, %v; want 3", n, err)
	}
	if got := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs`); got != 3 {
		t.Errorf("%d jobs left, want 3 (ok-3, ko-1, run-1)", got)
	}
	if got := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs WHERE uuid = 'run-1'`); got != 1 {
		t.Error("an unfinished job was deleted")
	}
	if got := testkit.QueryInt64(t, pool, `SELECT count(*) FROM monitor_cleanup_failures WHERE uuid <> 'ok-3'`); got != 0 {
		t.Errorf("%d failure records of deleted jobs left", got)
	}
	if n, err := store.DeleteFinishedJobs(ctx, nil); n != 0 || err != nil {
		t.Errorf("DeleteFinishedJobs(nil) = %d, %v", n, err)
	}
}

func TestRecordCleanupFailures(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	store := queue.NewStore(pool)
	ctx := t.Context()
	const first, max = time.Minute, 5 * time.Minute

	near := func(got, want time.Duration) bool { return got > want-5*time.Second && got <= want }
	record := func(fs ...queue.CleanupFailure) map[string]queue.CleanupRetry {
		t.Helper()
		rs, err := store.RecordCleanupFailures(ctx, fs, first, max)
		if err != nil {
			t.Fatalf("RecordCleanupFailures: %v", err)
		}
		out := map[string]queue.CleanupRetry{}
		for _, r := range rs {
			out[r.UUID] = r
		}
		return out
	}

	rs := record(queue.CleanupFailure{"a", "first a"}, queue.CleanupFailure{"b", "first b"}, queue.CleanupFailure{"a", "second a"})
	if len(rs) != 2 || rs["a"].Attempts != 1 || !near(rs["a"].RetryIn, first) || rs["b"].Attempts != 1 {
		t.Errorf("first failures = %+v, want a and b at attempt 1, retry in %v", rs, first)
	}
	var lastErr string
	if err := pool.QueryRow(ctx, `SELECT last_error FROM monitor_cleanup_failures WHERE uuid = 'a'`).Scan(&lastErr); err != nil || lastErr != "second a" {
		t.Errorf("last_error of a = %q, %v; want the last one given", lastErr, err)
	}
	// Doubling up to the cap: 1m, 2m, 4m, 5m, 5m.
	for i, want := range []time.Duration{2 * time.Minute, 4 * time.Minute, max, max} {
		rs = record(queue.CleanupFailure{"a", "again"})
		if rs["a"].Attempts != i+2 || !near(rs["a"].RetryIn, want) {
			t.Errorf("failure %d of a = %+v, want retry in %v", i+2, rs["a"], want)
		}
	}
	if got := testkit.QueryInt64(t, pool, `SELECT count(*) FROM monitor_cleanup_failures WHERE first_failed_at < last_failed_at OR uuid = 'b'`); got != 2 {
		t.Errorf("first_failed_at not kept: %d rows", got)
	}

	// Status lists the count and the latest failures, most recent first.
	owner := testkit.Processor(t, pool, 0)
	testkit.NumberedJobs(t, pool, owner, "x", 1, testkit.Succeeded)
	testkit.Exec(t, pool, `UPDATE monitor_cleanup_failures SET last_failed_at = last_failed_at - interval '1 hour' WHERE uuid = 'b'`)
	st, err := store.Status(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if st.CleanupFailing != 2 || len(st.CleanupFailures) != 2 || st.CleanupFailures[0].UUID != "a" ||
		st.CleanupFailures[0].Attempts != 5 || st.CleanupFailures[0].LastError != "again" ||
		!near(st.CleanupFailures[0].RetryIn, max) || st.CleanupFailures[1].UUID != "b" {
		t.Errorf("status cleanup = %d %+v", st.CleanupFailing, st.CleanupFailures)
	}

	// Records of jobs that are gone or not finished are purged.
	testkit.Exec(t, pool, `INSERT INTO jobs (uuid, owner, queueddatetime) VALUES ('a', $1, localtimestamp)`, owner)
	record(queue.CleanupFailure{"x-1", "kept"})
	if n, err := store.PurgeCleanupFailures(ctx); n != 2 || err != nil {
		t.Errorf("PurgeCleanupFailures = %d, %v; want 2 (a unfinished, b gone)", n, err)
	}
	if got := testkit.QueryInt64(t, pool, `SELECT count(*) FROM monitor_cleanup_failures WHERE uuid = 'x-1'`); got != 1 {
		t.Error("the failure record of a finished job was purged")
	}
	if rs, err := store.RecordCleanupFailures(ctx, nil, first, max); rs != nil || err != nil {
		t.Errorf("RecordCleanupFailures(nil) = %v, %v", rs, err)
	}
}

func TestCleanupQueriesWithoutSchema(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.EmptySchema(t)
	store := queue.NewStore(pool)
	if _, err := store.FinishedJobs(t.Context(), 10, nil); !errors.Is(err, queue.ErrSchemaMissing) {
		t.Errorf("FinishedJobs without tables: err = %v, want ErrSchemaMissing", err)
	}
	if _, err := store.DeleteFinishedJobs(t.Context(), []string{"a"}); !errors.Is(err, queue.ErrSchemaMissing) {
		t.Errorf("DeleteFinishedJobs without tables: err = %v, want ErrSchemaMissing", err)
	}
}
