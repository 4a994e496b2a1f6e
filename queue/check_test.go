package queue_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

func TestCheckSchema(t *testing.T) {
	t.Parallel()

	latest := queue.LatestSchemaVersion()

	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		pool, schema := pgtest.EmptySchema(t)

		err := queue.NewStore(pool).CheckSchema(t.Context())
		if !errors.Is(err, queue.ErrSchemaMissing) {
			t.Errorf("CheckSchema on an empty schema: err = %v, want ErrSchemaMissing", err)
		}
		if err != nil && !strings.Contains(err.Error(), "run `monitor migrate`") {
			t.Errorf("error %q does not say to run monitor migrate", err)
		}
		n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM pg_class WHERE relnamespace = $1::regnamespace`, schema)
		if n != 0 {
			t.Errorf("CheckSchema created %d relations, want none", n)
		}
	})

	t.Run("Current", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)

		if err := queue.NewStore(pool).CheckSchema(t.Context()); err != nil {
			t.Errorf("CheckSchema after Migrate: %v", err)
		}
	})

	t.Run("Outdated", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		testkit.Exec(t, pool, `UPDATE monitor_schema_version SET version = $1`, latest-1)

		err := queue.NewStore(pool).CheckSchema(t.Context())
		if !errors.Is(err, queue.ErrSchemaOutdated) {
			t.Errorf("CheckSchema on an older schema: err = %v, want ErrSchemaOutdated", err)
		}
		if err != nil && !strings.Contains(err.Error(), "run `monitor migrate`") {
			t.Errorf("error %q does not say to run monitor migrate", err)
		}
	})

	t.Run("TooNew", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		testkit.Exec(t, pool, `UPDATE monitor_schema_version SET version = $1`, latest+1)

		err := queue.NewStore(pool).CheckSchema(t.Context())
		if !errors.Is(err, queue.ErrSchemaTooNew) {
			t.Errorf("CheckSchema on a newer schema: err = %v, want ErrSchemaTooNew", err)
		}
		if err != nil && !strings.Contains(err.Error(), "upgrade the monitor") {
			t.Errorf("error %q does not say to upgrade the monitor", err)
		}
	})
}
