package app

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/config"
)

// Pool bounds.
const (
	connectTimeout = 10 * time.Second // one connection attempt
	poolMaxConns   = 8
)

// SettingsError is OpenPool's error when the configuration's connection
// settings cannot be parsed: the configuration is at fault, not the database,
// so a command reports it as a usage error.
type SettingsError struct {
	Err error
}

func (e *SettingsError) Error() string { return "database connection settings: " + e.Err.Error() }

// Unwrap returns the parse error.
func (e *SettingsError) Unwrap() error { return e.Err }

// OpenPool builds the connection pool described by cfg (at most 8
// connections, 10 s per connection attempt, application_name "monitor"
// unless the settings name one); it does not connect. Settings that cannot
// be parsed give a *SettingsError.
func OpenPool(cfg *config.Config) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.ConnString())
	if err != nil {
		return nil, &SettingsError{Err: err}
	}
	pcfg.MaxConns = poolMaxConns
	pcfg.ConnConfig.ConnectTimeout = connectTimeout
	if pcfg.ConnConfig.RuntimeParams["application_name"] == "" {
		pcfg.ConnConfig.RuntimeParams["application_name"] = "monitor"
	}
	return pgxpool.NewWithConfig(context.Background(), pcfg)
}

// ConnectOnce opens a pool and checks once that the database answers, for
// the short-lived commands (migrate, status, prioritize): they fail at once
// instead of retrying. The caller closes the pool.
func ConnectOnce(ctx context.Context, cfg *config.Config) (*pgxpool.Pool, error) {
	pool, err := OpenPool(cfg)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to the database: %w", err)
	}
	return pool, nil
}
