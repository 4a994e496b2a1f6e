package queue_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

// wantIndexes are the indexes the migration adds to jobs.
var wantIndexes = []string{
	"jobs_finished_completed_idx",
	"jobs_owner_queued_idx",
	"jobs_owner_unfinished_idx",
}

func TestMigrate(t *testing.T) {
	t.Parallel()

	latest := queue.LatestSchemaVersion()
	if latest < 1 {
		t.Fatalf("LatestSchemaVersion() = %d, want >= 1", latest)
	}

	t.Run("EmptySchema", func(t *testing.T) {
		t.Parallel()
		pool, schema := pgtest.EmptySchema(t)

		from, to, err := queue.Migrate(t.Context(), pool)
		if err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		if from != 0 || to != latest {
			t.Errorf("Migrate = (%d, %d), want (0, %d)", from, to, latest)
		}
		if got := version(t, pool); got != int64(latest) {
			t.Errorf("schema version = %d, want %d", got, latest)
		}

		tables := testkit.SortedStrings(t, pool, `SELECT tablename FROM pg_tables WHERE schemaname = $1`, schema)
		want := []string{"jobs", "monitor_alerts", "monitor_cleanup_failures", "monitor_instances", "monitor_leader", "monitor_schema_version", "priorityjobs", "processors"}
		if !slices.Equal(tables, want) {
			t.Errorf("tables = %v, want %v", tables, want)
		}
		for _, idx := range wantIndexes {
			if !slices.Contains(jobsIndexes(t, pool), idx) {
				t.Errorf("index %s missing", idx)
			}
		}
		assertClassicColumns(t, pool)

		// Fresh tables get the contract's constraints: unique processor names,
		// a plain owner foreign key, pathname defaulting to ''.
		testkit.Exec(t, pool, `INSERT INTO processors (name, startdatetime) VALUES ('p', localtimestamp)`)
		if _, err := pool.Exec(t.Context(),
			`INSERT INTO processors (name, startdatetime) VALUES ('p', localtimestamp)`); !isSQLState(err, "23505") {
			t.Errorf("second processor named p: err = %v, want unique violation", err)
		}
		assertOwnerForeignKey(t, pool, true)
		assertEnqueue(t, pool)
	})

	t.Run("Twice", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)

		from, to, err := queue.Migrate(t.Context(), pool)
		if err != nil {
			t.Fatalf("second Migrate: %v", err)
		}
		if from != latest || to != latest {
			t.Errorf("second Migrate = (%d, %d), want (%d, %d)", from, to, latest, latest)
		}
		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM monitor_schema_version`); n != 1 {
			t.Errorf("monitor_schema_version has %d rows, want 1", n)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		pool, schema := pgtest.EmptySchema(t)

		const n = 4
		type result struct {
			from, to int32
			err      error
		}
		results := make([]result, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				from, to, err := queue.Migrate(t.Context(), pool)
				results[i] = result{from, to, err}
			})
		}
		wg.Wait()

		applied := 0
		for i, r := range results {
			switch {
			case r.err != nil:
				t.Errorf("Migrate #%d: %v", i, r.err)
			case r.from == 0 && r.to == latest:
				applied++
			case r.from == latest && r.to == latest:
			default:
				t.Errorf("Migrate #%d = (%d, %d)", i, r.from, r.to)
			}
		}
		if applied != 1 {
			t.Errorf("%d calls report applying the migrations, want exactly 1", applied)
		}
		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM monitor_schema_version`); n != 1 {
			t.Errorf("monitor_schema_version has %d rows, want 1", n)
		}
		if got := version(t, pool); got != int64(latest) {
			t.Errorf("schema version = %d, want %d", got, latest)
		}
		tables := testkit.SortedStrings(t, pool, `SELECT tablename FROM pg_tables WHERE schemaname = $1`, schema)
		if len(tables) != 8 {
			t.Errorf("tables = %v, want 8", tables)
		}
		if err := queue.NewStore(pool).CheckSchema(t.Context()); err != nil {
			t.Errorf("CheckSchema: %v", err)
		}
	})

	t.Run("TooNew", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		testkit.Exec(t, pool, `UPDATE monitor_schema_version SET version = $1`, latest+1)

		_, _, err := queue.Migrate(t.Context(), pool)
		if !errors.Is(err, queue.ErrSchemaTooNew) {
			t.Errorf("Migrate on a newer schema: err = %v, want ErrSchemaTooNew", err)
		}
		if got := version(t, pool); got != int64(latest+1) {
			t.Errorf("schema version = %d, want %d (unchanged)", got, latest+1)
		}
	})
}

// TestAdoptClassic loads a classic Socorro schema with rows, in each variant
// known or plausible, migrates it, and checks that no row, column type or
// sequence changed while the schema gained what the monitor needs.
func TestAdoptClassic(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		// tweak turns schema.sql + rows.sql into the variant.
		tweak string
		// fkValidated is whether the owner foreign key is validated afterwards.
		fkValidated bool
	}{
		{
			// Plain name index, ON DELETE CASCADE, classic index names.
			name:        "ProductionDump",
			fkValidated: true,
		},
		{
			// schema.py: unique processor names, a plain owner foreign key.
			name: "SchemaPy",
			tweak: `
UPDATE processors SET name = 'processor4.example.com_12' WHERE id = 4;
DROP INDEX idx_processor_name;
ALTER TABLE processors ADD CONSTRAINT processors_name_key UNIQUE (name);
ALTER TABLE jobs DROP CONSTRAINT jobs_owner_fkey;
ALTER TABLE jobs ADD CONSTRAINT jobs_owner_fkey FOREIGN KEY (owner) REFERENCES processors (id);`,
			fkValidated: true,
		},
		{
			// ON DELETE SET NULL, under the name old PostgreSQL versions gave.
			name: "SetNullForeignKey",
			tweak: `
ALTER TABLE jobs DROP CONSTRAINT jobs_owner_fkey;
ALTER TABLE jobs ADD CONSTRAINT "$1" FOREIGN KEY (owner) REFERENCES processors (id) ON DELETE SET NULL;`,
			fkValidated: true,
		},
		{
			name: "CascadeForeignKeyNotValid",
			tweak: `
ALTER TABLE jobs DROP CONSTRAINT jobs_owner_fkey;
ALTER TABLE jobs ADD CONSTRAINT jobs_owner_fkey FOREIGN KEY (owner) REFERENCES processors (id)
    ON DELETE CASCADE NOT VALID;`,
			fkValidated: false,
		},
		{
			name: "NoUniqueUUID",
			tweak: `
ALTER TABLE jobs DROP CONSTRAINT jobs_uuid_key;
CREATE INDEX jobs_uuid_plain ON jobs (uuid);
CREATE UNIQUE INDEX jobs_uuid_partial ON jobs (uuid) WHERE success IS NULL;`,
			fkValidated: true,
		},
		{
			name:        "NoOwnerForeignKey",
			tweak:       `ALTER TABLE jobs DROP CONSTRAINT jobs_owner_fkey;`,
			fkValidated: true,
		},
		{
			name: "NoOwnerForeignKeyOrphanJob",
			tweak: `
ALTER TABLE jobs DROP CONSTRAINT jobs_owner_fkey;
INSERT INTO jobs (id, pathname, uuid, owner, queueddatetime)
VALUES (9, '', '0c25f708-51a2-4053-c24b-d05f86100501', 99, '2010-05-01 09:40:00');
SELECT setval('jobs_id_seq', 9);`,
			fkValidated: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool, _ := pgtest.EmptySchema(t)
			execFile(t, pool, "schema.sql")
			execFile(t, pool, "rows.sql")
			if tt.tweak != "" {
				testkit.Exec(t, pool, tt.tweak)
			}
			classicIndexes := jobsIndexes(t, pool)
			before := snapshot(t, pool)

			from, to, err := queue.Migrate(t.Context(), pool)
			if err != nil {
				t.Fatalf("Migrate: %v", err)
			}
			if from != 0 || to != queue.LatestSchemaVersion() {
				t.Errorf("Migrate = (%d, %d), want (0, %d)", from, to, queue.LatestSchemaVersion())
			}

			after := snapshot(t, pool)
			for _, k := range slices.Sorted(maps.Keys(before)) {
				if before[k] != after[k] {
					t.Errorf("%s changed:\nbefore: %s\nafter:  %s", k, before[k], after[k])
				}
			}

			indexes := jobsIndexes(t, pool)
			for _, idx := range append(classicIndexes, wantIndexes...) {
				if !slices.Contains(indexes, idx) {
					t.Errorf("index %s missing after migration", idx)
				}
			}
			assertOwnerForeignKey(t, pool, tt.fkValidated)
			assertEnqueue(t, pool)
			if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM priorityjobs WHERE requested_at IS NULL`); n != 0 {
				t.Errorf("%d adopted priority requests without requested_at", n)
			}
			if err := queue.NewStore(pool).CheckSchema(t.Context()); err != nil {
				t.Errorf("CheckSchema: %v", err)
			}
		})
	}

	// With search_path "$user", public the creation schema comes first: the
	// classic tables further down the path are adopted, not shadowed.
	t.Run("TablesFurtherDownSearchPath", func(t *testing.T) {
		t.Parallel()
		classic, classicSchema := pgtest.EmptySchema(t)
		execFile(t, classic, "schema.sql")
		execFile(t, classic, "rows.sql")
		before := snapshot(t, classic)
		_, frontSchema := pgtest.EmptySchema(t)

		cfg, err := pgxpool.ParseConfig(pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		cfg.MaxConns = 2
		cfg.ConnConfig.RuntimeParams["search_path"] =
			pgx.Identifier{frontSchema}.Sanitize() + ", " + pgx.Identifier{classicSchema}.Sanitize()
		pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)

		if _, _, err := queue.Migrate(t.Context(), pool); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		front := testkit.SortedStrings(t, pool, `SELECT tablename FROM pg_tables WHERE schemaname = $1`, frontSchema)
		// The monitor's own tables go to the creation schema.
		if want := []string{"monitor_alerts", "monitor_cleanup_failures", "monitor_instances", "monitor_leader", "monitor_schema_version"}; !slices.Equal(front, want) {
			t.Errorf("tables created in %s = %v, want %v", frontSchema, front, want)
		}
		after := snapshot(t, classic)
		for _, k := range slices.Sorted(maps.Keys(before)) {
			if before[k] != after[k] {
				t.Errorf("%s changed:\nbefore: %s\nafter:  %s", k, before[k], after[k])
			}
		}
		assertOwnerForeignKey(t, pool, true)
		assertEnqueue(t, pool)
		if err := queue.NewStore(pool).CheckSchema(t.Context()); err != nil {
			t.Errorf("CheckSchema: %v", err)
		}
	})

	t.Run("DuplicateUUIDs", func(t *testing.T) {
		t.Parallel()
		pool, _ := pgtest.EmptySchema(t)
		execFile(t, pool, "schema.sql")
		execFile(t, pool, "rows.sql")
		testkit.Exec(t, pool, `
ALTER TABLE jobs DROP CONSTRAINT jobs_uuid_key;
INSERT INTO jobs (id, pathname, uuid, owner) VALUES (9, '', '0bba61c5-dfc3-43e7-87e6-8afda3100501', 1);
SELECT setval('jobs_id_seq', 9);`)
		before := snapshot(t, pool)
		fkBefore := testkit.SortedStrings(t, pool, `SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'jobs'::regclass`)

		_, _, err := queue.Migrate(t.Context(), pool)
		if err == nil || !strings.Contains(err.Error(), "duplicate values") {
			t.Fatalf("Migrate with duplicate uuids: err = %v, want the duplicate values error", err)
		}
		after := snapshot(t, pool)
		for _, k := range slices.Sorted(maps.Keys(before)) {
			if before[k] != after[k] {
				t.Errorf("%s changed by a failed migration", k)
			}
		}
		fkAfter := testkit.SortedStrings(t, pool, `SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'jobs'::regclass`)
		if !slices.Equal(fkBefore, fkAfter) {
			t.Errorf("constraints changed by a failed migration:\nbefore: %v\nafter:  %v", fkBefore, fkAfter)
		}
		if err := queue.NewStore(pool).CheckSchema(t.Context()); !errors.Is(err, queue.ErrSchemaOutdated) {
			t.Errorf("CheckSchema after a failed first migration: err = %v, want ErrSchemaOutdated", err)
		}
	})
}

// snapshot dumps every row of the classic tables, the sequences, and the
// classic column definitions, as text to compare.
// snapshot renders the classic tables, rows and columns. The columns the
// monitor adds to a classic table (priorityjobs.requested_at, migration 006)
// are left out: adoption may add columns, never change the classic ones or
// their rows.
func snapshot(t *testing.T, pool *pgxpool.Pool) map[string]string {
	t.Helper()
	queries := map[string]string{
		"processors":      `SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.id), '[]')::text FROM processors r`,
		"jobs":            `SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.id), '[]')::text FROM jobs r`,
		"priorityjobs":    `SELECT coalesce(jsonb_agg(to_jsonb(r) - 'requested_at' ORDER BY r.uuid), '[]')::text FROM priorityjobs r`,
		"priority_jobs_1": `SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.uuid), '[]')::text FROM priority_jobs_1 r`,
		"sequences": `SELECT jsonb_build_array(
			(SELECT jsonb_build_array(last_value, is_called) FROM processors_id_seq),
			(SELECT jsonb_build_array(last_value, is_called) FROM jobs_id_seq))::text`,
		"columns": `
SELECT jsonb_agg(jsonb_build_array(attrelid::regclass::text, attname, format_type(atttypid, atttypmod), attnotnull)
                 ORDER BY attrelid::regclass::text, attnum)::text
FROM pg_attribute
WHERE attrelid IN ('processors'::regclass, 'jobs'::regclass, 'priorityjobs'::regclass)
  AND attnum > 0 AND NOT attisdropped
  AND (attrelid::regclass::text, attname) <> ('priorityjobs', 'requested_at')`,
	}
	out := make(map[string]string, len(queries))
	for name, q := range queries {
		var s string
		if err := pool.QueryRow(t.Context(), q).Scan(&s); err != nil {
			t.Fatalf("snapshot %s: %v", name, err)
		}
		out[name] = s
	}
	return out
}

// assertClassicColumns checks the column types of freshly created tables
// against the contract.
func assertClassicColumns(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	got := testkit.SortedStrings(t, pool, `
SELECT attrelid::regclass::text || '.' || attname || ' ' || format_type(atttypid, atttypmod)
       || CASE WHEN attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE attrelid IN ('processors'::regclass, 'jobs'::regclass, 'priorityjobs'::regclass)
  AND attnum > 0 AND NOT attisdropped`)
	want := []string{
		"jobs.completeddatetime timestamp without time zone",
		"jobs.id integer not null default nextval('jobs_id_seq'::regclass)",
		"jobs.message text",
		"jobs.owner integer",
		"jobs.pathname character varying(1024) not null default ''::character varying",
		"jobs.priority integer default 0",
		"jobs.queueddatetime timestamp without time zone",
		"jobs.starteddatetime timestamp without time zone",
		"jobs.success boolean",
		"jobs.uuid character varying(50) not null",
		"priorityjobs.requested_at timestamp with time zone not null default now()", // added by the monitor (006)
		"priorityjobs.uuid character varying(255) not null",
		"processors.id integer not null default nextval('processors_id_seq'::regclass)",
		"processors.lastseendatetime timestamp without time zone",
		"processors.name character varying(255) not null",
		"processors.startdatetime timestamp without time zone not null",
	}
	if !slices.Equal(got, want) {
		t.Errorf("columns:\ngot  %q\nwant %q", got, want)
	}
}

// assertOwnerForeignKey checks that jobs.owner has exactly one foreign key,
// with no delete action, and that deleting a processor that owns jobs fails
// rather than touching the jobs.
func assertOwnerForeignKey(t *testing.T, pool *pgxpool.Pool, validated bool) {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
SELECT confdeltype::text, convalidated FROM pg_constraint
WHERE conrelid = 'jobs'::regclass AND contype = 'f'`)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for rows.Next() {
		var action string
		var valid bool
		if err := rows.Scan(&action, &valid); err != nil {
			t.Fatal(err)
		}
		n++
		if action != "a" {
			t.Errorf("owner foreign key ON DELETE action %q, want a (no action)", action)
		}
		if valid != validated {
			t.Errorf("owner foreign key validated = %v, want %v", valid, validated)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("jobs has %d foreign keys, want 1", n)
	}

	testkit.Exec(t, pool, `INSERT INTO processors (name, startdatetime) VALUES ('fk-owner', localtimestamp)`)
	testkit.Exec(t, pool, `INSERT INTO jobs (uuid, owner) SELECT 'fk-job', id FROM processors WHERE name = 'fk-owner'`)
	_, err = pool.Exec(t.Context(), `DELETE FROM processors WHERE name = 'fk-owner'`)
	if !isSQLState(err, "23503") {
		t.Errorf("deleting a processor that owns a job: err = %v, want foreign key violation", err)
	}
	if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs WHERE uuid = 'fk-job'`); n != 1 {
		t.Errorf("job of a deleted processor: %d rows, want 1", n)
	}
	testkit.Exec(t, pool, `DELETE FROM jobs WHERE uuid = 'fk-job'`)
	testkit.Exec(t, pool, `DELETE FROM processors WHERE name = 'fk-owner'`)
}

// assertEnqueue checks the enqueue statement's shape works: ON CONFLICT (uuid)
// finds its arbiter, and pathname defaults to the empty string.
func assertEnqueue(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	const enqueue = `
INSERT INTO jobs (uuid, priority, queueddatetime)
SELECT unnest($1::text[]), 0, localtimestamp
ON CONFLICT (uuid) DO NOTHING`
	ids := []string{"e0000000-0000-4000-8000-000000100501", "e0000000-0000-4000-8000-000000100502"}
	tag, err := pool.Exec(t.Context(), enqueue, ids)
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	if tag.RowsAffected() != 2 {
		t.Errorf("enqueue of 2 new ids inserted %d rows", tag.RowsAffected())
	}
	tag, err = pool.Exec(t.Context(), enqueue, ids)
	if err != nil {
		t.Fatalf("enqueue again: %v", err)
	}
	if tag.RowsAffected() != 0 {
		t.Errorf("enqueue of 2 queued ids inserted %d rows, want 0", tag.RowsAffected())
	}
	if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs WHERE uuid = ANY($1) AND pathname = ''`, ids); n != 2 {
		t.Errorf("%d enqueued rows with pathname '', want 2", n)
	}
	testkit.Exec(t, pool, `DELETE FROM jobs WHERE uuid = ANY($1)`, ids)
}

func version(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	return testkit.QueryInt64(t, pool, `SELECT version FROM monitor_schema_version`)
}

func jobsIndexes(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	return testkit.SortedStrings(t, pool, `SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'jobs'::regclass`)
}

func isSQLState(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}
