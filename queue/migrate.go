package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/crashmonitor/monitor/migrations"
)

// VersionTable is where tern records the schema version (unqualified;
// resolved through search_path, like every table of the schema).
const VersionTable = "monitor_schema_version"

// Errors that CheckSchema and Migrate wrap, for callers that branch on the
// state of the schema.
var (
	// ErrSchemaMissing means the monitor never migrated this database (or
	// search_path does not lead to its schema): there is no version table,
	// or a table the monitor needs does not exist.
	ErrSchemaMissing = errors.New("schema missing")
	// ErrSchemaOutdated means the database is at an older schema version
	// than this monitor needs (version 0 included: the version table exists
	// but no migration completed).
	ErrSchemaOutdated = errors.New("schema outdated")
	// ErrSchemaTooNew means a newer monitor migrated the database past the
	// versions this one knows.
	ErrSchemaTooNew = errors.New("schema too new")
)

// LatestSchemaVersion is the number of embedded migrations: the schema
// version this monitor needs.
func LatestSchemaVersion() int32 {
	paths, err := migrate.FindMigrations(migrations.FS)
	if err != nil {
		// The files are embedded at build time and package migrations' tests
		// load them with tern: this is a broken build, not a runtime state.
		panic(fmt.Sprintf("queue: embedded migrations: %v", err))
	}
	return int32(len(paths))
}

// Migrate brings the schema that search_path resolves to up to
// LatestSchemaVersion, creating the classic tables or adopting existing ones.
// It reports the version before and after; from == to when there was nothing
// to do. It is idempotent, and safe to run from several processes at once:
// tern holds a PostgreSQL advisory lock both while it creates its version
// table and while it reads the version and applies migrations, and each
// migration commits in one transaction with its version update.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (from, to int32, err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("acquire connection: %w", err)
	}
	defer func() {
		if err == nil {
			conn.Release()
			return
		}
		// tern unlocks with the caller's context: after a cancellation the
		// session may still hold the advisory lock (or an open
		// transaction), so it must not go back to the pool. Closing the
		// session releases both.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Hijack().Close(closeCtx)
	}()
	return migrateConn(ctx, conn.Conn())
}

func migrateConn(ctx context.Context, conn *pgx.Conn) (from, to int32, err error) {
	// NewMigrator creates the version table (under the advisory lock) if it
	// is missing.
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return 0, 0, fmt.Errorf("prepare schema version table: %w", err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		return 0, 0, fmt.Errorf("load migrations: %w", err)
	}
	latest := int32(len(m.Migrations))

	// The version only grows, so a version that is too new now stays too new
	// under the lock: refuse before tern would try to migrate down.
	current, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read schema version: %w", err)
	}
	if current > latest {
		return 0, 0, tooNewError(current, latest)
	}

	// Another Migrate may be applying migrations while this one waits for the
	// lock, so the version read above is not necessarily where this call
	// starts: record the first migration tern actually runs.
	ran := false
	m.OnStart = func(sequence int32, _, _, _ string) {
		if !ran {
			ran = true
			from = sequence - 1
		}
	}
	if err := m.Migrate(ctx); err != nil {
		return 0, 0, fmt.Errorf("apply migrations: %w", err)
	}
	to, err = m.GetCurrentVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read schema version: %w", err)
	}
	if !ran {
		from = to
	}
	return from, to, nil
}

func tooNewError(current, latest int32) error {
	return fmt.Errorf("%w: database schema version %d, this monitor needs %d: upgrade the monitor",
		ErrSchemaTooNew, current, latest)
}

const (
	checkSchemaTableQuery   = `SELECT to_regclass($1) IS NOT NULL`
	checkSchemaVersionQuery = `SELECT version FROM ` + VersionTable
)

// CheckSchema reports whether the database is at exactly the schema version
// this monitor needs: nil when it is, otherwise an error wrapping
// ErrSchemaMissing, ErrSchemaOutdated or ErrSchemaTooNew that tells the
// operator what to do. It only reads: it never creates the version table.
func (s *Store) CheckSchema(ctx context.Context) error {
	latest := LatestSchemaVersion()

	var exists bool
	if err := s.pool.QueryRow(ctx, checkSchemaTableQuery, VersionTable).Scan(&exists); err != nil {
		return fmt.Errorf("check schema version: %w", err)
	}
	if !exists {
		return fmt.Errorf("%w: no %s table, this monitor needs schema version %d: run `monitor migrate`",
			ErrSchemaMissing, VersionTable, latest)
	}

	var current int32
	err := s.pool.QueryRow(ctx, checkSchemaVersionQuery).Scan(&current)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		current = 0 // tern creates the table with its row; a bare table means version 0
	case err != nil:
		return fmt.Errorf("check schema version: %w", err)
	}

	switch {
	case current == latest:
		return nil
	case current < latest:
		return fmt.Errorf("%w: database schema version %d, this monitor needs %d: run `monitor migrate`",
			ErrSchemaOutdated, current, latest)
	default:
		return tooNewError(current, latest)
	}
}
