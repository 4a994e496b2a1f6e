package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/crashmonitor/monitor/internal/bench"
	"github.com/crashmonitor/monitor/internal/dbschema"
	"github.com/crashmonitor/monitor/internal/procsim"
	"github.com/crashmonitor/monitor/queue"
	"github.com/jackc/pgx/v5/pgxpool"
)

// scenarioDB is a scenario's fresh, migrated schema.
type scenarioDB struct {
	h      *harness
	schema string
	url    string // MONITOR_TEST_DATABASE_URL with the schema as search_path
	pool   *pgxpool.Pool
	jobs   *queue.Store
	bench  *bench.DB
}

// newDB creates and migrates a schema of the scenario's own.
func (h *harness) newDB(ctx context.Context) (*scenarioDB, error) {
	schema := dbschema.NewName("bench")
	if err := dbschema.Create(ctx, h.admin, schema); err != nil {
		return nil, err
	}
	db := &scenarioDB{h: h, schema: schema}
	cfg, err := dbschema.PoolConfig(h.dbURL, schema)
	if err != nil {
		return nil, errors.Join(err, db.drop())
	}
	cfg.MaxConns = maxConns
	db.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("connect: %w", err), db.drop())
	}
	if _, _, err := queue.Migrate(ctx, db.pool); err != nil {
		return nil, errors.Join(err, db.close())
	}
	if db.url, err = dbschema.URL(h.dbURL, schema); err != nil {
		return nil, errors.Join(err, db.close())
	}
	db.jobs = queue.NewStore(db.pool)
	db.bench = bench.NewDB(db.pool)
	return db, nil
}

// registeredDB is newDB with n processors registered, named prefix1 to
// prefixN (see register).
func (h *harness) registeredDB(ctx context.Context, prefix string, n int) (*scenarioDB, error) {
	db, err := h.newDB(ctx)
	if err != nil {
		return nil, err
	}
	if _, _, err := db.register(ctx, prefix, n); err != nil {
		return nil, errors.Join(err, db.close())
	}
	return db, nil
}

// close closes the pool and drops the schema.
func (db *scenarioDB) close() error {
	if db.pool != nil {
		db.pool.Close()
	}
	return db.drop()
}

func (db *scenarioDB) drop() error {
	ctx, cancel := context.WithTimeout(context.Background(), dropTimeout)
	defer cancel()
	return dbschema.Drop(ctx, db.h.admin, db.schema)
}

// register registers n processors as a processor does (processors row with
// lastseendatetime = now(), priority_jobs_<id> table); with checkIn an hour
// they stay live through the scenario.
func (db *scenarioDB) register(ctx context.Context, prefix string, n int) ([]*procsim.Session, []int64, error) {
	var sessions []*procsim.Session
	var ids []int64
	for i := range n {
		p := procsim.NewSession(db.pool)
		id, err := p.Register(ctx, fmt.Sprintf("%s%d", prefix, i+1))
		if err != nil {
			return nil, nil, err
		}
		sessions = append(sessions, p)
		ids = append(ids, id)
	}
	return sessions, ids, nil
}

// monitorConfig is the configuration of a `monitor run` on db with its
// storage tree at root and everything else in dir: the shipped defaults but
// for processorCheckInTime (an hour) and the paths.
func (db *scenarioDB) monitorConfig(dir, root string) monitorConfig {
	return monitorConfig{
		"databaseURL":               db.url,
		"storageRoot":               root,
		"deferredStorageRoot":       filepath.Join(dir, "deferred"),
		"saveSuccessfulMinidumpsTo": filepath.Join(dir, "successful"),
		"saveFailedMinidumpsTo":     filepath.Join(dir, "failed"),
		"logFilePathname":           filepath.Join(dir, "monitor.log"),
		"httpListenAddress":         "127.0.0.1:0",
		"processorCheckInTime":      checkInConfig,
		"standardLoopDelay":         "00:05:00",
		"priorityLoopDelay":         "00:01:00",
		"cleanupJobsLoopDelay":      "00:05:00",
	}
}
