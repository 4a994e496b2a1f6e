package pgtest_test

import (
	"testing"

	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/queue"
)

func TestEmptySchema(t *testing.T) {
	t.Parallel()

	var schema string
	t.Run("CreatesSchemaOnSearchPath", func(t *testing.T) {
		pool, name := pgtest.EmptySchema(t)
		schema = name
		var current string
		if err := pool.QueryRow(t.Context(), "SELECT current_schema()").Scan(&current); err != nil {
			t.Fatal(err)
		}
		if current != name {
			t.Errorf("current_schema() = %q, want %q", current, name)
		}
		var tables int
		err := pool.QueryRow(t.Context(),
			"SELECT count(*) FROM pg_tables WHERE schemaname = $1", name).Scan(&tables)
		if err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Errorf("new schema has %d tables, want 0", tables)
		}
	})

	t.Run("DropsSchemaAfterTest", func(t *testing.T) {
		if schema == "" {
			t.Skip("no schema was created")
		}
		pool, _ := pgtest.EmptySchema(t)
		var exists bool
		err := pool.QueryRow(t.Context(),
			"SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists)
		if err != nil {
			t.Fatal(err)
		}
		if exists {
			t.Errorf("schema %s still exists after its test ended", schema)
		}
	})
}

func TestSchema(t *testing.T) {
	t.Parallel()

	pool := pgtest.Schema(t)
	if err := queue.NewStore(pool).CheckSchema(t.Context()); err != nil {
		t.Errorf("CheckSchema after pgtest.Schema: %v", err)
	}
}
