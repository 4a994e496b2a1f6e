package queue

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crashmonitor/monitor/dispatch"
	"github.com/jackc/pgx/v5"
)

// ReapResult reports what ReapDeadProcessors did.
type ReapResult struct {
	// Dead lists, by id, the processors reaped: their rows deleted, their
	// priority_jobs_<id> tables dropped.
	Dead []int64
	// MovedJobs counts the jobs whose owner changed, finished ones included.
	MovedJobs int64
	// RequeuedPriority counts the ids copied from the dead processors'
	// priority_jobs_<id> tables back into priorityjobs (ids already there
	// are not counted).
	RequeuedPriority int64
	// NoLiveProcessor is set when dead processors exist but none is live:
	// nothing was changed, and Dead is empty.
	NoLiveProcessor bool
}

const (
	// lockDeadProcessorsQuery locks the dead processors. Under READ
	// COMMITTED a row updated by a heartbeat that commits while this waits
	// for its lock is checked again, and left out when no longer dead. $1 is
	// processorCheckInTime.
	lockDeadProcessorsQuery = `
SELECT id FROM processors
WHERE monitor_processor_state(lastseendatetime, $1) = 'dead'
ORDER BY id
FOR UPDATE`

	// deadUnfinishedQuery counts the unfinished jobs of the processors $1.
	deadUnfinishedQuery = `
SELECT count(*) FROM jobs WHERE owner = ANY($1::int[]) AND success IS NULL`

	// priorityTablesQuery returns those of the processors $1 whose
	// priority_jobs_<id> table, named (quoted) in $2, exists.
	priorityTablesQuery = `
SELECT t.id
FROM unnest($1::int8[], $2::text[]) AS t(id, name)
WHERE to_regclass(t.name) IS NOT NULL
ORDER BY t.id`

	// moveJobsQuery gives every job of the dead processors $1 to a live
	// one, in one statement. Unfinished jobs, in id order, take the owners
	// $2 one by one (water-filled from the live loads) and lose their
	// starteddatetime; finished ones go round-robin to the live processors
	// $3 and keep everything else. Unfinished jobs beyond the length of $2
	// (should more be found here than were counted when $2 was computed)
	// go round-robin too, so no job is left without an owner. The final
	// WHERE checks the owner again on rows updated concurrently, and the
	// started time is reset by the row's current success.
	moveJobsQuery = `
WITH moved AS (
    SELECT id,
           success IS NULL AS unfinished,
           (row_number() OVER (PARTITION BY success IS NULL ORDER BY id))::int AS rn
    FROM jobs
    WHERE owner = ANY($1::int[])
)
UPDATE jobs j
SET owner = CASE WHEN m.unfinished
                 THEN coalesce(($2::int[])[m.rn], ($3::int[])[(m.rn - 1) % cardinality($3::int[]) + 1])
                 ELSE ($3::int[])[(m.rn - 1) % cardinality($3::int[]) + 1]
            END,
    starteddatetime = CASE WHEN j.success IS NULL THEN NULL ELSE j.starteddatetime END
FROM moved m
WHERE j.id = m.id AND j.owner = ANY($1::int[])`

	// deleteDeadQuery deletes the processors $1, still dead by $2
	// (processorCheckInTime). It fails, rolling everything back, if a job
	// still references one of them.
	deleteDeadQuery = `
DELETE FROM processors
WHERE id = ANY($1::int[])
  AND monitor_processor_state(lastseendatetime, $2) = 'dead'
RETURNING id`
)

// ReapDeadProcessors reaps the dead processors: those that have not checked
// in within twice checkIn (processorCheckInTime), or never did. In one
// transaction it locks them, moves all their jobs to the live processors
// (unfinished ones spread so that live loads end up as even as possible, and
// made unstarted again; finished ones spread round-robin, unchanged but for
// their owner), copies the ids pending in their priority_jobs_<id> tables
// back into priorityjobs, drops those tables and deletes their rows. A
// processor that checks in before its row is locked is left alone; one whose
// heartbeat comes after waits for the commit and then updates nothing: it was
// dead by then.
//
// When dead processors exist but no processor is live it changes nothing and
// reports NoLiveProcessor, with a nil error. No job is ever deleted.
func (s *Store) ReapDeadProcessors(ctx context.Context, checkIn time.Duration) (ReapResult, error) {
	res, err := s.reap(ctx, checkIn)
	if err != nil {
		return ReapResult{}, DBError(err, "reap dead processors")
	}
	return res, nil
}

func (s *Store) reap(ctx context.Context, checkIn time.Duration) (ReapResult, error) {
	var res ReapResult
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return res, err
	}
	// After a commit this does nothing.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := s.checkFence(ctx, tx); err != nil {
		return res, err
	}

	rows, err := tx.Query(ctx, lockDeadProcessorsQuery, interval(checkIn))
	if err != nil {
		return res, err
	}
	dead, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return res, err
	}
	if len(dead) == 0 {
		return res, tx.Commit(ctx)
	}

	names := make([]string, len(dead))
	for i, id := range dead {
		names[i] = PriorityTable(id)
	}
	var b pgx.Batch
	b.Queue(liveProcessorsQuery, interval(checkIn))
	b.Queue(deadUnfinishedQuery, dead)
	b.Queue(priorityTablesQuery, dead, names)
	live, unfinished, tables, err := readReapState(tx.SendBatch(ctx, &b))
	if err != nil {
		return res, err
	}
	if len(live) == 0 {
		res.NoLiveProcessor = true
		return res, tx.Rollback(ctx)
	}

	if len(tables) > 0 {
		res.RequeuedPriority, err = requeuePriority(ctx, tx, tables)
		if err != nil {
			return res, err
		}
	}

	liveIDs := make([]int64, len(live))
	for i, p := range live {
		liveIDs[i] = p.Processor
	}
	b = pgx.Batch{}
	b.Queue(moveJobsQuery, dead, dispatch.Assign(live, int(unfinished)), liveIDs)
	b.Queue(deleteDeadQuery, dead, interval(checkIn))
	res.MovedJobs, res.Dead, err = readMoveAndDelete(tx.SendBatch(ctx, &b))
	if err != nil {
		return res, err
	}
	slices.Sort(res.Dead)
	return res, tx.Commit(ctx)
}

// readReapState reads the answers to the live processors, dead unfinished
// count and priority tables queries, and closes br.
func readReapState(br pgx.BatchResults) (live []dispatch.Load, unfinished int64, tables []int64, err error) {
	defer func() {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	rows, err := br.Query()
	if err != nil {
		return nil, 0, nil, err
	}
	if live, err = collectLoads(rows); err != nil {
		return nil, 0, nil, err
	}
	if err = br.QueryRow().Scan(&unfinished); err != nil {
		return nil, 0, nil, err
	}
	rows, err = br.Query()
	if err != nil {
		return nil, 0, nil, err
	}
	tables, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	return live, unfinished, tables, err
}

// readMoveAndDelete reads the answers to moveJobsQuery and deleteDeadQuery,
// and closes br.
func readMoveAndDelete(br pgx.BatchResults) (moved int64, deleted []int64, err error) {
	defer func() {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	tag, err := br.Exec()
	if err != nil {
		return 0, nil, err
	}
	rows, err := br.Query()
	if err != nil {
		return 0, nil, err
	}
	deleted, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	return tag.RowsAffected(), deleted, err
}

// requeuePriority copies the ids of the priority_jobs_<id> tables of the
// processors ids into priorityjobs and drops the tables, in one round trip of
// the simple protocol (the statements have no parameter, and the names, one
// per processor, should not fill the prepared statement cache). It returns
// the number of ids inserted.
func requeuePriority(ctx context.Context, tx pgx.Tx, ids []int64) (int64, error) {
	var sql strings.Builder
	for _, id := range ids {
		t := PriorityTable(id)
		fmt.Fprintf(&sql, "INSERT INTO priorityjobs (uuid) SELECT uuid FROM %s ON CONFLICT DO NOTHING;\n", t)
		fmt.Fprintf(&sql, "DROP TABLE %s;\n", t)
	}
	results, err := tx.Conn().PgConn().Exec(ctx, sql.String()).ReadAll()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, r := range results {
		if r.CommandTag.Insert() {
			n += r.CommandTag.RowsAffected()
		}
	}
	return n, nil
}

// PriorityTable returns the quoted name of the priority_jobs_<id> table of
// processor id, in which the monitor tells the processor which of its jobs
// to take first. It is built from the integer alone.
func PriorityTable(id int64) string {
	return pgx.Identifier{fmt.Sprintf("priority_jobs_%d", id)}.Sanitize()
}
