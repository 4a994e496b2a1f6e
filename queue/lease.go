package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The lease of the active monitor (migration 007): the statements of the
// election, run on a session of its own (LeaseSession), apart from the
// loops' pool, whose saturation must never delay a renewal.

// Instance is one running monitor: a process, named by an id that no other
// run shares (a restart is another instance), with its host and pid for
// the people reading the status.
type Instance struct {
	ID   string `json:"instance"`
	Host string `json:"host"`
	PID  int    `json:"pid"`
}

// Lease is a term of office: the instance that held the lease and the term
// it held it in. The writes of a term are fenced by it (Store.Fenced).
type Lease struct {
	Instance string
	Term     int64
}

// Leader is what the lease row says.
type Leader struct {
	Instance
	// Term counts the acquisitions of the lease, this one included.
	Term int64
	// Since is when the term began (zero before the first); ExpiresAt when
	// it ends unless renewed. Both by the database clock.
	Since, ExpiresAt time.Time
	// Valid is set while the lease holds (expires_at is in the future of the
	// database clock). An expired lease names its last holder.
	Valid bool
}

// Lease returns the term of office the row describes.
func (l Leader) Lease() Lease { return Lease{Instance: l.ID, Term: l.Term} }

// MonitorInstance is a running monitor as monitor_instances shows it.
type MonitorInstance struct {
	Instance
	// Started is when it first checked in; Seen its latest heartbeat, by the
	// database clock.
	Started, Seen time.Time
}

const (
	// leaderQuery reads the lease.
	leaderQuery = `
SELECT instance, host, pid, term, since, expires_at, expires_at > clock_timestamp()
FROM monitor_leader WHERE id = 1`

	// ensureLeaderQuery puts back the lease row should it have been deleted
	// by hand.
	ensureLeaderQuery = `INSERT INTO monitor_leader (id) VALUES (1) ON CONFLICT (id) DO NOTHING`

	// lockExpiredLeaseQuery locks the lease when it has expired. FOR UPDATE
	// waits for the fenced transactions of the last holder (FOR KEY SHARE)
	// to end, so that none of them commits after the lease changes hands;
	// the expiry is checked again on the row as they left it. While the
	// lease holds, nothing is locked.
	lockExpiredLeaseQuery = `
SELECT term FROM monitor_leader
WHERE id = 1 AND expires_at <= clock_timestamp()
FOR UPDATE`

	// takeLeaseQuery gives the locked lease to the instance $1 ($2 host, $3
	// pid) in a new term, for $4 (the TTL).
	takeLeaseQuery = `
UPDATE monitor_leader
SET instance = $1, host = $2, pid = $3, term = term + 1,
    since = clock_timestamp(), expires_at = clock_timestamp() + $4::interval
WHERE id = 1
RETURNING instance, host, pid, term, since, expires_at, true`

	// renewLeaseQuery extends the lease $1/$2 by $3 while it holds. A
	// plain UPDATE of non-key columns: it takes no lock that the holder's
	// own fenced transactions (FOR KEY SHARE) conflict with.
	renewLeaseQuery = `
UPDATE monitor_leader SET expires_at = clock_timestamp() + $3::interval
WHERE id = 1 AND instance = $1 AND term = $2 AND expires_at > clock_timestamp()`

	// resignQuery ends at once any term of the instance $1 that still holds.
	resignQuery = `
UPDATE monitor_leader SET expires_at = clock_timestamp()
WHERE id = 1 AND instance = $1 AND expires_at > clock_timestamp()`

	// heartbeatQuery records that the instance $1 ($2 host, $3 pid) runs,
	// and forgets the instances not seen for $4.
	heartbeatQuery = `
WITH gone AS (
    DELETE FROM monitor_instances WHERE seen_at < clock_timestamp() - $4::interval AND instance <> $1
)
INSERT INTO monitor_instances AS i (instance, host, pid) VALUES ($1, $2, $3)
ON CONFLICT (instance) DO UPDATE SET seen_at = clock_timestamp()`

	// leaveQuery removes the instance $1 from the running monitors.
	leaveQuery = `DELETE FROM monitor_instances WHERE instance = $1`

	// statusLeaderQuery and statusInstancesQuery are Status's part: the
	// lease and the instances seen within $1.
	statusLeaderQuery    = leaderQuery
	statusInstancesQuery = `
SELECT instance, host, pid, started_at, seen_at FROM monitor_instances
WHERE seen_at > clock_timestamp() - $1::interval
ORDER BY started_at, instance`
)

// InstanceForget is how long an instance may go without a heartbeat before
// the others remove its row; StandbySeen how recent its heartbeat must be
// for Status to list it.
const (
	InstanceForget = time.Minute
	StandbySeen    = 10 * time.Second
)

// LeaseSession runs the election's statements on a connection of its own.
// Any error leaves the session unusable: close it and open another. It is
// not safe for concurrent use.
type LeaseSession struct {
	conn *pgx.Conn
}

// NewLeaseSession returns the session over conn, which it owns from now on.
// The connection's search_path decides which schema's lease it is.
func NewLeaseSession(conn *pgx.Conn) *LeaseSession {
	return &LeaseSession{conn: conn}
}

// PID returns the server process id of the session, as pg_stat_activity
// shows it.
func (s *LeaseSession) PID() uint32 { return s.conn.PgConn().PID() }

// Close closes the connection.
func (s *LeaseSession) Close(ctx context.Context) error { return s.conn.Close(ctx) }

// Observe records the heartbeat of me and reads the lease, in one round
// trip.
func (s *LeaseSession) Observe(ctx context.Context, me Instance) (Leader, error) {
	var b pgx.Batch
	b.Queue(heartbeatQuery, me.ID, me.Host, me.PID, interval(InstanceForget))
	b.Queue(leaderQuery)
	br := s.conn.SendBatch(ctx, &b)
	var l Leader
	_, err := br.Exec()
	if err == nil {
		err = scanLeader(br.QueryRow(), &l)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, pgx.ErrNoRows) {
		// The row was deleted by hand: no one holds the lease; Acquire puts
		// it back.
		return Leader{}, nil
	}
	if err != nil {
		return Leader{}, DBError(err, "read the lease")
	}
	return l, nil
}

// Acquire takes the lease for me for ttl, in a new term, if it has expired
// (or was never held). It reports the lease as it is afterwards and whether
// me took it. Taking it waits for the transactions the last holder fenced
// with it to end.
func (s *LeaseSession) Acquire(ctx context.Context, me Instance, ttl time.Duration) (Leader, bool, error) {
	var l Leader
	took := false
	err := pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, ensureLeaderQuery); err != nil {
			return err
		}
		var term int64
		err := tx.QueryRow(ctx, lockExpiredLeaseQuery).Scan(&term)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			// Held by someone (possibly since a moment ago).
			return scanLeader(tx.QueryRow(ctx, leaderQuery), &l)
		case err != nil:
			return err
		}
		took = true
		return scanLeader(tx.QueryRow(ctx, takeLeaseQuery, me.ID, me.Host, me.PID, interval(ttl)), &l)
	})
	if err != nil {
		return Leader{}, false, DBError(err, "acquire the lease")
	}
	return l, took, nil
}

// Renew extends the lease of term lease by ttl and records the heartbeat of
// me, in one round trip. It reports false when the lease no longer holds
// for that term (it expired, or another instance took it).
func (s *LeaseSession) Renew(ctx context.Context, me Instance, lease Lease, ttl time.Duration) (bool, error) {
	var b pgx.Batch
	b.Queue(renewLeaseQuery, lease.Instance, lease.Term, interval(ttl))
	b.Queue(heartbeatQuery, me.ID, me.Host, me.PID, interval(InstanceForget))
	br := s.conn.SendBatch(ctx, &b)
	tag, err := br.Exec()
	if err == nil {
		_, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, DBError(err, "renew the lease of term %d", lease.Term)
	}
	return tag.RowsAffected() == 1, nil
}

// Resign ends at once the lease of instance, if it holds one: another
// monitor may take it on its next attempt. It reports whether there was one.
func (s *LeaseSession) Resign(ctx context.Context, instance string) (bool, error) {
	tag, err := s.conn.Exec(ctx, resignQuery, instance)
	if err != nil {
		return false, DBError(err, "resign the lease")
	}
	return tag.RowsAffected() == 1, nil
}

// Leave removes instance from the running monitors (a clean stop).
func (s *LeaseSession) Leave(ctx context.Context, instance string) error {
	if _, err := s.conn.Exec(ctx, leaveQuery, instance); err != nil {
		return DBError(err, "leave the running monitors")
	}
	return nil
}

// scanLeader reads a row of leaderQuery's columns.
func scanLeader(row pgx.Row, l *Leader) error {
	var since *time.Time // NULL before the first term
	if err := row.Scan(&l.ID, &l.Host, &l.PID, &l.Term, &since, &l.ExpiresAt, &l.Valid); err != nil {
		return err
	}
	if since != nil {
		l.Since = *since
	}
	return nil
}

// String names the instance for logs: host and pid.
func (i Instance) String() string { return fmt.Sprintf("%s pid %d", i.Host, i.PID) }
