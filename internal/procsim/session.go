package procsim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/crashmonitor/monitor/queue"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The processor's side of the jobs database: the statements a classic
// Socorro processor runs (register, heartbeat, claim, finish, clean stop), for
// the simulated processor that stands in for real ones in the demo, the
// benchmarks and the end-to-end tests. The monitor itself never runs them.

// ErrProcessorGone means the session's processors row or its
// priority_jobs_<id> table no longer exists: the monitor judged the processor
// dead (it missed its heartbeats) and moved its jobs to live processors. The
// processor should register again.
var ErrProcessorGone = errors.New("processor row gone (reaped as dead)")

// Session is one processor's registration: its processors row and
// its priority_jobs_<id> table. Register first; the other methods act for the
// registered id. It is safe for concurrent use (a heartbeat goroutine beside
// the claiming and finishing ones); Register may run again after
// ErrProcessorGone, and the others then act for the new id.
type Session struct {
	pool *pgxpool.Pool
	id   atomic.Int64
}

// NewSession returns an unregistered session over pool.
func NewSession(pool *pgxpool.Pool) *Session {
	return &Session{pool: pool}
}

// ID returns the processors.id of the last Register, zero before.
func (p *Session) ID() int64 { return p.id.Load() }

const (
	// takeOverProcessorQuery takes over the row of the processor of that
	// name (one that ran here before and stopped or crashed), as a classic
	// processor restarting with its own id does.
	takeOverProcessorQuery = `
UPDATE processors SET startdatetime = now(), lastseendatetime = now()
WHERE id = (SELECT id FROM processors WHERE name = $1 ORDER BY id LIMIT 1 FOR UPDATE)
RETURNING id`

	insertProcessorQuery = `
INSERT INTO processors (name, startdatetime, lastseendatetime)
VALUES ($1, now(), now())
RETURNING id`

	// resetStartedQuery makes the processor's unfinished jobs unstarted
	// again: whatever it was doing before a restart is done again.
	resetStartedQuery = `
UPDATE jobs SET starteddatetime = NULL
WHERE owner = $1 AND success IS NULL AND starteddatetime IS NOT NULL`

	heartbeatQuery = `UPDATE processors SET lastseendatetime = now() WHERE id = $1`

	// claimOwnQuery claims up to $2 of the processor's unstarted jobs,
	// oldest queued first (through jobs_owner_queued_idx). SKIP LOCKED
	// passes over rows another statement is changing (a reap moving them);
	// the outer WHERE checks the state again on the row it updates.
	claimOwnQuery = `
WITH next AS (
    SELECT id FROM jobs
    WHERE owner = $1 AND starteddatetime IS NULL AND success IS NULL
    ORDER BY queueddatetime, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs j SET starteddatetime = now()
FROM next
WHERE j.id = next.id AND j.owner = $1 AND j.starteddatetime IS NULL AND j.success IS NULL
RETURNING j.id, j.uuid, j.queueddatetime`

	// finishQuery records the results ($2 ids, $3 success, $4 messages,
	// empty = NULL) of jobs the processor $1 still owns and has not
	// finished: a job moved to another processor meanwhile (this one was
	// reaped) keeps whatever its new owner records.
	finishQuery = `
UPDATE jobs j
SET completeddatetime = now(), success = r.success, message = nullif(r.message, '')
FROM unnest($2::int8[], $3::bool[], $4::text[]) AS r(id, success, message)
WHERE j.id = r.id AND j.owner = $1 AND j.success IS NULL
RETURNING j.id`

	cleanStopQuery = `UPDATE processors SET lastseendatetime = '1999-01-01' WHERE id = $1`
)

// claimPriorityQuery returns the statement that takes up to $1 rows out of
// the priority table (deleting each one read) and claims those whose job
// exists and is neither started nor finished, whoever owns it (as the
// classic processor did). It returns every uuid read, with the job's id and
// queued time when claimed, NULLs when skipped.
func claimPriorityQuery(table string) string {
	return `
WITH requested AS (
    DELETE FROM ` + table + `
    WHERE uuid IN (SELECT uuid FROM ` + table + ` LIMIT $1 FOR UPDATE SKIP LOCKED)
    RETURNING uuid
), claimed AS (
    UPDATE jobs j SET starteddatetime = now()
    FROM requested r
    WHERE j.uuid = r.uuid AND j.starteddatetime IS NULL AND j.success IS NULL
    RETURNING j.id, j.uuid, j.queueddatetime
)
SELECT r.uuid, c.id, c.queueddatetime FROM requested r LEFT JOIN claimed c ON c.uuid = r.uuid`
}

// Register registers the processor as name (the protocol's first step), in
// one transaction: it takes over the processors row of that name, or inserts
// one, with startdatetime = lastseendatetime = now(); creates its
// priority_jobs_<id> table if missing; and makes its own unfinished jobs
// unstarted. It returns the processor id.
func (p *Session) Register(ctx context.Context, name string) (int64, error) {
	var id int64
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, takeOverProcessorQuery, name).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			err = tx.QueryRow(ctx, insertProcessorQuery, name).Scan(&id)
		}
		if err != nil {
			return err
		}
		// No arguments: pgx sends it with the simple protocol, so the
		// per-processor name never enters the statement cache.
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+queue.PriorityTable(id)+` (uuid varchar(50) PRIMARY KEY)`); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, resetStartedQuery, id)
		return err
	})
	if err != nil {
		return 0, queue.DBError(err, "register processor %q", name)
	}
	p.id.Store(id)
	return id, nil
}

// Heartbeat sets lastseendatetime = now() (the protocol's second step). It
// returns ErrProcessorGone when the row no longer exists.
func (p *Session) Heartbeat(ctx context.Context) error {
	id := p.ID()
	tag, err := p.pool.Exec(ctx, heartbeatQuery, id)
	if err != nil {
		return queue.DBError(err, "heartbeat of processor %d", id)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("heartbeat of processor %d: %w", id, ErrProcessorGone)
	}
	return nil
}

// ClaimedJob is a job a processor has claimed (its starteddatetime set).
type ClaimedJob struct {
	// ID is jobs.id, what Finish takes.
	ID int64
	// UUID is the crash id.
	UUID string
	// Priority is set for jobs taken from priority_jobs_<id>.
	Priority bool
	// Queued is queueddatetime as stored.
	Queued time.Time
}

// Claim is what one ClaimJobs returned.
type Claim struct {
	// Jobs are the claimed jobs: priority ones first, then the processor's
	// own in queue order.
	Jobs []ClaimedJob
	// SkippedPriority lists the ids read (and deleted) from the priority
	// table whose job was missing, already started or finished.
	SkippedPriority []string
}

// ClaimJobs claims up to limit jobs (the protocol's third step): first ids
// from priority_jobs_<id>, deleting each row it reads and skipping a uuid
// whose job is missing or already started; then, for the rest of limit, its
// own unstarted jobs, oldest queued first. Each claim sets starteddatetime in
// a statement that re-checks the job is still unstarted and unfinished (and,
// for its own jobs, still its own). It returns ErrProcessorGone when the
// priority table no longer exists (the processor was reaped).
func (p *Session) ClaimJobs(ctx context.Context, limit int) (Claim, error) {
	id := p.ID()
	limit = cmp.Or(limit, 1)
	var c Claim
	if err := p.claimPriority(ctx, id, limit, &c); err != nil {
		op := fmt.Sprintf("claim priority jobs of processor %d", id)
		if errors.Is(err, ErrProcessorGone) {
			return Claim{}, fmt.Errorf("%s: %w", op, err)
		}
		return Claim{}, queue.DBError(err, "%s", op)
	}
	if rest := limit - len(c.Jobs); rest > 0 {
		rows, err := p.pool.Query(ctx, claimOwnQuery, id, rest)
		if err != nil {
			return Claim{}, queue.DBError(err, "claim jobs of processor %d", id)
		}
		var own []ClaimedJob
		var j ClaimedJob
		_, err = pgx.ForEachRow(rows, []any{&j.ID, &j.UUID, &j.Queued}, func() error {
			own = append(own, j)
			return nil
		})
		if err != nil {
			return Claim{}, queue.DBError(err, "claim jobs of processor %d", id)
		}
		// RETURNING has no order: restore the queue's.
		slices.SortFunc(own, func(a, b ClaimedJob) int {
			return cmp.Or(a.Queued.Compare(b.Queued), cmp.Compare(a.ID, b.ID))
		})
		c.Jobs = append(c.Jobs, own...)
	}
	return c, nil
}

func (p *Session) claimPriority(ctx context.Context, id int64, limit int, c *Claim) error {
	table := queue.PriorityTable(id)
	// The simple protocol keeps the per-processor statement out of the
	// statement cache; the limit is still a bound value.
	rows, err := p.pool.Query(ctx, claimPriorityQuery(table), pgx.QueryExecModeSimpleProtocol, limit)
	if err != nil {
		return p.priorityErr(err, id)
	}
	var uuid string
	var jobID *int64
	var queued *time.Time
	_, err = pgx.ForEachRow(rows, []any{&uuid, &jobID, &queued}, func() error {
		if jobID == nil {
			c.SkippedPriority = append(c.SkippedPriority, uuid)
			return nil
		}
		c.Jobs = append(c.Jobs, ClaimedJob{ID: *jobID, UUID: uuid, Priority: true, Queued: *queued})
		return nil
	})
	if err != nil {
		return p.priorityErr(err, id)
	}
	return nil
}

// undefinedTable is PostgreSQL's SQLSTATE for a table that does not exist.
const undefinedTable = "42P01"

// priorityErr reports a missing priority table as ErrProcessorGone.
func (p *Session) priorityErr(err error, id int64) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == undefinedTable &&
		strings.Contains(pgErr.Message, fmt.Sprintf("priority_jobs_%d", id)) {
		return fmt.Errorf("%w: %w", ErrProcessorGone, err)
	}
	return err
}

// JobResult is the outcome of one claimed job.
type JobResult struct {
	// ID is jobs.id (ClaimedJob.ID).
	ID int64
	// UUID is the crash id (ClaimedJob.UUID); FinishJobs does not use it.
	UUID string
	// Success is the job's outcome.
	Success bool
	// Message says why a job failed; it is stored as NULL when empty.
	Message string
}

// FinishJobs records results in one statement (the protocol's fifth step):
// completeddatetime = now(), success, and message. Only jobs still owned by
// this processor and not finished are updated: a job the monitor moved away
// meanwhile (this processor was reaped as dead) is left to its new owner. It
// returns the ids recorded; the others were dropped.
func (p *Session) FinishJobs(ctx context.Context, results []JobResult) ([]int64, error) {
	if len(results) == 0 {
		return nil, nil
	}
	id := p.ID()
	ids := make([]int64, len(results))
	success := make([]bool, len(results))
	messages := make([]string, len(results))
	for i, r := range results {
		ids[i], success[i], messages[i] = r.ID, r.Success, r.Message
	}
	rows, err := p.pool.Query(ctx, finishQuery, id, ids, success, messages)
	if err != nil {
		return nil, queue.DBError(err, "finish %d jobs of processor %d", len(results), id)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, queue.DBError(err, "finish %d jobs of processor %d", len(results), id)
	}
	return done, nil
}

// CleanStop is the processor's clean exit (the protocol's last step), in
// one transaction: lastseendatetime = '1999-01-01', so the monitor reaps it
// on its next sweep and moves its jobs, and its priority table dropped. As
// with a classic processor, ids still waiting in that table lose their
// priority (their jobs stay queued and move with the others). A row already
// gone is fine.
func (p *Session) CleanStop(ctx context.Context) error {
	id := p.ID()
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, cleanStopQuery, id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+queue.PriorityTable(id))
		return err
	})
	if err != nil {
		return queue.DBError(err, "clean stop of processor %d", id)
	}
	return nil
}
