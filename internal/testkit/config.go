package testkit

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/internal/dbschema"
	"github.com/crashmonitor/monitor/internal/pgtest"
)

// Config is a monitor configuration file's keys and values.
type Config map[string]string

// Write renders c as YAML (one quoted value a key, in key order) at path.
func (c Config) Write(t testing.TB, path string) {
	t.Helper()
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(c)) {
		fmt.Fprintf(&b, "%s: %q\n", k, c[k])
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// BaseConfig is a minimal valid configuration whose trees, archives and log
// file are under dir: toBeProcessed, toBeDeferred, successful, failed and
// monitor.log.
func BaseConfig(dir, dbURL string) Config {
	return Config{
		"databaseURL":               dbURL,
		"storageRoot":               filepath.Join(dir, "toBeProcessed"),
		"deferredStorageRoot":       filepath.Join(dir, "toBeDeferred"),
		"saveSuccessfulMinidumpsTo": filepath.Join(dir, "successful"),
		"saveFailedMinidumpsTo":     filepath.Join(dir, "failed"),
		"logFilePathname":           filepath.Join(dir, "monitor.log"),
		// Any free port: tests run many monitors at once.
		"httpListenAddress": "127.0.0.1:0",
	}
}

// SchemaURL is the test database URL with search_path set to the pool's
// schema (see pgtest.Schema), so that a monitor started on it works inside
// that test's schema.
func SchemaURL(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	schema := strings.Trim(pool.Config().ConnConfig.RuntimeParams["search_path"], `"`)
	u, err := dbschema.URL(pgtest.URL(t), schema)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
