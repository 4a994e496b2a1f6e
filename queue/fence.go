package queue

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNotLeader is the error of a fenced write whose lease no longer holds:
// another monitor is (or may become) active, and nothing was changed.
var ErrNotLeader = errors.New("not the active monitor: the lease of this term no longer holds")

const (
	// fenceQuery is the first statement of every fenced transaction: it
	// checks that the lease of term $2 is still held by instance $1, and
	// keeps the row locked FOR KEY SHARE until the commit. A renewal (a
	// plain UPDATE of non-key columns) does not wait for that lock; a
	// takeover (FOR UPDATE) does, so no fenced transaction commits after
	// the lease changed hands. It also bounds how long the transaction may
	// sit idle between its statements: a holder frozen inside one (a
	// stopped process, a lost host) would otherwise hold off the takeover
	// until TCP gives up on it. 3 s, the lease's TTL, keeps such a takeover
	// within about a second of the lease's expiry; the monitor's own
	// transactions never pause that long between statements.
	fenceQuery = `
SELECT set_config('idle_in_transaction_session_timeout', '3s', true)
FROM monitor_leader
WHERE id = 1 AND instance = $1 AND term = $2 AND expires_at > clock_timestamp()
FOR KEY SHARE`
)

// fence is the lease a Store's writes are fenced by.
type fence struct {
	lease Lease
	// lost, when not nil, is called when a check finds the lease gone,
	// before the error is returned.
	lost func()
}

// Fenced returns a Store over the same pool whose transactions that change
// jobs (Enqueue, ReapDeadProcessors, ResolvePriority, DeleteFinishedJobs,
// RecordCleanupFailures, PurgeCleanupFailures) first check, in the same
// transaction and under a lock that a takeover waits for, that lease still
// holds. When it does not they change nothing, call lost (when not nil) and
// return an error wrapping ErrNotLeader. Reads are not fenced.
func (s *Store) Fenced(lease Lease, lost func()) *Store {
	return &Store{pool: s.pool, fence: &fence{lease: lease, lost: lost}}
}

// checkFence runs the fence check as the first statement of tx; it does
// nothing for a Store that is not fenced.
func (s *Store) checkFence(ctx context.Context, tx pgx.Tx) error {
	if s.fence == nil {
		return nil
	}
	var ignored string
	err := tx.QueryRow(ctx, fenceQuery, s.fence.lease.Instance, s.fence.lease.Term).Scan(&ignored)
	if errors.Is(err, pgx.ErrNoRows) {
		if s.fence.lost != nil {
			s.fence.lost()
		}
		return ErrNotLeader
	}
	return err
}

// dbtx is what a write needs of a pool or a transaction.
type dbtx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// write runs fn, the statements of a write, in a fenced transaction; for a
// Store that is not fenced, fn runs on the pool as it is (one statement
// needs no transaction of its own).
func (s *Store) write(ctx context.Context, fn func(q dbtx) error) error {
	if s.fence == nil {
		return fn(s.pool)
	}
	return s.tx(ctx, func(tx pgx.Tx) error { return fn(tx) })
}

// tx runs fn in a transaction whose first statement is the fence check.
func (s *Store) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.checkFence(ctx, tx); err != nil {
			return err
		}
		return fn(tx)
	})
}
