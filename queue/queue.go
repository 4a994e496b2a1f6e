// Package queue owns the jobs database: the schema migrations and every SQL
// statement the monitor binary runs against the tables it shares with the
// crash processors (processors, jobs, priorityjobs and priority_jobs_<id>),
// and nothing else: the processor's side of the protocol lives with the
// simulated processor (internal/procsim), the benchmark's statements with
// the benchmark (internal/bench).
//
// Each transaction reads the state it needs, hands it to the pure decisions
// of package dispatch (owners, the priority decision table), and writes the
// outcome; every UPDATE re-checks in its WHERE clause the state it was
// decided on. Liveness is the SQL function monitor_processor_state
// (migration 005), which every statement that judges a processor calls.
//
// Values are always bind parameters; the only
// identifiers built at run time are priority_jobs_<id> names made from
// integers and quoted with pgx.Identifier. Time is the database's: the
// classic columns are timestamp without time zone written by processors with
// now(), so liveness and ages are computed in SQL against localtimestamp and
// never against the monitor host's clock.
//
// Errors are wrapped once, by DBError, with lower-case context; a missing
// table is reported as ErrSchemaMissing. Nothing here logs.
package queue

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store runs the monitor's queries over a connection pool. It is safe for
// concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns a Store over pool. The pool's search_path decides which
// schema the unqualified table names resolve to.
func NewStore(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool}
}

// sqlstateUndefinedTable is PostgreSQL's undefined_table error code.
const sqlstateUndefinedTable = "42P01"

// DBError wraps err, which the database returned for the operation that
// format and args describe ("enqueue 2000 ids"), the one time it is
// wrapped: the operation, then the sentinel callers act on when there is one
// (a missing table wraps ErrSchemaMissing and says to run `monitor
// migrate`), then the driver's error. It returns nil for a nil err, so a
// method can end with return DBError(err, ...).
func DBError(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	op := fmt.Sprintf(format, args...)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == sqlstateUndefinedTable {
		return fmt.Errorf("%s: %w (run `monitor migrate`): %w", op, ErrSchemaMissing, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// interval converts d for an interval bind parameter.
func interval(d time.Duration) pgtype.Interval {
	return pgtype.Interval{Microseconds: d.Microseconds(), Valid: true}
}

// duration converts an interval from the database, counting a day as 24
// hours and a month as 30 days, as PostgreSQL's own justify functions do.
func duration(iv pgtype.Interval) time.Duration {
	return time.Duration(iv.Microseconds)*time.Microsecond +
		time.Duration(iv.Days)*24*time.Hour +
		time.Duration(iv.Months)*30*24*time.Hour
}
