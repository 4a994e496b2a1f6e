package migrations_test

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/jackc/tern/v2/migrate"

	"github.com/crashmonitor/monitor/migrations"
)

// TestLoad checks that tern accepts the embedded files: numbered without
// gaps, valid templates, SQL in every up step.
func TestLoad(t *testing.T) {
	t.Parallel()

	// A Migrator without a connection only loads and parses (tern's gengen
	// path); nothing touches a database.
	m, err := migrate.NewMigrator(t.Context(), nil, "monitor_schema_version")
	if err != nil {
		t.Fatalf("NewMigrator: %v", err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		t.Fatalf("LoadMigrations: %v", err)
	}
	if len(m.Migrations) == 0 {
		t.Fatal("no migrations loaded")
	}
	for _, mig := range m.Migrations {
		if strings.Contains(mig.UpSQL, "public.") {
			t.Errorf("%s: schema-qualified name; names must resolve through search_path", mig.Name)
		}
	}
}

// TestClassicSchemaIsIrreversible guards against a down section being added
// to the migration that creates (or adopts) the production jobs table.
func TestClassicSchemaIsIrreversible(t *testing.T) {
	t.Parallel()

	m, err := migrate.NewMigrator(t.Context(), nil, "monitor_schema_version")
	if err != nil {
		t.Fatalf("NewMigrator: %v", err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		t.Fatalf("LoadMigrations: %v", err)
	}
	if got := m.Migrations[0]; got.DownSQL != "" {
		t.Errorf("%s has a down section; it must stay irreversible", got.Name)
	}
}

// TestOnlyMigrationsEmbedded checks that every embedded file is a migration
// tern will find, so nothing is silently ignored.
func TestOnlyMigrationsEmbedded(t *testing.T) {
	t.Parallel()

	entries, err := fs.ReadDir(migrations.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	found, err := migrate.FindMigrations(migrations.FS)
	if err != nil {
		t.Fatalf("FindMigrations: %v", err)
	}
	if len(found) != len(entries) {
		t.Errorf("%d embedded files, %d migrations: every file must be NNN_name.sql", len(entries), len(found))
	}
}
