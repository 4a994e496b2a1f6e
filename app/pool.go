package app

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/config"
	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/loop"
	"github.com/crashmonitor/monitor/queue"
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

// OpenPool builds the pool of the loops' connections, on databaseURL (at
// most 8 connections, 10 s per connection attempt, application_name
// "monitor" unless the settings name one); it does not connect. When
// databaseURL goes through a transaction pooler (cfg.Pooled), the pool keeps
// no session state: statements run in pgx's exec mode (the extended
// protocol's unnamed statement, parsed, bound and executed in one round
// trip, batches in one transaction or one sync), never as the named prepared
// statements that pgx caches by default, which a pooler handing each
// transaction to any server connection does not keep (PgBouncer before
// 1.21, or without max_prepared_statements). Settings that cannot be parsed
// give a *SettingsError.
func OpenPool(cfg *config.Config) (*pgxpool.Pool, error) {
	return openPool(cfg.ConnString(), cfg.Pooled())
}

// OpenSessionPool builds a pool of connections that are sessions of their
// own, on databaseSessionURL (databaseURL when it is not set), for what
// needs one: the migrations, under tern's session advisory lock.
func OpenSessionPool(cfg *config.Config) (*pgxpool.Pool, error) {
	return openPool(cfg.SessionConnString(), false)
}

func openPool(connString string, pooled bool) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, &SettingsError{Err: err}
	}
	pcfg.MaxConns = poolMaxConns
	settle(pcfg.ConnConfig)
	if pooled {
		pcfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
		pcfg.ConnConfig.StatementCacheCapacity = 0
		pcfg.ConnConfig.DescriptionCacheCapacity = 0
	}
	return pgxpool.NewWithConfig(context.Background(), pcfg)
}

// SessionConfig returns the settings of a connection held as a session of
// its own (the priority listener): databaseSessionURL, else databaseURL,
// with the pool's connection timeout and application_name.
func SessionConfig(cfg *config.Config) (*pgx.ConnConfig, error) {
	ccfg, err := pgx.ParseConfig(cfg.SessionConnString())
	if err != nil {
		return nil, &SettingsError{Err: err}
	}
	settle(ccfg)
	return ccfg, nil
}

// settle sets the connection timeout, and application_name "monitor"
// unless the settings name one.
func settle(ccfg *pgx.ConnConfig) {
	ccfg.ConnectTimeout = connectTimeout
	if ccfg.RuntimeParams["application_name"] == "" {
		ccfg.RuntimeParams["application_name"] = "monitor"
	}
}

// ConnectOnce opens the loops' pool and checks once that the database
// answers, for the short-lived commands (status, prioritize): they fail at
// once instead of retrying. The caller closes the pool.
func ConnectOnce(ctx context.Context, cfg *config.Config) (*pgxpool.Pool, error) {
	return pingOnce(ctx, OpenPool, cfg)
}

// ConnectSessionOnce is ConnectOnce on OpenSessionPool, for `monitor
// migrate`.
func ConnectSessionOnce(ctx context.Context, cfg *config.Config) (*pgxpool.Pool, error) {
	return pingOnce(ctx, OpenSessionPool, cfg)
}

func pingOnce(ctx context.Context, open func(*config.Config) (*pgxpool.Pool, error), cfg *config.Config) (*pgxpool.Pool, error) {
	pool, err := open(cfg)
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

// listenPriority opens the priority listener's connection with the session
// settings (SessionConfig): on databaseSessionURL when databaseURL goes
// through a pooler, where a LISTEN would not outlive its transaction.
func (a *App) listenPriority(ctx context.Context) (*queue.PriorityListener, error) {
	session, err := SessionConfig(a.cfg.Load())
	if err != nil {
		return nil, err
	}
	return queue.ListenPriorityWith(ctx, session)
}
