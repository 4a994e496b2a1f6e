// Package pgtest gives tests a real PostgreSQL database: a pool whose
// search_path is a schema of the test's own, dropped when the test ends (the
// idea of river's riverdbtest). Tests stay parallel without seeing each
// other's rows, and the migrations run unqualified, as in production.
//
// The server comes from MONITOR_TEST_DATABASE_URL; scripts/with-postgres.sh
// provides a throwaway one.
package pgtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/internal/dbschema"
	"github.com/crashmonitor/monitor/queue"
)

// EnvURL is the environment variable that holds the test database URL.
const EnvURL = "MONITOR_TEST_DATABASE_URL"

// maxConns bounds each test's pool: tests and packages run in parallel
// against one server.
const maxConns = 4

// cleanupTimeout bounds dropping a test's schema.
const cleanupTimeout = time.Minute

// URL returns the test database URL from MONITOR_TEST_DATABASE_URL. When it is
// unset the test is skipped, except under CI=true, where it fails: a green CI
// run must never be one that tested nothing.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set (CI=true): run the tests through scripts/with-postgres.sh", EnvURL)
		}
		t.Skipf("%s is not set: run the tests through scripts/with-postgres.sh", EnvURL)
	}
	return u
}

// EmptySchema creates a schema named test_<random> and returns it with a pool
// (at most 4 connections) whose search_path is that schema alone. The pool is
// closed and the schema dropped, with everything in it, when the test ends.
func EmptySchema(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	schema := dbschema.NewName("test")
	cfg, err := dbschema.PoolConfig(URL(t), schema)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvURL, err)
	}
	cfg.MaxConns = maxConns

	ctx := t.Context()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	if err := dbschema.Create(ctx, pool, schema); err != nil {
		pool.Close()
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		// t.Context() is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		defer pool.Close()
		if err := dbschema.Drop(ctx, pool, schema); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return pool, schema
}

// Schema is EmptySchema with the monitor's migrations applied.
func Schema(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, schema := EmptySchema(t)
	if _, _, err := queue.Migrate(t.Context(), pool); err != nil {
		t.Fatalf("pgtest: migrate schema %s: %v", schema, err)
	}
	return pool
}
