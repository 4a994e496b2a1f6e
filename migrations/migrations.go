// Package migrations holds the jobs database schema as tern v2 migration files,
// embedded so that `monitor migrate` and the tests apply exactly the same SQL.
//
// Files are named NNN_name.sql and numbered from 001 without gaps. tern runs
// each file through text/template before executing it, so SQL must not
// contain a double opening brace. Object names are unqualified: they resolve
// through the connection's search_path, which is how the tests give every
// test a schema of its own. package queue is the only user.
package migrations

import "embed"

// FS holds the migration files, in the layout tern's Migrator.LoadMigrations
// expects (numbered files at the root).
//
//go:embed *.sql
var FS embed.FS
