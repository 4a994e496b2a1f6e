package queue

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/crashmonitor/monitor/dispatch"
	"github.com/jackc/pgx/v5"
)

// PriorityBatch is a batch of priority requests to resolve, sorted by what
// the caller found. The three lists are disjoint. Existing and Found hold
// valid crash ids only (the caller checked them, e.g. with
// crashstore.ValidID); Drop may hold anything.
type PriorityBatch struct {
	// Existing lists ids that had a jobs row when their requests were read.
	Existing []string
	// Found lists ids whose complete pair was found on disk, with no jobs
	// row when their requests were read: they are queued with priority 1.
	Found []string
	// Drop lists requests to delete as they are: malformed ones, ids never
	// found.
	Drop []string
}

// PriorityOutcome is what ResolvePriority did with one request: the
// decision carried out (Owner is the job's owner after the transaction;
// PriorityRetry when the job changed under it), and whether the owner was
// told.
type PriorityOutcome struct {
	dispatch.PriorityDecision
	// Told is set when the id is in priority_jobs_<Owner> (inserted now or
	// already there). It is not when that table does not exist (TellErr
	// nil) or the insert into it failed (TellErr).
	Told    bool
	TellErr error
	// Waited is how long a resolved request waited, from its insert to its
	// deletion.
	Waited time.Duration
}

// Resolved reports whether the request was deleted from priorityjobs: a
// job that was queued, raised or moved and whose owner was told, a finished
// job, or a dropped request. Any other request is kept for a later pass.
func (o PriorityOutcome) Resolved() bool {
	switch o.Status {
	case dispatch.PriorityQueued, dispatch.PriorityRaised, dispatch.PriorityMoved:
		return o.Told
	case dispatch.PriorityFinished, dispatch.PriorityDropped:
		return true
	}
	return false
}

const (
	// lockPriorityJobsQuery locks the jobs of the ids $1 until the end of
	// the transaction (so that no processor claims or finishes them, and
	// no reap moves them, while they are decided on) and reads their state.
	// The owner is dead when it is NULL, has no processors row, or is dead
	// by $2 (processorCheckInTime).
	lockPriorityJobsQuery = `
SELECT j.uuid, coalesce(j.owner, 0), j.success IS NOT NULL,
       (p.id IS NULL OR monitor_processor_state(p.lastseendatetime, $2) = 'dead')
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
                  WHERE p.id = j.owner AND monitor_processor_state(p.lastseendatetime, $3) <> 'dead')
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

	// deletePriorityRequestsQuery deletes the requests $1 and returns how
	// long each waited, from its insert to now (the statement's clock).
	deletePriorityRequestsQuery = `
DELETE FROM priorityjobs WHERE uuid = ANY($1::text[])
RETURNING uuid, extract(epoch FROM clock_timestamp() - requested_at)::float8`
)

// ResolvePriority resolves a batch of priority requests in one transaction,
// checkIn being processorCheckInTime, and returns one outcome per distinct
// request, Existing and Found ids first (in uuid order), then Drop.
//
// It reads the state (the live processors with their loads; the existing
// jobs of the Existing and Found ids, locked; which processors have a
// priority_jobs_<id> table, checked with to_regclass in the same
// transaction), decides with dispatch.PlanPriority, and writes: jobs queued,
// moved or raised in one round trip, then each owner told (its ids go into
// its priority_jobs_<owner> table unless already there; each owner's insert
// runs under a savepoint, so a broken table only keeps its own ids back,
// TellErr), then the requests that are resolved deleted. A job queued or
// moved, its owner told, and its request deleted, all or nothing.
//
// Every UPDATE re-checks the state it was decided on in its WHERE clause; a
// job that changed anyway comes back as PriorityRetry.
//
// The live processors' loads, which only choose the owner of a job to queue
// or move, are read only when a request needs one, and taken from loads
// when it holds a snapshot younger than dispatch.MaxAge (counting them
// visits every unfinished job: a tenth of a second at a million); loads,
// when not nil, is updated with what was read and assigned.
func (s *Store) ResolvePriority(ctx context.Context, b PriorityBatch, checkIn time.Duration, loads *dispatch.Loads) ([]PriorityOutcome, error) {
	ids := distinct(slices.Concat(b.Existing, b.Found))
	slices.Sort(ids)
	drop := distinct(b.Drop)
	if len(ids)+len(drop) == 0 {
		return nil, nil
	}
	onDisk := make(map[string]bool, len(b.Found))
	for _, id := range b.Found {
		onDisk[id] = true
	}
	var out []PriorityOutcome
	err := s.tx(ctx, func(tx pgx.Tx) error {
		r := resolver{tx: tx, checkIn: checkIn, loads: loads}
		var err error
		out, err = r.resolve(ctx, ids, onDisk, drop)
		return err
	})
	if err != nil {
		if loads != nil {
			loads.Reset() // what was assigned is unknown: read again next time
		}
		return nil, DBError(err, "resolve %d priority requests", len(ids)+len(drop))
	}
	return out, nil
}

// resolver is the state of one ResolvePriority transaction.
type resolver struct {
	tx      pgx.Tx
	checkIn time.Duration
	loads   *dispatch.Loads // a snapshot of the loads to reuse, or nil
}

func (r *resolver) resolve(ctx context.Context, ids []string, onDisk map[string]bool, drop []string) ([]PriorityOutcome, error) {
	// Read.
	var live []dispatch.Load
	jobs := map[string]dispatch.Job{}
	if len(ids) > 0 {
		var err error
		if live, jobs, err = r.lockJobs(ctx, ids, onDisk); err != nil {
			return nil, err
		}
	}
	// The processors whose priority table matters: current owners that
	// keep their jobs, and every live processor (a possible new owner).
	check := map[int64]bool{}
	for _, p := range live {
		check[p.Processor] = true
	}
	for _, j := range jobs {
		if !j.Finished && !j.OwnerDead {
			check[j.Owner] = true
		}
	}
	tables, err := r.priorityTables(ctx, slices.Sorted(maps.Keys(check)))
	if err != nil {
		return nil, err
	}

	// Decide.
	plan := dispatch.PlanPriority(ids, jobs, onDisk, live, tables)
	out := make([]PriorityOutcome, len(plan), len(plan)+len(drop))
	for i, d := range plan {
		out[i] = PriorityOutcome{PriorityDecision: d}
	}

	// Write.
	if err := r.writeJobs(ctx, out); err != nil {
		return nil, err
	}
	if r.loads != nil {
		assigned := map[int64]int64{}
		for _, o := range out {
			if o.Status == dispatch.PriorityQueued || o.Status == dispatch.PriorityMoved {
				assigned[o.Owner]++
			}
		}
		r.loads.Add(assigned)
	}
	if err := r.tellOwners(ctx, out, tables); err != nil {
		return nil, err
	}
	for _, id := range drop {
		out = append(out, PriorityOutcome{PriorityDecision: dispatch.PriorityDecision{ID: id, Status: dispatch.PriorityDropped}})
	}
	var resolved []string
	for _, o := range out {
		if o.Resolved() {
			resolved = append(resolved, o.ID)
		}
	}
	if len(resolved) > 0 {
		rows, err := r.tx.Query(ctx, deletePriorityRequestsQuery, resolved)
		if err != nil {
			return nil, err
		}
		waited := make(map[string]float64, len(resolved))
		var id string
		var secs float64
		if _, err := pgx.ForEachRow(rows, []any{&id, &secs}, func() error {
			waited[id] = secs
			return nil
		}); err != nil {
			return nil, err
		}
		for i := range out {
			if s, ok := waited[out[i].ID]; ok {
				out[i].Waited = time.Duration(s * float64(time.Second))
			}
		}
	}
	return out, nil
}

// lockJobs reads the live processors and locks and reads the existing jobs
// of ids, in one round trip; then, when a request needs an owner (a job to
// queue or move), the live processors' loads (see ResolvePriority).
func (r *resolver) lockJobs(ctx context.Context, ids []string, onDisk map[string]bool) ([]dispatch.Load, map[string]dispatch.Job, error) {
	var b pgx.Batch
	b.Queue(liveProcessorIDsQuery, interval(r.checkIn))
	b.Queue(lockPriorityJobsQuery, ids, interval(r.checkIn))
	br := r.tx.SendBatch(ctx, &b)
	defer br.Close()

	rows, err := br.Query()
	if err != nil {
		return nil, nil, err
	}
	liveIDs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, nil, err
	}
	rows, err = br.Query()
	if err != nil {
		return nil, nil, err
	}
	jobs := map[string]dispatch.Job{}
	var id string
	var j dispatch.Job
	_, err = pgx.ForEachRow(rows, []any{&id, &j.Owner, &j.Finished, &j.OwnerDead}, func() error {
		jobs[id] = j
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if err := br.Close(); err != nil {
		return nil, nil, err
	}
	live, err := r.liveLoads(ctx, liveIDs, ids, jobs, onDisk)
	return live, jobs, err
}

// liveLoads returns the live processors liveIDs with their loads: read
// only when a request of ids needs an owner, and from the snapshot when it
// is recent (a processor it lacks counts as idle); zero otherwise.
func (r *resolver) liveLoads(ctx context.Context, liveIDs []int64, ids []string, jobs map[string]dispatch.Job, onDisk map[string]bool) ([]dispatch.Load, error) {
	live := make([]dispatch.Load, len(liveIDs))
	for i, id := range liveIDs {
		live[i].Processor = id
	}
	needOwner := slices.ContainsFunc(ids, func(id string) bool {
		var job *dispatch.Job
		if j, ok := jobs[id]; ok {
			job = &j
		}
		s := dispatch.DecidePriority(job, onDisk[id], true)
		return s == dispatch.PriorityQueued || s == dispatch.PriorityMoved
	})
	if !needOwner || len(live) == 0 {
		return live, nil
	}
	if !r.loads.Recent(time.Now()) {
		start := time.Now()
		procs, err := liveProcessors(ctx, r.tx, r.checkIn)
		if err != nil {
			return nil, err
		}
		if r.loads == nil {
			return procs, nil
		}
		*r.loads = dispatch.NewLoads(procs, start, time.Since(start))
	}
	known := map[int64]int64{}
	for _, p := range r.loads.Procs() {
		known[p.Processor] = p.Jobs
	}
	for i := range live {
		live[i].Jobs = known[live[i].Processor]
	}
	return live, nil
}

// priorityTables returns which of the processors ids have a
// priority_jobs_<id> table.
func (r *resolver) priorityTables(ctx context.Context, ids []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = PriorityTable(id)
	}
	rows, err := r.tx.Query(ctx, priorityTablesQuery, ids, names)
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

// writeJobs queues, moves and raises the jobs of out as decided, in one
// round trip. A job the insert or the move skipped (it changed meanwhile)
// becomes PriorityRetry.
func (r *resolver) writeJobs(ctx context.Context, out []PriorityOutcome) error {
	var insIDs, movIDs, raise []string
	var insOwners, movOwners []int64
	for _, o := range out {
		switch o.Status {
		case dispatch.PriorityQueued:
			insIDs, insOwners = append(insIDs, o.ID), append(insOwners, o.Owner)
		case dispatch.PriorityMoved:
			movIDs, movOwners = append(movIDs, o.ID), append(movOwners, o.Owner)
		case dispatch.PriorityRaised:
			raise = append(raise, o.ID)
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
	br := r.tx.SendBatch(ctx, &b)
	defer br.Close()

	done := map[string]int64{} // id -> owner, of the rows inserted or moved
	collect := func() error {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		got, err := collectOwners(rows, len(insIDs)+len(movIDs))
		maps.Copy(done, got)
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
		if o.Status != dispatch.PriorityQueued && o.Status != dispatch.PriorityMoved {
			continue
		}
		if owner, ok := done[o.ID]; ok {
			out[i].Owner = owner
		} else {
			out[i] = PriorityOutcome{PriorityDecision: dispatch.PriorityDecision{ID: o.ID, Status: dispatch.PriorityRetry}}
		}
	}
	return nil
}
