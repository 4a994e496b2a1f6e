package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/procsim"
)

// cmdProcess runs one simulated processor until SIGTERM or SIGINT (a clean
// stop) or SIGUSR1 (a simulated crash: heartbeat and work stop at once, no
// clean stop, exit).
func cmdProcess(ctx context.Context, args []string, stderr io.Writer) error {
	f := newFlagSet("process", "process [-c FILE | -db URL -storage-root DIR] [flags]", stderr)
	configPath := f.String("c", "", "monitor configuration: database, storage trees, layout, suffixes and processorCheckInTime")
	dbURL := f.String("db", "", "database URL or key=value string (overrides -c)")
	host, _ := os.Hostname()
	name := f.String("name", fmt.Sprintf("%s_%d", host, os.Getpid()), "processor name (processors.name)")
	checkIn := f.Duration("check-in", 0, "processorCheckInTime: heartbeats go three times per this (default: the configuration's, else 5m)")
	workTime := f.Duration("work-time", 50*time.Millisecond, "time each job takes")
	failRatio := f.Float64("fail-ratio", 0.05, "share of crashes whose processing fails (0..1; decided by the crash id and -seed)")
	seed := f.Uint64("seed", 0, "varies which crashes fail")
	concurrency := f.Int("concurrency", procsim.DefaultConcurrency, "workers; jobs are claimed this many at a time")
	idle := f.Duration("idle", procsim.DefaultIdle, "pause when there is nothing to do")
	storageRoot := f.String("storage-root", "", "standard tree (overrides -c)")
	deferredRoot := f.String("deferred-root", "", "deferred tree (overrides -c; empty: none)")
	layout := f.String("layout", "", "daily or flat (default: the configuration's, else daily)")
	logPath := f.String("log", "", "log file (default: stderr)")
	logLevel := f.String("log-level", "info", "debug, info, warn or error")
	if err := parse(f, args); err != nil {
		return err
	}
	if *failRatio < 0 || *failRatio > 1 {
		return usageError{fmt.Errorf("-fail-ratio %g is not between 0 and 1", *failRatio)}
	}
	if *concurrency < 1 {
		return usageError{fmt.Errorf("-concurrency must be at least 1")}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError{fmt.Errorf("-log-level: %w", err)}
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	opts, err := storeOptions(cfg, *layout)
	if err != nil {
		return err
	}
	conn, standard, deferred := *dbURL, *storageRoot, *deferredRoot
	interval := *checkIn
	if cfg != nil {
		conn = cmp.Or(conn, cfg.ConnString())
		standard = cmp.Or(standard, cfg.StorageRoot)
		if !set(f, "deferred-root") {
			deferred = cfg.DeferredStorageRoot
		}
		interval = cmp.Or(interval, cfg.ProcessorCheckInTime)
	}
	switch {
	case conn == "":
		return usageError{errors.New("no database: give -db URL or -c FILE")}
	case standard == "":
		return usageError{errors.New("no standard tree: give -storage-root DIR or -c FILE")}
	}

	logOut := stderr
	if *logPath != "" {
		lf, err := os.OpenFile(*logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer lf.Close()
		logOut = lf
	}
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level})).With("processor", *name)

	pcfg, err := pgxpool.ParseConfig(conn)
	if err != nil {
		return usageError{fmt.Errorf("database connection settings: %w", err)}
	}
	pcfg.MaxConns = 4
	if pcfg.ConnConfig.RuntimeParams["application_name"] == "" {
		pcfg.ConnConfig.RuntimeParams["application_name"] = "crashsim " + *name
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()

	simCfg := procsim.Config{
		Name: *name, CheckIn: interval, WorkTime: *workTime, FailRatio: *failRatio, Seed: *seed,
		Concurrency: *concurrency, Idle: *idle,
		Standard: crashstore.New(standard, opts),
	}
	if deferred != "" {
		simCfg.Deferred = crashstore.New(deferred, opts)
	}
	p := procsim.New(simCfg, procsim.NewSession(pool), logger)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	crash := make(chan os.Signal, 1)
	signal.Notify(crash, syscall.SIGUSR1)
	defer signal.Stop(crash)
	go func() {
		select {
		case <-crash:
			p.Crash()
		case <-ctx.Done():
		}
	}()

	err = p.Run(ctx)
	st := p.Stats()
	summary := fmt.Sprintf("processor %s (id %d): %d claimed (%d priority), %d succeeded, %d failed (%d not found), %d dropped",
		*name, p.ID(), st.Claimed, st.Priority, st.Succeeded, st.Failed, st.NotFound, st.Dropped)
	switch {
	case errors.Is(err, procsim.ErrCrashed):
		fmt.Fprintln(stderr, summary+"; crashed on request (SIGUSR1), no clean stop")
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintln(stderr, summary+"; stopped cleanly")
	return nil
}
