package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/crashmonitor/monitor/app"
	"github.com/crashmonitor/monitor/config"
	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/logging"
	"github.com/crashmonitor/monitor/internal/loop"
	"github.com/crashmonitor/monitor/priority"
	"github.com/crashmonitor/monitor/queue"
	"github.com/crashmonitor/monitor/scanner"
)

// Connection and shutdown bounds.
const (
	connectTimeout    = 10 * time.Second // one connection attempt
	connectBackoffMax = 30 * time.Second // cap of the wait between attempts
	shutdownTimeout   = 15 * time.Second // loops must have returned by then
)

// cmdRun is `monitor run`: the daemon in the foreground until SIGTERM or
// SIGINT. SIGHUP (and edits of the config file) reload the settings that can
// change without a restart.
func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	f := newFlags("run")
	cfg, err := loadConfigNoArgs(f, args)
	if err != nil {
		return err
	}
	path, _ := f.configPath()

	logger, err := logging.New(logging.Options{
		FilePath:        cfg.LogFilePathname,
		MaxSizeBytes:    cfg.LogFileMaximumSize,
		MaxBackups:      cfg.LogFileMaximumBackupHistory,
		FileFormat:      cfg.LogFileLineFormatString,
		FileThreshold:   cfg.LogFileErrorLoggingLevel,
		Stderr:          stderr,
		StderrFormat:    cfg.StderrLineFormatString,
		StderrThreshold: cfg.StderrErrorLoggingLevel,
	})
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer logger.Close()

	d := &daemon{logger: logger, configPath: path}
	d.cfg.Store(cfg)
	if err := d.run(ctx); err != nil {
		logger.Log(ctx, logging.LevelCritical, "monitor stopped on a fatal error", "error", err)
		return &exitError{code: exitFailure, err: err, logged: true}
	}
	return nil
}

// daemon holds what the running monitor shares between its loops.
type daemon struct {
	logger     *logging.Logger
	configPath string
	// cfg is the running configuration; a reload swaps in a copy whose
	// hot-reloadable settings changed and then notifies changed.
	cfg     atomic.Pointer[config.Config]
	changed loop.Broadcast
}

func (d *daemon) run(ctx context.Context) error {
	cfg := d.cfg.Load()
	log := d.logger.Logger
	log.Info("monitor starting", "version", version, "pid", os.Getpid(), "config", d.configPath)
	for _, s := range cfg.Settings() {
		log.Info("config", s.Key, s.Value)
	}
	for _, w := range cfg.Warnings() {
		log.Warn("config: " + w)
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// From here on a second SIGTERM/SIGINT kills the process at once:
	// stop() restores the default signal behaviour as soon as the first
	// one has cancelled ctx.
	go func() {
		<-ctx.Done()
		stop()
	}()

	pool, err := d.connect(ctx)
	if err != nil {
		if ctx.Err() != nil {
			log.Info("monitor stopped before the database was reachable")
			return nil
		}
		return err
	}
	defer pool.Close()
	store := queue.NewStore(pool)
	if err := store.CheckSchema(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("check schema: %w", err)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.watchConfig(gctx, hup) })
	scanLog := d.loggerFor("scanner")
	sc := scanner.New(scanner.Config{
		DelayFunc:   func() time.Duration { return d.cfg.Load().StandardLoopDelay },
		CheckInFunc: func() time.Duration { return d.cfg.Load().ProcessorCheckInTime },
		Changed:     d.changed.C,
	}, d.crashStore(cfg.StorageRoot, scanLog), store, scanLog)
	g.Go(func() error { return sc.Run(gctx) })
	prioLog := d.loggerFor("priority")
	var deferred *crashstore.Store
	if cfg.DeferredStorageRoot != "" {
		deferred = d.crashStore(cfg.DeferredStorageRoot, prioLog)
	}
	pr := priority.New(priority.Config{
		DelayFunc:   func() time.Duration { return d.cfg.Load().PriorityLoopDelay },
		CheckInFunc: func() time.Duration { return d.cfg.Load().ProcessorCheckInTime },
		Changed:     d.changed.C,
	}, d.crashStore(cfg.StorageRoot, prioLog), deferred, store, prioLog)
	g.Go(func() error { return pr.Run(gctx) })
	cl := d.newCleaner(store, sc.FirstPassDone(), d.loggerFor("cleanup"))
	g.Go(func() error { return cl.Run(gctx) })

	log.Info("monitor started")
	<-gctx.Done()
	if ctx.Err() != nil {
		log.Info("monitor stopping", "timeout", shutdownTimeout)
	}
	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	select {
	case err = <-done:
	case <-time.After(shutdownTimeout):
		return fmt.Errorf("loops still running %s after the stop signal; exiting anyway", shutdownTimeout)
	}
	if err != nil {
		return err
	}
	log.Info("monitor stopped")
	return nil
}

// connect opens the pool and waits until the database answers, retrying with
// capped exponential backoff and logging each failure, until ctx is done.
func (d *daemon) connect(ctx context.Context) (*pgxpool.Pool, error) {
	pool, err := app.OpenPool(d.cfg.Load())
	if err != nil {
		return nil, err
	}
	wait := time.Second
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, connectTimeout)
		err := pool.Ping(pctx)
		cancel()
		if err == nil {
			d.logger.Info("connected to the database", "attempts", attempt)
			return pool, nil
		}
		if ctx.Err() != nil {
			pool.Close()
			return nil, ctx.Err()
		}
		d.logger.Error("database unreachable; retrying", "error", err, "attempt", attempt, "retry_in", wait)
		select {
		case <-ctx.Done():
			pool.Close()
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, connectBackoffMax)
	}
}

// watchConfig applies reloads from file changes and SIGHUP until ctx is done.
func (d *daemon) watchConfig(ctx context.Context, hup <-chan os.Signal) error {
	trigger := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				d.logger.Info("SIGHUP received: reloading the configuration")
				select {
				case trigger <- struct{}{}:
				default:
				}
			}
		}
	}()
	return config.Watch(ctx, d.configPath, trigger, d.reload)
}

// reload applies a newly loaded configuration: hot settings take effect at
// once, the others are reported as needing a restart, and a broken file
// keeps the running settings.
func (d *daemon) reload(next *config.Config, err error) {
	d.logger.Debug("configuration file read", "path", d.configPath)
	if err != nil {
		d.logger.Error("configuration not reloaded; the running settings stay", "error", err)
		return
	}
	cur := d.cfg.Load()
	applied, hot, restart := config.Reload(cur, next)
	for _, key := range restart {
		d.logger.Warn("configuration key changed; restart the monitor to apply it", "key", key)
	}
	if len(hot) == 0 {
		if len(restart) == 0 {
			d.logger.Info("configuration reloaded; nothing changed")
		}
		return
	}
	d.cfg.Store(applied)
	d.logger.SetThresholds(applied.LogFileErrorLoggingLevel, applied.StderrErrorLoggingLevel)
	d.changed.Notify()
	d.logger.Info("configuration reloaded", "applied", strings.Join(hot, ","))
}

// loggerFor returns the logger of a loop: its lines carry the loop's name.
func (d *daemon) loggerFor(name string) *slog.Logger {
	return d.logger.With(logging.LoopKey, name)
}

// crashStore opens a storage tree with the configured layout; problems met
// in it (malformed names, dangling links) are logged once per path.
func (d *daemon) crashStore(root string, logger *slog.Logger) *crashstore.Store {
	return crashstore.New(root, d.storeOptions(-1, logger))
}

// storeOptions are the crashstore options of the running configuration:
// layout, suffixes and modes; files and directories made get the group gid
// when it is positive; problems are logged once per path.
func (d *daemon) storeOptions(gid int, logger *slog.Logger) crashstore.Options {
	cfg := d.cfg.Load()
	return crashstore.Options{
		Layout:     crashstore.Layout(cfg.StorageLayout),
		JSONSuffix: cfg.JSONFileSuffix,
		DumpSuffix: cfg.DumpFileSuffix,
		DirPerm:    cfg.DirPermissions,
		FilePerm:   cfg.DumpPermissions,
		GID:        gid,
		Problem:    logging.NewProblemLog(logger, 10000).Report,
	}
}
