// Package dbschema makes throwaway PostgreSQL schemas, so that tests and the
// benchmark harness each work in a schema of their own on one server: a pool
// or a connection URL whose search_path is that schema sees only its tables,
// and the monitor's migrations, whose names are unqualified, fill it as they
// fill a production database.
package dbschema

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// NewName returns prefix followed by an underscore and a random lower-case
// suffix, a name no other run uses.
func NewName(prefix string) string {
	return prefix + "_" + strings.ToLower(rand.Text()[:16])
}

// Create creates the schema name with admin.
func Create(ctx context.Context, admin *pgxpool.Pool, name string) error {
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create schema %s: %w", name, err)
	}
	return nil
}

// Drop drops the schema name and everything in it; a schema already gone is
// fine.
func Drop(ctx context.Context, admin *pgxpool.Pool, name string) error {
	if _, err := admin.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
		return fmt.Errorf("drop schema %s: %w", name, err)
	}
	return nil
}

// PoolConfig returns the pool configuration of connString with search_path
// set to the schema name alone. It is a startup parameter, not a SET: it
// survives RESET ALL (which tern runs after every migration) and holds on
// every connection the pool opens.
func PoolConfig(connString, name string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{name}.Sanitize()
	return cfg, nil
}

// URL returns the database URL dbURL with search_path set to the schema
// name, for a process of its own (a `monitor run`, a simulated processor).
func URL(dbURL, name string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", fmt.Errorf("parse database URL: %w", err)
	}
	q := u.Query()
	q.Set("search_path", pgx.Identifier{name}.Sanitize())
	u.RawQuery = q.Encode()
	return u.String(), nil
}
