package testkit

// Rows for the tests of the SQL layer (queue) and of the tools built on it:
// processors last seen a given time ago, numbered jobs in each state,
// priority tables, and probes of what the tables hold.

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Processor registers a processor last seen ago before the database's
// localtimestamp and returns its id. Processors added in turn get increasing
// ids.
func Processor(t testing.TB, pool *pgxpool.Pool, ago time.Duration) int64 {
	t.Helper()
	return insertProcessor(t, pool, `localtimestamp - make_interval(secs => $1)`, ago.Seconds())
}

// ProcessorLastSeen registers a processor whose lastseendatetime is the
// SQL expression lastSeen (a constant of the test: NULL, '1999-01-01').
func ProcessorLastSeen(t testing.TB, pool *pgxpool.Pool, lastSeen string) int64 {
	t.Helper()
	return insertProcessor(t, pool, lastSeen)
}

func insertProcessor(t testing.TB, pool *pgxpool.Pool, lastSeen string, args ...any) int64 {
	t.Helper()
	sql := `
INSERT INTO processors (name, startdatetime, lastseendatetime)
VALUES ('host_' || gen_random_uuid(), localtimestamp - interval '1 day', ` + lastSeen + `)
RETURNING id`
	var id int64
	if err := pool.QueryRow(t.Context(), sql, args...).Scan(&id); err != nil {
		t.Fatalf("add processor: %v", err)
	}
	return id
}

// ProcessorsSeen adds n processors last seen ago and returns their ids.
func ProcessorsSeen(t testing.TB, pool *pgxpool.Pool, n int, ago time.Duration) []int64 {
	t.Helper()
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = Processor(t, pool, ago)
	}
	return ids
}

// PriorityTableWith creates priority_jobs_<id> as a registering processor
// does, holding uuids.
func PriorityTableWith(t testing.TB, pool *pgxpool.Pool, id int64, uuids ...string) {
	t.Helper()
	table := pgx.Identifier{fmt.Sprintf("priority_jobs_%d", id)}.Sanitize()
	ctx := t.Context()
	if _, err := pool.Exec(ctx, `CREATE TABLE `+table+` (uuid varchar(50) PRIMARY KEY)`); err != nil {
		t.Fatalf("create %s: %v", table, err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO `+table+` (uuid) SELECT unnest($1::text[])`, uuids); err != nil {
		t.Fatalf("fill %s: %v", table, err)
	}
}

// HasPriorityTable reports whether priority_jobs_<id> exists.
func HasPriorityTable(t testing.TB, pool *pgxpool.Pool, id int64) bool {
	t.Helper()
	var exists bool
	name := pgx.Identifier{fmt.Sprintf("priority_jobs_%d", id)}.Sanitize()
	if err := pool.QueryRow(t.Context(), `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	return exists
}

// NumberedJobs adds n jobs owned by owner in state, queued two hours ago (by the
// database clock), with uuids prefix-1 … prefix-n.
func NumberedJobs(t testing.TB, pool *pgxpool.Pool, owner int64, prefix string, n int, state JobState) {
	t.Helper()
	var started, completed, success, message string
	switch state {
	case Queued:
		started, completed, success, message = "NULL", "NULL", "NULL", "NULL"
	case Started:
		started, completed, success, message = "localtimestamp - interval '1 hour'", "NULL", "NULL", "NULL"
	case Succeeded:
		started, completed, success, message = "localtimestamp - interval '1 hour'", "localtimestamp - interval '30 minutes'", "true", "NULL"
	case Failed:
		started, completed, success, message = "localtimestamp - interval '1 hour'", "localtimestamp - interval '30 minutes'", "false", "'boom'"
	default:
		t.Fatalf("NumberedJobs: unknown state %d", state)
	}
	sql := fmt.Sprintf(`
INSERT INTO jobs (pathname, uuid, owner, priority, queueddatetime, starteddatetime, completeddatetime, success, message)
SELECT '', $1 || '-' || g, $2, 0, localtimestamp - interval '2 hours', %s, %s, %s, %s
FROM generate_series(1, $3::int) AS g`, started, completed, success, message)
	if _, err := pool.Exec(t.Context(), sql, prefix, owner, n); err != nil {
		t.Fatalf("add %d jobs (state %d) for processor %d: %v", n, state, owner, err)
	}
}

// UnfinishedLoads returns the number of unfinished jobs of each owner that
// has some.
func UnfinishedLoads(t testing.TB, pool *pgxpool.Pool) map[int64]int64 {
	t.Helper()
	return CountBy(t, pool, `SELECT owner, count(*) FROM jobs WHERE success IS NULL GROUP BY owner`)
}

// CountBy runs a query returning (int, count) rows as a map.
func CountBy(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) map[int64]int64 {
	t.Helper()
	rows, err := pool.Query(t.Context(), sql, args...)
	if err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	out := map[int64]int64{}
	var k, n int64
	if _, err := pgx.ForEachRow(rows, []any{&k, &n}, func() error {
		out[k] = n
		return nil
	}); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return out
}

// Spread returns max - min of the values of counts for keys.
func Spread(counts map[int64]int64, keys []int64) int64 {
	var lo, hi int64
	for i, k := range keys {
		if i == 0 || counts[k] < lo {
			lo = counts[k]
		}
		if i == 0 || counts[k] > hi {
			hi = counts[k]
		}
	}
	return hi - lo
}

// DBState renders every row of processors, jobs, priorityjobs and each
// priority_jobs_<id> table, to compare before and after an operation that
// must change nothing.
func DBState(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	ctx := t.Context()
	var b strings.Builder
	for _, q := range []string{
		`SELECT coalesce(string_agg(p::text, E'\n' ORDER BY id), '') FROM processors p`,
		`SELECT coalesce(string_agg(j::text, E'\n' ORDER BY id), '') FROM jobs j`,
		`SELECT coalesce(string_agg(uuid, E'\n' ORDER BY uuid), '') FROM priorityjobs`,
	} {
		var s string
		if err := pool.QueryRow(ctx, q).Scan(&s); err != nil {
			t.Fatalf("query %q: %v", q, err)
		}
		b.WriteString(s + "\n--\n")
	}
	rows, err := pool.Query(ctx, `
SELECT tablename FROM pg_tables
WHERE schemaname = current_schema() AND tablename LIKE 'priority\_jobs\_%' ORDER BY tablename`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		var s string
		q := `SELECT coalesce(string_agg(uuid, ',' ORDER BY uuid), '') FROM ` + pgx.Identifier{table}.Sanitize()
		if err := pool.QueryRow(ctx, q).Scan(&s); err != nil {
			t.Fatalf("query %q: %v", q, err)
		}
		fmt.Fprintf(&b, "%s: %s\n", table, s)
	}
	return b.String()
}

// CrashIDs returns n distinct crash ids prefix-0000000, prefix-0000001, …
func CrashIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%07d", prefix, i)
	}
	return ids
}

// SortedKeys returns the keys of m in order.
func SortedKeys(m map[int64]int64) []int64 {
	return slices.Sorted(maps.Keys(m))
}

// Exec runs sql (one statement or several, without parameters when several)
// and fails the test on error.
func Exec(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// QueryInt64 runs a query returning one integer.
func QueryInt64(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return n
}

// SortedStrings runs a query returning one text column and returns its
// values sorted.
func SortedStrings(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) []string {
	t.Helper()
	out := QueryColumn[string](t, pool, sql, args...)
	slices.Sort(out)
	return out
}

// CountLive returns how many processors are live by checkIn
// (processorCheckInTime), judged by the monitor's own liveness function.
func CountLive(t testing.TB, pool *pgxpool.Pool, checkIn time.Duration) int {
	t.Helper()
	return QueryInt(t, pool, `SELECT count(*) FROM processors WHERE monitor_processor_state(lastseendatetime, make_interval(secs => $1)) = 'live'`,
		checkIn.Seconds())
}
