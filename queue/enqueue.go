package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/crashmonitor/monitor/dispatch"
	"github.com/jackc/pgx/v5"
)

// ErrNoLiveProcessor means nothing was queued because no processor is live.
var ErrNoLiveProcessor = errors.New("no live processor")

// Assignment is one job Enqueue inserted: crash id ID, owned by processor
// Owner.
type Assignment struct {
	ID    string
	Owner int64
}

// EnqueueResult reports what Enqueue did with each distinct id it was given:
// every one is either in Queued or in Existing, once.
type EnqueueResult struct {
	// Queued lists the rows inserted, in the order the ids were given.
	Queued []Assignment
	// Existing lists, in the order given, the ids that already had a jobs
	// row (queued before, or by someone else). It is not an error: the
	// caller treats them as done.
	Existing []string
}

const (
	// liveProcessorsQuery reads the live processors with their load, the
	// number of their unfinished jobs (counted through
	// jobs_owner_unfinished_idx). $1 is processorCheckInTime.
	// liveProcessorIDsQuery lists the live processors, by id, without
	// their loads.
	liveProcessorIDsQuery = `
SELECT id FROM processors
WHERE monitor_processor_state(lastseendatetime, $1) = 'live'
ORDER BY id`

	liveProcessorsQuery = `
SELECT p.id, (SELECT count(*) FROM jobs j WHERE j.owner = p.id AND j.success IS NULL)
FROM processors p
WHERE monitor_processor_state(p.lastseendatetime, $1) = 'live'
ORDER BY p.id`

	// enqueueQuery inserts the ids $1 with the owners $2 (same length), in
	// array order so that jobs.id follows it. An id that already has a row
	// (or repeats an earlier one of $1) is skipped.
	enqueueQuery = `
INSERT INTO jobs (pathname, uuid, owner, priority, queueddatetime)
SELECT '', q.uuid, q.owner, $3::int, localtimestamp
FROM unnest($1::text[], $2::int[]) WITH ORDINALITY AS q(uuid, owner, ord)
ORDER BY q.ord
ON CONFLICT (uuid) DO NOTHING
RETURNING uuid, owner`
)

// Enqueue queues ids, in the order given, as jobs (empty pathname, priority,
// queueddatetime = localtimestamp) owned by the least-loaded live processors.
// checkIn is processorCheckInTime: a processor is live when it checked in
// within checkIn.
//
// It runs one transaction: read the live processors with their load (their
// jobs with success IS NULL), unless loads holds a fresh snapshot (see
// dispatch.Loads; nil reads every time); decide the owners with
// dispatch.Assign (an id skipped below has still counted as load for the ids
// after it); insert all the rows in one statement, skipping ids that already
// have one. loads, when given, is updated with what was queued.
//
// When no processor is live it inserts nothing and returns an error wrapping
// ErrNoLiveProcessor. Repeated ids are queued once. Empty ids do nothing and
// query nothing. Callers validate the ids first (at most 50 characters):
// the rows are inserted in one statement, so one bad id means none is.
func (s *Store) Enqueue(ctx context.Context, ids []string, priority int, checkIn time.Duration, loads *dispatch.Loads) (EnqueueResult, error) {
	if len(ids) == 0 {
		return EnqueueResult{}, nil
	}
	ids = distinct(ids)

	var inserted map[string]int64
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var procs []dispatch.Load
		if loads.Fresh(time.Now()) {
			procs = loads.Procs()
		} else {
			start := time.Now()
			var err error
			if procs, err = liveProcessors(ctx, tx, checkIn); err != nil {
				return err
			}
			if loads != nil {
				*loads = dispatch.NewLoads(procs, start, time.Since(start))
			}
		}
		if len(procs) == 0 {
			return ErrNoLiveProcessor
		}
		owners := dispatch.Assign(procs, len(ids))

		rows, err := tx.Query(ctx, enqueueQuery, ids, owners, priority)
		if err != nil {
			return err
		}
		inserted, err = collectOwners(rows, len(ids))
		return err
	})
	if errors.Is(err, ErrNoLiveProcessor) {
		return EnqueueResult{}, fmt.Errorf("enqueue %d ids: %w", len(ids), ErrNoLiveProcessor)
	}
	if err != nil {
		if loads != nil {
			loads.Reset() // the transaction failed: read again next time
		}
		return EnqueueResult{}, DBError(err, "enqueue %d ids", len(ids))
	}

	res := EnqueueResult{Queued: make([]Assignment, 0, len(inserted))}
	added := map[int64]int64{}
	for _, id := range ids {
		if owner, ok := inserted[id]; ok {
			res.Queued = append(res.Queued, Assignment{ID: id, Owner: owner})
			added[owner]++
		} else {
			res.Existing = append(res.Existing, id)
		}
	}
	if loads != nil {
		loads.Add(added)
	}
	return res, nil
}

// querier is what liveProcessors needs of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// liveProcessors runs liveProcessorsQuery.
func liveProcessors(ctx context.Context, q querier, checkIn time.Duration) ([]dispatch.Load, error) {
	rows, err := q.Query(ctx, liveProcessorsQuery, interval(checkIn))
	if err != nil {
		return nil, err
	}
	return collectLoads(rows)
}

func collectLoads(rows pgx.Rows) ([]dispatch.Load, error) {
	var p dispatch.Load
	var out []dispatch.Load
	_, err := pgx.ForEachRow(rows, []any{&p.Processor, &p.Jobs}, func() error {
		out = append(out, p)
		return nil
	})
	return out, err
}

// collectOwners reads (uuid, owner) rows into a map.
func collectOwners(rows pgx.Rows, n int) (map[string]int64, error) {
	out := make(map[string]int64, n)
	var id string
	var owner int64
	_, err := pgx.ForEachRow(rows, []any{&id, &owner}, func() error {
		out[id] = owner
		return nil
	})
	return out, err
}

// distinct returns ids without repeats, keeping the first occurrence of
// each. It returns ids itself when there are none.
func distinct(ids []string) []string {
	seen := make(map[string]struct{}, len(ids))
	for i, id := range ids {
		if _, dup := seen[id]; dup {
			out := make([]string, i, len(ids)-1)
			copy(out, ids[:i])
			for _, id := range ids[i+1:] {
				if _, dup := seen[id]; !dup {
					seen[id] = struct{}{}
					out = append(out, id)
				}
			}
			return out
		}
		seen[id] = struct{}{}
	}
	return ids
}
