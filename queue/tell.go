package queue

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/crashmonitor/monitor/dispatch"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Telling processors which of their jobs to take first: the ids go into
// their priority_jobs_<id> tables, part of ResolvePriority's transaction.

// tellOwners inserts the ids of the jobs queued, moved or raised into their
// owners' priority_jobs tables, those of tables, and sets Told. It tries all
// owners at once under one savepoint; should a statement fail, it tries each
// owner under its own, so that one broken table only holds back its own ids
// (TellErr). An error that the transaction cannot survive is returned.
func (r *resolver) tellOwners(ctx context.Context, out []PriorityOutcome, tables map[int64]bool) error {
	byOwner := map[int64][]string{}
	for _, o := range out {
		switch o.Status {
		case dispatch.PriorityQueued, dispatch.PriorityMoved, dispatch.PriorityRaised:
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
	stmtErr, err := r.tell(ctx, owners, byOwner)
	switch {
	case err != nil:
		return err
	case stmtErr != nil && len(owners) == 1:
		failed[owners[0]] = stmtErr
	case stmtErr != nil:
		for _, owner := range owners {
			stmtErr, err := r.tell(ctx, []int64{owner}, byOwner)
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
		case dispatch.PriorityQueued, dispatch.PriorityMoved, dispatch.PriorityRaised:
			out[i].TellErr = failed[o.Owner]
			out[i].Told = out[i].TellErr == nil
		}
	}
	return nil
}

// tell inserts the ids of owners into their tables under a savepoint, in one
// round trip. When the server rejects a statement it rolls back to the
// savepoint and returns that error as stmtErr; any other failure is err.
func (r *resolver) tell(ctx context.Context, owners []int64, byOwner map[int64][]string) (stmtErr, err error) {
	var b pgx.Batch
	b.Queue("SAVEPOINT tell_owners")
	for _, owner := range owners {
		b.Queue(fmt.Sprintf(tellOwnerQuery, PriorityTable(owner)), byOwner[owner])
	}
	b.Queue("RELEASE SAVEPOINT tell_owners")
	err = r.tx.SendBatch(ctx, &b).Close()
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) {
		return nil, err
	}
	if _, rerr := r.tx.Exec(ctx, "ROLLBACK TO SAVEPOINT tell_owners"); rerr != nil {
		return nil, errors.Join(err, rerr)
	}
	return DBError(err, "tell processors %v", owners), nil
}
