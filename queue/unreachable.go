package queue

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unreachable reports whether err says that the database could not be
// reached or that the connection to it was lost: PostgreSQL stopping,
// restarting or refusing connections, a network failure, a connection
// killed by pg_terminate_backend, a pooler (PgBouncer) that cannot reach the
// server. Such an error is an outage to wait out, not a fault of the
// statement: the same work is expected to succeed once the database answers
// again. A connection refused for a reason the database gives (a wrong
// password, a database that does not exist) is not an outage, nor is a
// statement the server rejects, nor a cancelled context.
func Unreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		// The server (or the pooler) answered: it is an outage only when it
		// says that it cannot serve the connection now.
		return unreachableState(pgErr.Code)
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true // no answer while connecting: refused, reset, timed out
	}
	if pgconn.Timeout(err) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.EPIPE, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ETIMEDOUT} {
		if errors.Is(err, errno) {
			return true
		}
	}
	if _, ok := errors.AsType[*net.OpError](err); ok {
		return true
	}
	if _, ok := errors.AsType[*net.DNSError](err); ok {
		return true
	}
	return false
}

// unreachableState reports whether a SQLSTATE says that the connection
// cannot be served now: class 08 (connection exception, which PgBouncer
// also uses when it cannot reach the server), 57P01 admin_shutdown (a fast
// shutdown, or pg_terminate_backend), 57P02 crash_shutdown (another backend
// crashed, or an immediate shutdown), 57P03 cannot_connect_now (starting up
// or shutting down).
func unreachableState(code string) bool {
	return strings.HasPrefix(code, "08") || code == "57P01" || code == "57P02" || code == "57P03"
}
