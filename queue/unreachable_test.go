package queue_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/queue"
)

func TestUnreachableClassifies(t *testing.T) {
	t.Parallel()
	pg := func(code string) error { return &pgconn.PgError{Severity: "FATAL", Code: code} }
	wrap := func(err error) error { return queue.DBError(err, "enqueue 3 ids") }
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"broken pipe", fmt.Errorf("write: %w", syscall.EPIPE), true},
		{"EOF", fmt.Errorf("receive message: %w", io.EOF), true},
		{"unexpected EOF", wrap(io.ErrUnexpectedEOF), true},
		{"conn closed", wrap(pgconn.ErrConnClosed), true},
		{"admin shutdown", wrap(pg("57P01")), true},
		{"crash shutdown", wrap(pg("57P02")), true},
		{"starting up", wrap(pg("57P03")), true},
		{"pooler cannot connect", wrap(pg("08P01")), true},
		{"connection failure", wrap(pg("08006")), true},
		{"query canceled", wrap(pg("57014")), false},
		{"syntax error", wrap(pg("42601")), false},
		{"undefined table", wrap(pg("42P01")), false},
		{"serialization failure", wrap(pg("40001")), false},
		{"wrong password", wrap(pg("28P01")), false},
		{"cancelled", wrap(context.Canceled), false},
		{"other", errors.New("disk full"), false},
	} {
		if got := queue.Unreachable(tc.err); got != tc.want {
			t.Errorf("%s: Unreachable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestUnreachableRealErrors: the errors pgx returns for a server that
// refuses connections and for a connection killed by pg_terminate_backend
// are outages; a statement error is not.
func TestUnreachableRealErrors(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = pgx.Connect(ctx, "postgres://nobody@"+addr+"/none?sslmode=disable")
	if err == nil || !queue.Unreachable(err) {
		t.Errorf("connection refused: Unreachable(%v) = false", err)
	}

	pool := pgtest.Schema(t)
	conn, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(t.Context(), "SELECT no_such_column FROM jobs"); err == nil || queue.Unreachable(err) {
		t.Errorf("statement error: Unreachable(%v) = true", err)
	}
	pid := conn.Conn().PgConn().PID()
	if _, err := pool.Exec(t.Context(), "SELECT pg_terminate_backend($1)", int32(pid)); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(t.Context(), "SELECT count(*) FROM jobs WHERE uuid = $1", "x")
	if err == nil || !queue.Unreachable(err) {
		t.Errorf("terminated connection: Unreachable(%v) = false", err)
	}
}
