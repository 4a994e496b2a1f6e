package queue

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// PriorityRequest is one row of priorityjobs, the reporter's "process this
// crash next" requests.
type PriorityRequest struct {
	// ID is the requested string exactly as stored: up to 255 characters of
	// anything, not necessarily a crash id. Only the caller's validation
	// makes it one.
	ID string
	// Queued tells whether a jobs row had that uuid when it was read.
	Queued bool
}

// PriorityBatch is a batch of priority requests to resolve, sorted by what
// the caller found. The three lists are disjoint. Queued and Found hold valid
// crash ids only (the caller checked them, e.g. with crashstore.ValidID);
// Drop may hold anything.
type PriorityBatch struct {
	// Queued lists ids that had a jobs row when their requests were read.
	Queued []string
	// Found lists ids whose complete pair was found on disk, with no jobs
	// row when their requests were read: they are queued with priority 1.
	Found []string
	// Drop lists requests to delete as they are: malformed ones, ids never
	// found.
	Drop []string
}

// PriorityStatus says what ResolvePriority did with one request.
type PriorityStatus int

const (
	// PriorityQueued: a Found id was queued now, with priority 1, owned by
	// the least-loaded live processor.
	PriorityQueued PriorityStatus = iota + 1
	// PriorityRaised: the job already existed, unfinished, with a live or
	// stale owner: its priority is now at least 1.
	PriorityRaised
	// PriorityMoved: the job already existed, unfinished, but its owner was
	// dead, gone or NULL: it now belongs to the least-loaded live processor,
	// unstarted, with priority at least 1.
	PriorityMoved
	// PriorityFinished: the job had already finished (or its row is gone:
	// cleanup removed it after it finished); nothing to do.
	PriorityFinished
	// PriorityDropped: a request of PriorityBatch.Drop.
	PriorityDropped
	// PriorityWaiting: the id needs a live processor (it is to be queued or
	// moved) and none is live; nothing changed.
	PriorityWaiting
	// PriorityRetry: the job changed under the transaction (a Found id was
	// queued by someone else meanwhile, a dead owner checked in again);
	// nothing changed, the next pass sees the new state.
	PriorityRetry
)

var priorityStatusNames = map[PriorityStatus]string{
	PriorityQueued:   "queued",
	PriorityRaised:   "raised",
	PriorityMoved:    "moved",
	PriorityFinished: "finished",
	PriorityDropped:  "dropped",
	PriorityWaiting:  "waiting",
	PriorityRetry:    "retry",
}

func (s PriorityStatus) String() string {
	if n, ok := priorityStatusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("PriorityStatus(%d)", int(s))
}

// PriorityOutcome is what ResolvePriority did with one request.
type PriorityOutcome struct {
	// ID is the request.
	ID     string
	Status PriorityStatus
	// Owner is the job's owner after the transaction (Queued, Raised,
	// Moved); From is the owner a Moved job had before (0 for NULL).
	Owner, From int64
	// Told is set when the id is in priority_jobs_<Owner> (inserted now or
	// already there). It is not when that table does not exist (TellErr
	// nil) or the insert into it failed (TellErr).
	Told    bool
	TellErr error
}

// Resolved reports whether the request was deleted from priorityjobs: a
// job that was queued, raised or moved and whose owner was told, a finished
// job, or a dropped request. Any other request is kept for a later pass.
func (o PriorityOutcome) Resolved() bool {
	switch o.Status {
	case PriorityQueued, PriorityRaised, PriorityMoved:
		return o.Told
	case PriorityFinished, PriorityDropped:
		return true
	}
	return false
}

const (
	// readPriorityRequestsQuery pages through priorityjobs in uuid order,
	// after $1, at most $2 rows, telling for each whether it has a job.
	readPriorityRequestsQuery = `
SELECT r.uuid, EXISTS (SELECT FROM jobs j WHERE j.uuid = r.uuid)
FROM priorityjobs r
WHERE r.uuid > $1
ORDER BY r.uuid
LIMIT $2`

	// lockPriorityJobsQuery locks the jobs of the ids $1 until the end of
	// the transaction (so that no processor claims or finishes them, and
	// no reap moves them, while they are decided on) and reads their state.
	// The owner is dead when it is NULL, has no processors row, or was not
	// seen within twice $2 (processorCheckInTime).
	lockPriorityJobsQuery = `
SELECT j.uuid, j.owner, j.success IS NOT NULL, j.starteddatetime IS NOT NULL,
       (p.id IS NULL OR p.lastseendatetime IS NULL
        OR p.lastseendatetime < localtimestamp - 2 * $2::interval)
FROM jobs j
LEFT JOIN processors p ON p.id = j.owner
WHERE j.uuid = ANY($1::text[])
ORDER BY j.uuid
FOR UPDATE OF j`

	// movePriorityJobsQuery gives the unfinished jobs $1 the live owners $2
	// (same length), unstarted and with priority at least 1, when their
	// owner is still NULL or dead by $3 (processorCheckInTime).
	movePriorityJobsQuery = `
UPDATE jobs j
SET owner = m.owner, starteddatetime = NULL, priority = greatest(coalesce(j.priority, 0), 1)
FROM unnest($1::text[], $2::int[]) AS m(uuid, owner)
WHERE j.uuid = m.uuid AND j.success IS NULL
  AND NOT EXISTS (SELECT FROM processors p
                  WHERE p.id = j.owner AND p.lastseendatetime >= localtimestamp - 2 * $3::interval)
RETURNING j.uuid, j.owner`

	// raisePriorityQuery raises to 1 the priority of the unfinished jobs $1
	// below it.
	raisePriorityQuery = `
UPDATE jobs SET priority = 1
WHERE uuid = ANY($1::text[]) AND success IS NULL AND coalesce(priority, 0) < 1`

	// tellOwnerQuery inserts the ids $1 into one priority_jobs_<id> table,
	// named by %s (a quoted identifier made from an integer). NOT EXISTS
	// skips ids already pending even in a table without a primary key (a
	// processor of another vintage may create it so); ON CONFLICT covers a
	// concurrent insert.
	tellOwnerQuery = `
INSERT INTO %[1]s (uuid)
SELECT u FROM unnest($1::text[]) AS u
WHERE NOT EXISTS (SELECT FROM %[1]s t WHERE t.uuid = u)
ON CONFLICT DO NOTHING`

	deletePriorityRequestsQuery = `
DELETE FROM priorityjobs WHERE uuid = ANY($1::text[])`
)

// PriorityRequests returns up to limit priority requests whose uuid sorts
// after after ("" for the first page), in uuid order, each telling whether a
// job has that uuid. Paging by the last uuid returned walks the whole table
// once even while requests are added and deleted.
func (s *Store) PriorityRequests(ctx context.Context, after string, limit int) ([]PriorityRequest, error) {
	rows, err := s.pool.Query(ctx, readPriorityRequestsQuery, after, limit)
	if err != nil {
		return nil, DBError(err, "read priority requests")
	}
	var r PriorityRequest
	var out []PriorityRequest
	_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.Queued}, func() error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, DBError(err, "read priority requests")
	}
	return out, nil
}

// ResolvePriority resolves a batch of priority requests in one transaction,
// checkIn being processorCheckInTime, and returns one outcome per distinct
// request, Queued and Found ids first (in uuid order), then Drop.
//
// It locks the existing jobs of the Queued and Found ids and reads the live
// processors with their loads. A finished job needs nothing. An unfinished
// job whose owner is live or stale keeps it and gets priority at least 1. One
// whose owner is NULL, gone or dead (not seen within twice checkIn) is moved,
// as the dead-processor sweep would move it, to a live processor, unstarted.
// A Found id without a job is queued with priority 1. New owners are chosen
// by water-filling over the live processors' unfinished loads, among those
// that have a priority_jobs_<id> table (all live ones when none has). With no
// live processor, ids to queue or move are left as they are (Waiting).
//
// Then each owner is told: the ids go into its priority_jobs_<owner> table
// unless already there, when that table exists (checked with to_regclass in
// the same transaction). Each owner's insert runs under a savepoint, so a
// broken table only keeps its own ids back (TellErr). Last, the requests
// that are resolved are deleted, and the transaction commits: a job queued
// or moved, its owner told, and its request deleted, all or nothing.
//
// Every UPDATE re-checks the state it was decided on in its WHERE clause; a
// job that changed anyway comes back as PriorityRetry.
func (s *Store) ResolvePriority(ctx context.Context, b PriorityBatch, checkIn time.Duration) ([]PriorityOutcome, error) {
	ids := distinct(slices.Concat(b.Queued, b.Found))
	slices.Sort(ids)
	drop := distinct(b.Drop)
	if len(ids)+len(drop) == 0 {
		return nil, nil
	}
	var out []PriorityOutcome
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		r := resolver{ctx: ctx, tx: tx, checkIn: checkIn, found: make(map[string]bool, len(b.Found))}
		for _, id := range b.Found {
			r.found[id] = true
		}
		var err error
		out, err = r.resolve(ids, drop)
		return err
	})
	if err != nil {
		return nil, DBError(err, "resolve %d priority requests", len(ids)+len(drop))
	}
	return out, nil
}

// lockedJob is the state of an existing job, read under its row lock.
type lockedJob struct {
	owner     pgtype.Int8 // NULL for no owner
	finished  bool
	started   bool
	ownerDead bool
}

// resolver is the state of one ResolvePriority transaction.
type resolver struct {
	ctx     context.Context
	tx      pgx.Tx
	checkIn time.Duration
	found   map[string]bool
}

func (r *resolver) resolve(ids, drop []string) ([]PriorityOutcome, error) {
	out := make([]PriorityOutcome, 0, len(ids)+len(drop))

	var live []processorLoad
	jobs := map[string]lockedJob{}
	if len(ids) > 0 {
		var err error
		if live, jobs, err = r.lockJobs(ids); err != nil {
			return nil, err
		}
	}

	// The processors whose priority table matters: current owners that
	// keep their jobs, and every live processor (a possible new owner).
	check := map[int64]bool{}
	for _, p := range live {
		check[p.id] = true
	}
	for _, j := range jobs {
		if !j.finished && !j.ownerDead {
			check[j.owner.Int64] = true
		}
	}
	tables, err := r.priorityTables(slices.Sorted(maps.Keys(check)))
	if err != nil {
		return nil, err
	}

	// Decide each id; new owners are filled in below, in id order.
	var assign []int // indexes in out of the jobs to queue or move
	var raise []string
	for _, id := range ids {
		o := PriorityOutcome{ID: id}
		j, exists := jobs[id]
		switch {
		case !exists && !r.found[id], exists && j.finished:
			o.Status = PriorityFinished
		case !exists:
			o.Status = PriorityQueued
		case j.ownerDead:
			o.Status, o.From = PriorityMoved, j.owner.Int64
		default:
			o.Status, o.Owner = PriorityRaised, j.owner.Int64
			raise = append(raise, id)
		}
		if o.Status == PriorityQueued || o.Status == PriorityMoved {
			if len(live) == 0 {
				o.Status = PriorityWaiting
			} else {
				assign = append(assign, len(out))
			}
		}
		out = append(out, o)
	}
	if len(assign) > 0 {
		targets := live
		if withTable := slices.DeleteFunc(slices.Clone(live), func(p processorLoad) bool { return !tables[p.id] }); len(withTable) > 0 {
			targets = withTable
		}
		for i, owner := range waterFill(targets, len(assign)) {
			out[assign[i]].Owner = owner
		}
	}

	if err := r.writeJobs(out, raise); err != nil {
		return nil, err
	}
	if err := r.tellOwners(out, tables); err != nil {
		return nil, err
	}

	for _, id := range drop {
		out = append(out, PriorityOutcome{ID: id, Status: PriorityDropped})
	}
	var resolved []string
	for _, o := range out {
		if o.Resolved() {
			resolved = append(resolved, o.ID)
		}
	}
	if len(resolved) > 0 {
		if _, err := r.tx.Exec(r.ctx, deletePriorityRequestsQuery, resolved); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// lockJobs reads the live processors and locks and reads the existing jobs
// of ids, in one round trip.
func (r *resolver) lockJobs(ids []string) ([]processorLoad, map[string]lockedJob, error) {
	var b pgx.Batch
	b.Queue(liveProcessorsQuery, interval(r.checkIn))
	b.Queue(lockPriorityJobsQuery, ids, interval(r.checkIn))
	br := r.tx.SendBatch(r.ctx, &b)
	defer br.Close()

	rows, err := br.Query()
	if err != nil {
		return nil, nil, err
	}
	live, err := collectLoads(rows)
	if err != nil {
		return nil, nil, err
	}
	rows, err = br.Query()
	if err != nil {
		return nil, nil, err
	}
	jobs := map[string]lockedJob{}
	var id string
	var j lockedJob
	_, err = pgx.ForEachRow(rows, []any{&id, &j.owner, &j.finished, &j.started, &j.ownerDead}, func() error {
		jobs[id] = j
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return live, jobs, br.Close()
}

// priorityTables returns which of the processors ids have a
// priority_jobs_<id> table.
func (r *resolver) priorityTables(ids []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = PriorityTable(id)
	}
	rows, err := r.tx.Query(r.ctx, priorityTablesQuery, ids, names)
	if err != nil {
		return nil, err
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	for _, id := range have {
		out[id] = true
	}
	return out, nil
}

// writeJobs queues and moves the jobs of out that have an owner assigned,
// and raises the priority of raise, in one round trip. A job the insert or
// the move skipped (it changed meanwhile) becomes PriorityRetry.
func (r *resolver) writeJobs(out []PriorityOutcome, raise []string) error {
	var insIDs, movIDs []string
	var insOwners, movOwners []int64
	for _, o := range out {
		switch o.Status {
		case PriorityQueued:
			insIDs, insOwners = append(insIDs, o.ID), append(insOwners, o.Owner)
		case PriorityMoved:
			movIDs, movOwners = append(movIDs, o.ID), append(movOwners, o.Owner)
		}
	}
	var b pgx.Batch
	if len(insIDs) > 0 {
		b.Queue(enqueueQuery, insIDs, insOwners, 1)
	}
	if len(movIDs) > 0 {
		b.Queue(movePriorityJobsQuery, movIDs, movOwners, interval(r.checkIn))
	}
	if len(raise) > 0 {
		b.Queue(raisePriorityQuery, raise)
	}
	if b.Len() == 0 {
		return nil
	}
	br := r.tx.SendBatch(r.ctx, &b)
	defer br.Close()

	done := map[string]int64{} // id -> owner, of the rows inserted or moved
	collect := func() error {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		var id string
		var owner int64
		_, err = pgx.ForEachRow(rows, []any{&id, &owner}, func() error {
			done[id] = owner
			return nil
		})
		return err
	}
	if len(insIDs) > 0 {
		if err := collect(); err != nil {
			return err
		}
	}
	if len(movIDs) > 0 {
		if err := collect(); err != nil {
			return err
		}
	}
	if len(raise) > 0 {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	if err := br.Close(); err != nil {
		return err
	}
	for i, o := range out {
		if o.Status != PriorityQueued && o.Status != PriorityMoved {
			continue
		}
		if owner, ok := done[o.ID]; ok {
			out[i].Owner = owner
		} else {
			out[i] = PriorityOutcome{ID: o.ID, Status: PriorityRetry}
		}
	}
	return nil
}

// tellOwners inserts the ids of the jobs queued, moved or raised into their
// owners' priority_jobs tables, those of tables, and sets Told. It tries all
// owners at once under one savepoint; should a statement fail, it tries each
// owner under its own, so that one broken table only holds back its own ids
// (TellErr). An error that the transaction cannot survive is returned.
func (r *resolver) tellOwners(out []PriorityOutcome, tables map[int64]bool) error {
	byOwner := map[int64][]string{}
	for _, o := range out {
		switch o.Status {
		case PriorityQueued, PriorityMoved, PriorityRaised:
			if tables[o.Owner] {
				byOwner[o.Owner] = append(byOwner[o.Owner], o.ID)
			}
		}
	}
	if len(byOwner) == 0 {
		return nil
	}
	owners := slices.Sorted(maps.Keys(byOwner))
	failed := map[int64]error{}
	stmtErr, err := r.tell(owners, byOwner)
	switch {
	case err != nil:
		return err
	case stmtErr != nil && len(owners) == 1:
		failed[owners[0]] = stmtErr
	case stmtErr != nil:
		for _, owner := range owners {
			stmtErr, err := r.tell([]int64{owner}, byOwner)
			if err != nil {
				return err
			}
			if stmtErr != nil {
				failed[owner] = stmtErr
			}
		}
	}
	for i, o := range out {
		if _, ok := byOwner[o.Owner]; !ok {
			continue
		}
		switch o.Status {
		case PriorityQueued, PriorityMoved, PriorityRaised:
			out[i].TellErr = failed[o.Owner]
			out[i].Told = out[i].TellErr == nil
		}
	}
	return nil
}

// tell inserts the ids of owners into their tables under a savepoint, in one
// round trip. When the server rejects a statement it rolls back to the
// savepoint and returns that error as stmtErr; any other failure is err.
func (r *resolver) tell(owners []int64, byOwner map[int64][]string) (stmtErr, err error) {
	var b pgx.Batch
	b.Queue("SAVEPOINT tell_owners")
	for _, owner := range owners {
		b.Queue(fmt.Sprintf(tellOwnerQuery, PriorityTable(owner)), byOwner[owner])
	}
	b.Queue("RELEASE SAVEPOINT tell_owners")
	err = r.tx.SendBatch(r.ctx, &b).Close()
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) {
		return nil, err
	}
	if _, rerr := r.tx.Exec(r.ctx, "ROLLBACK TO SAVEPOINT tell_owners"); rerr != nil {
		return nil, errors.Join(err, rerr)
	}
	return DBError(err, "tell processors %v", owners), nil
}
