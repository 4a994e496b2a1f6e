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
	"github.com/crashmonitor/monitor/internal/crashgen"
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
	opts  options
	dbURL string
	admin *pgxpool.Pool // no search_path: creates and drops the schemas
	work  string        // the work directory, removed at the end
	// tmpfsWork is -tmpfs's work directory, "" without it.
	tmpfsWork string
	start     time.Time
	progress  io.Writer
	logger    *slog.Logger // for the packages run in-process: warnings and errors
	figures   map[string]Figure
	scaling   []ScaleRow
	// timelines are the chart's lines.
	timelines struct {
		drain, classic, cleanup []Point
	}
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
	if report.Header.Durability, err = h.durability(ctx); err != nil {
		return report, err
	}

	h.work, err = h.workDir(opts.dir)
	if err != nil {
		return report, err
	}
	defer h.removeWork(h.work)
	report.Header.TreeDir = h.work
	report.Header.Filesystem = filesystemHeader(h.work)
	if opts.tmpfs != "" {
		if h.tmpfsWork, err = h.workDir(opts.tmpfs); err != nil {
			return report, err
		}
		defer h.removeWork(h.tmpfsWork)
		report.Header.TmpfsDir = h.tmpfsWork
		if fs := filesystemType(h.tmpfsWork); fs != "tmpfs" {
			h.step("-tmpfs %s is on %s, not tmpfs", opts.tmpfs, fs)
		}
	}
	h.step("trees on %s (%s); database %s", report.Header.Filesystem, h.work, report.Header.Durability)

	err = h.runScenarios(ctx)
	report.Figures = assemble(h.figures)
	report.Scaling = h.scaling
	if opts.svg != "" && err == nil {
		if cerr := writeChart(opts.svg, h.chart(report.Header)); cerr != nil {
			err = cerr
		} else {
			h.step("chart written to %s", opts.svg)
		}
	}
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

// generate writes g's pairs into the tree at root.
func (h *harness) generate(ctx context.Context, what, root string, g *crashgen.Generator) (*crashstore.Store, error) {
	if err := checkRoom(filepath.Dir(root), g.Options().Count, h.opts.dumpSize); err != nil {
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

// durability reads the durability settings of the server in use.
func (h *harness) durability(ctx context.Context) (Durability, error) {
	var d Durability
	for _, s := range []struct {
		name string
		into *string
	}{{"fsync", &d.Fsync}, {"synchronous_commit", &d.SynchronousCommit}, {"full_page_writes", &d.FullPageWrites}} {
		if err := h.admin.QueryRow(ctx, "SHOW "+s.name).Scan(s.into); err != nil {
			return d, fmt.Errorf("show %s: %w", s.name, err)
		}
	}
	return d, nil
}
