package queue

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// FinishedJob is a job a processor finished, whose crash files the cleanup
// loop archives or deletes before removing the row.
type FinishedJob struct {
	UUID string
	// Success is the processor's verdict: it picks the archive tree.
	Success bool
	// Turnaround is how long the job took from queued to completed, by the
	// database's columns; zero when either is missing.
	Turnaround time.Duration

	// The job's place in the cleanup order, for FinishedJobs' after.
	id        int64
	completed pgtype.Timestamp
}

// CleanupFailure is one failed cleanup attempt, to record.
type CleanupFailure struct {
	UUID  string
	Error string
}

// CleanupRetry is what RecordCleanupFailures made of a failure: how many
// attempts have failed so far, and how long until the job is tried again.
type CleanupRetry struct {
	UUID     string
	Attempts int
	RetryIn  time.Duration
}

// FailingCleanup is a finished job whose cleanup keeps failing, as status
// shows it.
type FailingCleanup struct {
	UUID      string
	Attempts  int
	LastError string
	// LastFailed is when the last attempt failed: a wall-clock time of the
	// database session's time zone, returned with location UTC.
	LastFailed time.Time
	// RetryIn is how long until the next attempt (negative when due).
	RetryIn time.Duration
}

const (
	// finishedJobsQuery reads up to $1 finished jobs, oldest first (jobs
	// without a completion time count as oldest), through
	// jobs_finished_completed_idx, skipping those whose last cleanup failed
	// and whose retry time has not come. When $2 is not null, only the jobs
	// after the job (completeddatetime $3, id $2) in that order; when $4 is
	// not null, only those whose success is $4.
	finishedJobsQuery = `
SELECT j.id, j.completeddatetime, j.uuid, j.success,
       coalesce(extract(epoch FROM j.completeddatetime - j.queueddatetime), 0)::float8
FROM jobs j
WHERE j.success IS NOT NULL
  AND ($2::bigint IS NULL
       OR ($3::timestamp IS NULL AND (j.completeddatetime IS NOT NULL OR j.id > $2))
       OR j.completeddatetime > $3
       OR (j.completeddatetime = $3 AND j.id > $2))
  AND NOT EXISTS (
      SELECT FROM monitor_cleanup_failures f
      WHERE f.uuid = j.uuid AND f.retry_after > localtimestamp)
  AND ($4::boolean IS NULL OR j.success = $4)
ORDER BY j.completeddatetime NULLS FIRST, j.id
LIMIT $1`

	// deleteFinishedJobsQuery deletes the rows of the jobs $1 whose cleanup
	// is done, re-checking that they are finished, and their failure rows.
	deleteFinishedJobsQuery = `
WITH done AS (
    DELETE FROM jobs WHERE uuid = ANY($1::text[]) AND success IS NOT NULL
    RETURNING uuid
), cleared AS (
    DELETE FROM monitor_cleanup_failures WHERE uuid = ANY($1::text[])
)
SELECT count(*) FROM done`

	// recordCleanupFailuresQuery records failed attempts ($1 uuids, $2
	// errors): the first failure waits $3, each further one twice as long
	// as the one before, at most $4.
	recordCleanupFailuresQuery = `
INSERT INTO monitor_cleanup_failures AS f
    (uuid, attempts, last_error, first_failed_at, last_failed_at, retry_after)
SELECT t.uuid, 1, t.error, localtimestamp, localtimestamp, localtimestamp + least($3::interval, $4::interval)
FROM unnest($1::text[], $2::text[]) AS t(uuid, error)
ON CONFLICT (uuid) DO UPDATE SET
    attempts = f.attempts + 1,
    last_error = excluded.last_error,
    last_failed_at = excluded.last_failed_at,
    retry_after = excluded.last_failed_at
        + least($4::interval, $3::interval * power(2, least(f.attempts, 30)))
RETURNING f.uuid, f.attempts, f.retry_after - localtimestamp`

	// purgeCleanupFailuresQuery forgets failures of jobs that are gone or
	// no longer finished (deleted by hand, or reset by a processor).
	purgeCleanupFailuresQuery = `
DELETE FROM monitor_cleanup_failures f
WHERE NOT EXISTS (SELECT FROM jobs j WHERE j.uuid = f.uuid AND j.success IS NOT NULL)`

	statusCleanupCountQuery = `SELECT count(*) FROM monitor_cleanup_failures`

	// statusCleanupRecentQuery lists the latest failures; $1 is the limit.
	statusCleanupRecentQuery = `
SELECT uuid, attempts, last_error, last_failed_at, retry_after - localtimestamp
FROM monitor_cleanup_failures
ORDER BY last_failed_at DESC, uuid
LIMIT $1`
)

// FinishedJobs returns up to limit finished jobs (success is not null),
// oldest first: by completeddatetime (none counting as oldest), then id.
// Jobs whose cleanup failed are left out until their retry time. With after
// (a job an earlier call returned) only the jobs after it in that order are
// returned, so that the next batch can be read while the rows of the last
// one are still there.
func (s *Store) FinishedJobs(ctx context.Context, limit int, after *FinishedJob) ([]FinishedJob, error) {
	return s.FinishedJobsOf(ctx, AllVerdicts, limit, after)
}

// Verdicts selects finished jobs by their processor's verdict.
type Verdicts uint8

const (
	AllVerdicts Verdicts = iota // succeeded and failed
	OnlySucceeded
	OnlyFailed
)

// FinishedJobsOf is FinishedJobs for the jobs of verdicts only (the
// cleanup reads only the jobs whose archive tree can be written).
func (s *Store) FinishedJobsOf(ctx context.Context, verdicts Verdicts, limit int, after *FinishedJob) ([]FinishedJob, error) {
	var afterID *int64
	var afterCompleted pgtype.Timestamp
	if after != nil {
		afterID, afterCompleted = &after.id, after.completed
	}
	var success *bool
	if verdicts != AllVerdicts {
		success = new(verdicts == OnlySucceeded)
	}
	rows, err := s.pool.Query(ctx, finishedJobsQuery, limit, afterID, afterCompleted, success)
	if err != nil {
		return nil, DBError(err, "read finished jobs")
	}
	jobs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (FinishedJob, error) {
		var j FinishedJob
		var turnaround float64
		err := row.Scan(&j.id, &j.completed, &j.UUID, &j.Success, &turnaround)
		j.Turnaround = time.Duration(turnaround * float64(time.Second))
		return j, err
	})
	if err != nil {
		return nil, DBError(err, "read finished jobs")
	}
	return jobs, nil
}

// DeleteFinishedJobs removes, in one statement, the rows of the finished
// jobs uuids whose crash files have been archived or deleted, and their
// failure records. A row that is not finished (any more) is left alone. It
// returns how many job rows it deleted.
func (s *Store) DeleteFinishedJobs(ctx context.Context, uuids []string) (int64, error) {
	if len(uuids) == 0 {
		return 0, nil
	}
	var n int64
	err := s.write(ctx, func(q dbtx) error { return q.QueryRow(ctx, deleteFinishedJobsQuery, uuids).Scan(&n) })
	if err != nil {
		return 0, DBError(err, "delete %d finished jobs", len(uuids))
	}
	return n, nil
}

// RecordCleanupFailures records, in one statement, a failed cleanup attempt
// for each job of failures, and returns when each will be tried again: after
// first (a minute in the loop) the first time, then twice as long after each
// further failure, at most max (an hour). The database clock decides. A uuid
// given twice counts once, with its last error.
func (s *Store) RecordCleanupFailures(ctx context.Context, failures []CleanupFailure, first, max time.Duration) ([]CleanupRetry, error) {
	if len(failures) == 0 {
		return nil, nil
	}
	index := make(map[string]int, len(failures))
	var uuids, errs []string
	for _, f := range failures {
		if i, ok := index[f.UUID]; ok {
			errs[i] = f.Error
			continue
		}
		index[f.UUID] = len(uuids)
		uuids = append(uuids, f.UUID)
		errs = append(errs, f.Error)
	}
	var retries []CleanupRetry
	err := s.write(ctx, func(q dbtx) error {
		rows, err := q.Query(ctx, recordCleanupFailuresQuery, uuids, errs, interval(first), interval(max))
		if err != nil {
			return err
		}
		retries, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (CleanupRetry, error) {
			var r CleanupRetry
			var in pgtype.Interval
			err := row.Scan(&r.UUID, &r.Attempts, &in)
			r.RetryIn = duration(in)
			return r, err
		})
		return err
	})
	if err != nil {
		return nil, DBError(err, "record %d cleanup failures", len(uuids))
	}
	return retries, nil
}

// PurgeCleanupFailures forgets the failure records of jobs that no longer
// exist or are no longer finished, and returns how many it removed.
func (s *Store) PurgeCleanupFailures(ctx context.Context) (int64, error) {
	var tag pgconn.CommandTag
	err := s.write(ctx, func(q dbtx) (err error) {
		tag, err = q.Exec(ctx, purgeCleanupFailuresQuery)
		return err
	})
	if err != nil {
		return 0, DBError(err, "purge cleanup failures")
	}
	return tag.RowsAffected(), nil
}

// readCleanupStatus reads the results of statusCleanupCountQuery and
// statusCleanupRecentQuery from a status batch.
func readCleanupStatus(br pgx.BatchResults, st *Status) error {
	if err := br.QueryRow().Scan(&st.CleanupFailing); err != nil {
		return err
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	st.CleanupFailures, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (FailingCleanup, error) {
		var f FailingCleanup
		var in pgtype.Interval
		err := row.Scan(&f.UUID, &f.Attempts, &f.LastError, &f.LastFailed, &in)
		f.RetryIn = duration(in)
		return f, err
	})
	return err
}
