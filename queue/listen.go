package queue

import (
	"cmp"
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// priorityChannel is the channel migration 002's trigger notifies, with an
// empty payload, after each INSERT statement into priorityjobs.
const priorityChannel = "monitor_priorityjobs"

// PriorityListener is a connection of its own that LISTENs for new priority
// requests. A notification is only a hint to look at priorityjobs now: the
// table is the truth, and one is lost while the connection is down.
// Channels are per database, not per schema, so a listener also hears the
// inserts of other schemas of the same database; that costs a pass that
// finds nothing. It is not safe for concurrent use.
type PriorityListener struct {
	conn *pgx.Conn
}

// ListenPriority opens a connection with the pool's settings (server,
// credentials, TLS, search_path) and LISTENs on it, as ListenPriorityWith.
func (s *Store) ListenPriority(ctx context.Context) (*PriorityListener, error) {
	return ListenPriorityWith(ctx, s.pool.Config().ConnConfig)
}

// ListenPriorityWith opens a connection with cfg and LISTENs on it: with
// the pool's settings, or with those of a direct connection to PostgreSQL
// when the pool goes through a transaction pooler, where a LISTEN would not
// outlive its transaction. The connection is not taken from the pool: it is
// held for as long as the daemon runs, and holding one of the pool's
// connections would leave the loops one fewer, while its failure would be
// the pool's business rather than the listener's. It shows in
// pg_stat_activity with cfg's application_name (or "monitor") followed by
// " priority listener"; cfg itself is left unchanged. Close it when done.
func ListenPriorityWith(ctx context.Context, cfg *pgx.ConnConfig) (*PriorityListener, error) {
	cfg = cfg.Copy()
	cfg.RuntimeParams["application_name"] = cmp.Or(cfg.RuntimeParams["application_name"], "monitor") + " priority listener"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("listen for priority requests: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{priorityChannel}.Sanitize()); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("listen for priority requests: %w", err)
	}
	return &PriorityListener{conn: conn}, nil
}

// Wait blocks until a notification arrives (nil), ctx is done (ctx's error;
// the connection stays usable when ctx only timed out), or the connection
// fails.
func (l *PriorityListener) Wait(ctx context.Context) error {
	if _, err := l.conn.WaitForNotification(ctx); err != nil {
		return fmt.Errorf("wait for priority requests: %w", err)
	}
	return nil
}

// Ping checks that the connection still works, for the quiet times when
// no notification proves it.
func (l *PriorityListener) Ping(ctx context.Context) error {
	if err := l.conn.Ping(ctx); err != nil {
		return fmt.Errorf("ping priority listener: %w", err)
	}
	return nil
}

// PID returns the server process id of the connection, as pg_stat_activity
// shows it.
func (l *PriorityListener) PID() uint32 {
	return l.conn.PgConn().PID()
}

// Close closes the connection (the server forgets the LISTEN with it).
func (l *PriorityListener) Close(ctx context.Context) error {
	return l.conn.Close(ctx)
}
