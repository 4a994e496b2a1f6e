// Package bench holds what the benchmark harness (cmd/monitorbench) and the
// measuring tests need beside the monitor: the statements the monitor itself
// never runs (progress probes, the classic monitor's one-commit-per-crash
// queuing and its balanced scheduler, to compare against, and a raw COPY of
// job rows, the ceiling no queuing can beat) and the latency measurements.
// Nothing in the monitor binary imports it.
package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DB is a pool that runs the benchmark harness's statements. It is safe for
// concurrent use.
type DB pgxpool.Pool

// NewDB returns pool as a DB; its search_path picks the schema.
func NewDB(pool *pgxpool.Pool) *DB { return (*DB)(pool) }

// pool returns the pool b is.
func (b *DB) pool() *pgxpool.Pool { return (*pgxpool.Pool)(b) }

// ClassicLoad is one row of the classic balanced scheduler's snapshot: a
// processor and its number of unfinished jobs (zero when it is not live).
type ClassicLoad struct {
	ID    int64
	Count int64
}

const (
	// highestJobIDQuery is a progress probe that costs one index lookup
	// whatever the size of jobs: ids follow insertion.
	highestJobIDQuery = `SELECT coalesce(max(id), 0) FROM jobs`

	jobCountQuery = `SELECT count(*) FROM jobs`

	// pendingPriorityQuery counts those of the ids $1 still requested.
	pendingPriorityQuery = `SELECT count(*) FROM priorityjobs WHERE uuid = ANY($1::text[])`

	// queuedAmongQuery returns those of the ids $1 that have a job.
	queuedAmongQuery = `SELECT uuid FROM jobs WHERE uuid = ANY($1::text[])`

	// classicLoadsQuery is the classic jobSchedulerIter's query
	// (socorro-classic 3.5): every processor, with the liveness test in
	// the join condition, so processors that are not live come back with a
	// count of 0. $1 is processorCheckInTime.
	classicLoadsQuery = `
SELECT p.id, count(j.owner)
FROM processors p
LEFT JOIN jobs j ON p.id = j.owner AND p.lastseendatetime > now() - $1::interval AND j.success IS NULL
GROUP BY p.id`

	// classicInsertQuery is the classic queueJob's insert (socorro-classic
	// 3.7): one row, queued at the monitor's local time $3.
	classicInsertQuery = `
INSERT INTO jobs (pathname, uuid, owner, priority, queueddatetime) VALUES ('', $1, $2, 0, $3)`
)

// HighestJobID returns the largest jobs.id, 0 for none: with no rollbacks
// and no deletes in between, the number of rows ever inserted.
func (b *DB) HighestJobID(ctx context.Context) (int64, error) {
	var id int64
	if err := b.pool().QueryRow(ctx, highestJobIDQuery).Scan(&id); err != nil {
		return 0, fmt.Errorf("highest job id: %w", err)
	}
	return id, nil
}

// JobCount returns the number of rows in jobs.
func (b *DB) JobCount(ctx context.Context) (int64, error) {
	var n int64
	if err := b.pool().QueryRow(ctx, jobCountQuery).Scan(&n); err != nil {
		return 0, fmt.Errorf("count jobs: %w", err)
	}
	return n, nil
}

// QueuedAmong returns, in no particular order, those of ids that have a jobs
// row.
func (b *DB) QueuedAmong(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := b.pool().Query(ctx, queuedAmongQuery, ids)
	if err != nil {
		return nil, fmt.Errorf("look up %d jobs: %w", len(ids), err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("look up %d jobs: %w", len(ids), err)
	}
	return found, nil
}

// ClassicLoads runs the classic balanced scheduler's snapshot query
// (socorro-classic 3.5 step 1) and commits, as the classic monitor did once
// per standard pass. checkIn is processorCheckInTime.
func (b *DB) ClassicLoads(ctx context.Context, checkIn time.Duration) ([]ClassicLoad, error) {
	var out []ClassicLoad
	err := pgx.BeginFunc(ctx, b.pool(), func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, classicLoadsQuery, pgtype.Interval{Microseconds: checkIn.Microseconds(), Valid: true})
		if err != nil {
			return err
		}
		var l ClassicLoad
		_, err = pgx.ForEachRow(rows, []any{&l.ID, &l.Count}, func() error {
			out = append(out, l)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("classic scheduler loads: %w", err)
	}
	return out, nil
}

// ClassicQueueJob queues one crash as the classic queueJob did
// (socorro-classic 3.3 step 5, 3.7): BEGIN, one INSERT, COMMIT; three round
// trips for one row. A duplicate id is an error, as it was.
func (b *DB) ClassicQueueJob(ctx context.Context, id string, owner int64, queued time.Time) error {
	err := pgx.BeginFunc(ctx, b.pool(), func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, classicInsertQuery, id, owner, queued)
		return err
	})
	if err != nil {
		return fmt.Errorf("classic queue job %s: %w", id, err)
	}
	return nil
}

// CopyJobs inserts one unstarted job per id, owned by owners[i % len],
// queued now, with one COPY: the fastest way rows get into jobs, the
// ceiling of any queuing. It returns the number of rows copied.
func (b *DB) CopyJobs(ctx context.Context, ids []string, owners []int64) (int64, error) {
	if len(owners) == 0 {
		return 0, fmt.Errorf("copy %d jobs: no owner given", len(ids))
	}
	queued := time.Now()
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(ids) {
			return nil, nil
		}
		row := []any{"", ids[i], owners[i%len(owners)], 0, queued}
		i++
		return row, nil
	})
	n, err := b.pool().CopyFrom(ctx, pgx.Identifier{"jobs"},
		[]string{"pathname", "uuid", "owner", "priority", "queueddatetime"}, src)
	if err != nil {
		return n, fmt.Errorf("copy %d jobs: %w", len(ids), err)
	}
	return n, nil
}

// Analyze refreshes the planner's statistics of the tables the monitor and
// the processors query, as autovacuum does in production within a minute
// of a bulk change: a table filled in one go and not analyzed yet gets
// plans made for an empty one.
func (b *DB) Analyze(ctx context.Context) error {
	if _, err := b.pool().Exec(ctx, `ANALYZE processors, jobs`); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}

// PendingPriority returns how many of ids are still requested: in
// priorityjobs, neither resolved nor dropped yet.
func (b *DB) PendingPriority(ctx context.Context, ids []string) (int64, error) {
	var n int64
	if err := b.pool().QueryRow(ctx, pendingPriorityQuery, ids).Scan(&n); err != nil {
		return 0, fmt.Errorf("count priority requests: %w", err)
	}
	return n, nil
}

// OwnedCount returns how many jobs owner owns, finished or not.
func (b *DB) OwnedCount(ctx context.Context, owner int64) (int64, error) {
	var n int64
	if err := b.pool().QueryRow(ctx, `SELECT count(*) FROM jobs WHERE owner = $1`, owner).Scan(&n); err != nil {
		return 0, fmt.Errorf("count the jobs of processor %d: %w", owner, err)
	}
	return n, nil
}
