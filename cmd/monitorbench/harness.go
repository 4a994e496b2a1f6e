package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/bench"
	"github.com/crashmonitor/monitor/internal/crashgen"
	"github.com/crashmonitor/monitor/internal/dbschema"
	"github.com/crashmonitor/monitor/internal/procsim"
	"github.com/crashmonitor/monitor/queue"
)

// Settings every scenario shares.
const (
	// checkIn is processorCheckInTime: long, so that processors registered
	// once stay live through a scenario without heartbeats.
	checkIn       = time.Hour
	checkInConfig = "01:00:00"
	// liveProcessors is how many live processors each scenario registers.
	liveProcessors = 3
	// maxConns bounds each scenario's pool.
	maxConns = 4
	// dropTimeout bounds dropping a scenario's schema.
	dropTimeout = 2 * time.Minute
)

// harness holds what the scenarios share.
type harness struct {
	opts     options
	dbURL    string
	admin    *pgxpool.Pool // no search_path: creates and drops the schemas
	work     string        // the work directory, removed at the end
	start    time.Time
	progress io.Writer
	logger   *slog.Logger // for the packages run in-process: warnings and errors
	figures  map[string]Figure
}

// runHarness runs the selected scenarios and returns the report, complete
// or as far as it got.
func runHarness(ctx context.Context, opts options, dbURL string, progress io.Writer) (*Report, error) {
	h := &harness{
		opts:     opts,
		dbURL:    dbURL,
		start:    time.Now(),
		progress: progress,
		logger:   slog.New(slog.NewTextHandler(progress, &slog.HandlerOptions{Level: slog.LevelWarn})),
		figures:  map[string]Figure{},
	}
	report := &Report{Header: h.header()}

	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return report, fmt.Errorf("MONITOR_TEST_DATABASE_URL: %w", err)
	}
	cfg.MaxConns = 2
	h.admin, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return report, fmt.Errorf("connect: %w", err)
	}
	defer h.admin.Close()
	report.Header.PostgreSQL, err = h.serverVersion(ctx)
	if err != nil {
		return report, err
	}

	parent := opts.dir
	if parent == "" {
		parent = os.TempDir()
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			parent = "/dev/shm"
		}
	}
	h.work, err = os.MkdirTemp(parent, "monitorbench-")
	if err != nil {
		return report, fmt.Errorf("work directory: %w", err)
	}
	report.Header.TreeDir = h.work
	report.Header.Filesystem = filesystemType(h.work)
	defer func() {
		if opts.keep {
			h.step("kept the work directory %s", h.work)
			return
		}
		if err := os.RemoveAll(h.work); err != nil {
			h.step("could not remove the work directory: %v", err)
		}
	}()

	err = h.runScenarios(ctx)
	report.Figures = assemble(h.figures)
	report.Header.Seconds = time.Since(h.start).Seconds()
	report.Header.LoadEnd = loadAverage()
	return report, err
}

// header gathers the machine facts known before connecting.
func (h *harness) header() Header {
	cpu, cpus := cpuModel()
	return Header{
		Mode:      h.opts.mode,
		Started:   h.start,
		CPU:       cpu,
		CPUs:      cpus,
		MemoryMiB: memTotalMiB(),
		Go:        runtime.Version(),
		Monitor:   monitorVersion(h.opts.monitorBin),
		LoadStart: loadAverage(),
	}
}

// serverVersion is the server's version, as it announced it.
func (h *harness) serverVersion(ctx context.Context) (string, error) {
	conn, err := h.admin.Acquire(ctx)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Release()
	return conn.Conn().PgConn().ParameterStatus("server_version"), nil
}

// monitorVersion is the first line of `monitor version`.
func monitorVersion(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimPrefix(line, "monitor ")
}

// runScenarios runs the selected scenarios in order, stopping at the first
// failure.
func (h *harness) runScenarios(ctx context.Context) error {
	s := h.opts.sizes
	var drainGen *crashgen.Generator
	if h.opts.runs("drain") || h.opts.runs("walk") || h.opts.runs("copy") || h.opts.runs("scraped") {
		var err error
		drainGen, err = h.backlogGenerator(s.drain, 1)
		if err != nil {
			return err
		}
	}
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"drain", func(ctx context.Context) error { return h.drainScenario(ctx, drainGen) }},
		{"copy", func(ctx context.Context) error { return h.copyScenario(ctx, drainGen) }},
		{"classic", func(ctx context.Context) error { return h.classicScenario(ctx, s.classic) }},
		{"arrival", func(ctx context.Context) error { return h.arrivalScenario(ctx, s.arrivals) }},
		{"priority", func(ctx context.Context) error { return h.priorityScenario(ctx, s.priority) }},
		{"cleanup", func(ctx context.Context) error { return h.cleanupScenario(ctx, s.cleanup) }},
		{"cleanuprun", func(ctx context.Context) error { return h.cleanupRunScenario(ctx, s.cleanRun) }},
		{"deadmove", func(ctx context.Context) error { return h.deadMoveScenario(ctx, s.deadmove) }},
		{"page", func(ctx context.Context) error { return h.pageScenario(ctx, s.page, 10_000) }},
	}
	for _, st := range steps {
		if st.name == "drain" {
			if !h.opts.runs("drain") && !h.opts.runs("walk") && !h.opts.runs("scraped") {
				continue
			}
		} else if !h.opts.runs(st.name) {
			continue
		}
		began := time.Now()
		if err := st.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
		h.step("%s: done in %s", st.name, formatDuration(time.Since(began)))
	}
	return nil
}

// step prints a progress line on the progress writer (stderr).
func (h *harness) step(format string, args ...any) {
	fmt.Fprintf(h.progress, "monitorbench: "+format+"\n", args...)
}

// dir makes and returns a scenario's directory in the work directory.
func (h *harness) dir(name string) (string, error) {
	d := filepath.Join(h.work, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	return d, nil
}

// removeTree removes a scenario's directory, freeing its tmpfs memory for
// the next one (unless -keep).
func (h *harness) removeTree(dir string) {
	if h.opts.keep {
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		h.step("could not remove %s: %v", dir, err)
	}
}

// backlogGenerator describes count pairs submitted over the two hours before
// the run, by two collectors: an outage's backlog.
func (h *harness) backlogGenerator(count int, seed uint64) (*crashgen.Generator, error) {
	return crashgen.New(crashgen.Options{
		Count:     count,
		DumpSize:  h.opts.dumpSize,
		Webheads:  []string{"webhead01", "webhead02"},
		Submitted: h.start.Add(-time.Minute),
		Spread:    2 * time.Hour,
		Seed:      seed,
	})
}

// generate writes g's pairs into the tree at root.
func (h *harness) generate(ctx context.Context, what, root string, g *crashgen.Generator) (*crashstore.Store, error) {
	if err := checkRoom(h.work, g.Options().Count, h.opts.dumpSize); err != nil {
		return nil, fmt.Errorf("generate %s: %w", what, err)
	}
	store := newTree(root)
	h.step("%s: generating %s pairs in %s", what, formatInt(int64(g.Options().Count)), root)
	res, err := g.Write(ctx, store)
	if err != nil {
		return nil, fmt.Errorf("generate %s: %w", what, err)
	}
	h.step("%s: generated in %s (%s)", what, formatDuration(res.Elapsed), formatRate(res.PairsPerSecond()))
	return store, nil
}

// newTree is a daily-layout tree at root with the default suffixes and
// modes, as the monitor's default configuration opens it.
func newTree(root string) *crashstore.Store {
	return crashstore.New(root, crashstore.Options{GID: -1})
}

// countInbox counts the inbox links of a tree.
func countInbox(ctx context.Context, store *crashstore.Store) (int, error) {
	n := 0
	err := store.Walk(ctx, func(crashstore.Entry) error { n++; return nil })
	return n, err
}

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

// startMonitor writes cfg into dir and starts `monitor run` on it.
func (h *harness) startMonitor(dir string, cfg monitorConfig) (*monitorProc, error) {
	for k, v := range h.opts.settings {
		cfg[k] = v
	}
	path := filepath.Join(dir, "monitor.yaml")
	if err := cfg.write(path); err != nil {
		return nil, err
	}
	return startMonitor(h.opts.monitorBin, path, cfg["logFilePathname"])
}

// waitFor polls cond every interval until it reports done, the monitor m
// (when not nil) exits, ctx ends or timeout passes.
func waitFor(ctx context.Context, m *monitorProc, interval, timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		done, err := cond()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if m != nil {
			if err := m.alive(); err != nil {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("%s did not happen within %s", what, timeout)
			if m != nil {
				msg += m.tail()
			}
			return errors.New(msg)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
