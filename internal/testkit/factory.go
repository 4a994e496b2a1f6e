package testkit

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Processors registers one processor per ago, last seen that long before
// the database's localtimestamp (0: live; past the check-in time: stale;
// well past it: dead), and returns their ids in order. Each gets a name of
// its own.
func Processors(t testing.TB, pool *pgxpool.Pool, ago ...time.Duration) []int64 {
	t.Helper()
	ids := make([]int64, 0, len(ago))
	for _, a := range ago {
		var id int64
		err := pool.QueryRow(withoutCancel(t), `
			INSERT INTO processors (name, startdatetime, lastseendatetime)
			VALUES ('proc_' || gen_random_uuid(), localtimestamp, localtimestamp - make_interval(secs => $1))
			RETURNING id`, a.Seconds()).Scan(&id)
		if err != nil {
			t.Fatalf("insert processor: %v", err)
		}
		ids = append(ids, id)
	}
	return ids
}

// LiveProcessors registers n processors seen just now.
func LiveProcessors(t testing.TB, pool *pgxpool.Pool, n int) []int64 {
	t.Helper()
	return Processors(t, pool, make([]time.Duration, n)...)
}

// PriorityTables creates the priority_jobs_<id> table of each processor, as
// a classic processor does when it registers.
func PriorityTables(t testing.TB, pool *pgxpool.Pool, ids ...int64) {
	t.Helper()
	for _, id := range ids {
		table := pgx.Identifier{fmt.Sprintf("priority_jobs_%d", id)}.Sanitize()
		if _, err := pool.Exec(withoutCancel(t), `CREATE TABLE `+table+` (uuid varchar(50) NOT NULL PRIMARY KEY)`); err != nil {
			t.Fatalf("create %s: %v", table, err)
		}
	}
}

// JobState is where a job inserted by Jobs stands.
type JobState int

const (
	Queued    JobState = iota // queued, not started
	Started                   // started, not finished
	Succeeded                 // finished, success
	Failed                    // finished, no success
)

// Jobs inserts a job per id in state, owned by owner (0: no owner), queued
// (and started) at the database's localtimestamp; finished ones complete a
// second apart in the order of ids, so that cleanup takes them in that
// order.
func Jobs(t testing.TB, pool *pgxpool.Pool, state JobState, owner int64, ids ...string) {
	t.Helper()
	var ownerArg, success any
	if owner != 0 {
		ownerArg = owner
	}
	if state >= Succeeded {
		success = state == Succeeded
	}
	_, err := pool.Exec(withoutCancel(t), `
INSERT INTO jobs (uuid, owner, queueddatetime, starteddatetime, completeddatetime, success)
SELECT u, $2::integer, localtimestamp,
	CASE WHEN $3 THEN localtimestamp END,
	CASE WHEN $4 THEN localtimestamp + make_interval(secs => o) END,
	$5::boolean
FROM unnest($1::text[]) WITH ORDINALITY AS t(u, o)`, ids, ownerArg, state >= Started, state >= Succeeded, success)
	if err != nil {
		t.Fatalf("insert jobs: %v", err)
	}
}

// QueryInt runs a query returning one integer, such as a count.
func QueryInt(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(withoutCancel(t), sql, args...).Scan(&n); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return n
}

// QueryColumn runs a query returning one column, and returns its values
// in the query's order.
func QueryColumn[T any](t testing.TB, pool *pgxpool.Pool, sql string, args ...any) []T {
	t.Helper()
	rows, err := pool.Query(withoutCancel(t), sql, args...)
	if err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[T])
	if err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return out
}
