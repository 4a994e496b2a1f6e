package app

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/config"
	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/loop"
)

// Connection bounds.
const (
	connectTimeout    = 10 * time.Second // one connection attempt
	connectBackoffMax = 30 * time.Second // cap of the wait between attempts
	poolMaxConns      = 8
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

// connect opens the pool and waits until the database answers, retrying
// with exponential backoff (1 s doubling up to 30 s) and logging each
// failure, until ctx is done.
func (a *App) connect(ctx context.Context) (*pgxpool.Pool, error) {
	pool, err := OpenPool(a.cfg.Load())
	if err != nil {
		return nil, err
	}
	a.notify.setStatus("connecting to the database")
	backoff := loop.Backoff{Min: time.Second, Max: connectBackoffMax}
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, connectTimeout)
		err := pool.Ping(pctx)
		cancel()
		if err == nil {
			a.logger.Info("connected to the database", "attempts", attempt)
			if attempt > 1 {
				a.figures.Event(figures.EventDatabase, "the database answers")
			}
			return pool, nil
		}
		if ctx.Err() != nil {
			pool.Close()
			return nil, ctx.Err()
		}
		if attempt == 1 {
			a.figures.Event(figures.EventDatabase, "database unreachable: "+err.Error())
		}
		wait := backoff.Delay(attempt)
		a.logger.Error("database unreachable; retrying", "error", err, "attempt", attempt, "retry_in", wait)
		a.notify.setStatus(fmt.Sprintf("database unreachable, retrying in %s (attempt %d)", wait, attempt))
		if !loop.Sleep(ctx, wait) {
			pool.Close()
			return nil, ctx.Err()
		}
	}
}
