package queue_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/internal/testkit"
)

// execFile runs a file of testdata/classic.
func execFile(t *testing.T, pool *pgxpool.Pool, name string) {
	t.Helper()
	sql, err := os.ReadFile(filepath.Join("..", "testdata", "classic", name))
	if err != nil {
		t.Fatal(err)
	}
	testkit.Exec(t, pool, string(sql))
}
