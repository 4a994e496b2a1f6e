package dbschema_test

import (
	"strings"
	"testing"

	"github.com/crashmonitor/monitor/internal/dbschema"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestCreateDrop: Create makes a schema Migrate can fill through a
// pool pointed at it; Drop removes it with its tables, and a second
// drop is fine.
func TestCreateDrop(t *testing.T) {
	t.Parallel()
	admin, _ := pgtest.EmptySchema(t)
	ctx := t.Context()
	name := "bench_test_" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_"))
	if err := dbschema.Create(ctx, admin, name); err != nil {
		t.Fatal(err)
	}
	cfg := admin.Config().Copy()
	cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{name}.Sanitize()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, _, err := queue.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if err := dbschema.Create(ctx, admin, name); err == nil {
		t.Error("creating an existing schema: no error")
	}
	if err := dbschema.Drop(ctx, admin, name); err != nil {
		t.Fatal(err)
	}
	if n := testkit.QueryInt64(t, admin, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, name); n != 0 {
		t.Errorf("schema still there")
	}
	if err := dbschema.Drop(ctx, admin, name); err != nil {
		t.Errorf("second drop: %v", err)
	}
}
