package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/app"
	"github.com/crashmonitor/monitor/config"
	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/queue"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// loadConfig parses the subcommand's flags and loads its configuration; any
// failure is a usage error (exit 2) and nothing has been touched yet.
func loadConfig(f *flags, args []string) (*config.Config, []string, error) {
	positional, err := f.parse(args)
	if err != nil {
		return nil, nil, err
	}
	path, err := f.configPath()
	if err != nil {
		return nil, nil, err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, usageError(err)
	}
	return cfg, positional, nil
}

// loadConfigNoArgs is loadConfig for the commands that take no positional
// arguments.
func loadConfigNoArgs(f *flags, args []string) (*config.Config, error) {
	cfg, positional, err := loadConfig(f, args)
	if err != nil {
		return nil, err
	}
	return cfg, noArgs(positional)
}

// connectOnce is app.ConnectOnce, with connection settings that cannot be
// parsed reported as a usage error (exit 2).
func connectOnce(ctx context.Context, cfg *config.Config) (*pgxpool.Pool, error) {
	pool, err := app.ConnectOnce(ctx, cfg)
	if _, ok := errors.AsType[*app.SettingsError](err); ok {
		return nil, usageError(err)
	}
	return pool, err
}

// openStore connects and checks the schema is the one this binary expects,
// for the commands that read or write the queue (status, prioritize). The
// caller closes the returned pool.
func openStore(ctx context.Context, cfg *config.Config) (*queue.Store, *pgxpool.Pool, error) {
	pool, err := connectOnce(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	store := queue.NewStore(pool)
	if err := store.CheckSchema(ctx); err != nil {
		pool.Close()
		return nil, nil, err
	}
	return store, pool, nil
}

// cmdCheckConfig validates the configuration and prints every effective
// setting, one name=value per line sorted by name, passwords masked.
func cmdCheckConfig(args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfigNoArgs(newFlags("check-config"), args)
	if err != nil {
		return err
	}
	for _, s := range cfg.Settings() {
		fmt.Fprintf(stdout, "%s=%s\n", s.Key, s.Value)
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	return nil
}

// cmdMigrate creates or upgrades the schema.
func cmdMigrate(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := loadConfigNoArgs(newFlags("migrate"), args)
	if err != nil {
		return err
	}
	pool, err := connectOnce(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	from, to, err := queue.Migrate(ctx, pool)
	if err != nil {
		return err
	}
	if from == to {
		fmt.Fprintf(stdout, "schema is up to date (version %d)\n", to)
	} else {
		fmt.Fprintf(stdout, "schema migrated from version %d to %d\n", from, to)
	}
	return nil
}

// cmdPrioritize does what the reporter does: it inserts crash ids into
// priorityjobs. Every id is validated first; one malformed id means none is
// inserted.
func cmdPrioritize(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, ids, err := loadConfig(newFlags("prioritize"), args)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return usageError(fmt.Errorf("no crash ids given"))
	}
	var bad []string
	for _, id := range ids {
		if !crashstore.ValidID(id) {
			bad = append(bad, fmt.Sprintf("%q", id))
		}
	}
	if len(bad) > 0 {
		return usageError(fmt.Errorf("malformed crash id %s (want 8-4-4-4-12 hexadecimal digits); nothing was requested",
			strings.Join(bad, ", ")))
	}
	store, pool, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	n, err := store.RequestPriority(ctx, ids)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "requested priority processing of %d crash id(s); %d already requested\n", n, int64(len(ids))-n)
	return nil
}

// statusJSON is the stable JSON shape of `monitor status --json`.
type statusJSON struct {
	Processors []processorJSON `json:"processors"`
	Jobs       struct {
		Queued    int64 `json:"queued"`
		Started   int64 `json:"started"`
		Succeeded int64 `json:"succeeded"`
		Failed    int64 `json:"failed"`
	} `json:"jobs"`
	PriorityRequests       int64    `json:"priority_requests"`
	OldestQueuedAgeSeconds *float64 `json:"oldest_queued_age_seconds"`
	Cleanup                struct {
		Failing int64                `json:"failing"`
		Recent  []cleanupFailureJSON `json:"recent_failures"`
	} `json:"cleanup"`
}

// cleanupFailureJSON is a finished job whose cleanup keeps failing.
type cleanupFailureJSON struct {
	UUID           string    `json:"uuid"`
	Attempts       int       `json:"attempts"`
	LastError      string    `json:"last_error"`
	LastFailed     time.Time `json:"last_failed"`
	RetryInSeconds float64   `json:"retry_in_seconds"`
}

type processorJSON struct {
	ID       int64      `json:"id"`
	Name     string     `json:"name"`
	State    string     `json:"state"`
	LastSeen *time.Time `json:"last_seen"`
	Pending  int64      `json:"pending"`
}

// cmdStatus prints the queue summary.
func cmdStatus(ctx context.Context, args []string, stdout io.Writer) error {
	f := newFlags("status")
	asJSON := f.Bool("json", false, "print JSON")
	cfg, err := loadConfigNoArgs(f, args)
	if err != nil {
		return err
	}
	store, pool, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	st, err := store.Status(ctx, cfg.ProcessorCheckInTime)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeStatusJSON(stdout, st)
	}
	writeStatusText(stdout, st)
	return nil
}

func writeStatusJSON(w io.Writer, st queue.Status) error {
	var out statusJSON
	out.Processors = make([]processorJSON, 0, len(st.Processors))
	for _, p := range st.Processors {
		out.Processors = append(out.Processors, processorJSON{p.ID, p.Name, p.State, p.LastSeen, p.Pending})
	}
	out.Jobs.Queued, out.Jobs.Started = st.Queued, st.Started
	out.Jobs.Succeeded, out.Jobs.Failed = st.Succeeded, st.Failed
	out.PriorityRequests = st.PriorityRequests
	if st.OldestQueuedAge != nil {
		s := st.OldestQueuedAge.Seconds()
		out.OldestQueuedAgeSeconds = &s
	}
	out.Cleanup.Failing = st.CleanupFailing
	out.Cleanup.Recent = make([]cleanupFailureJSON, 0, len(st.CleanupFailures))
	for _, f := range st.CleanupFailures {
		out.Cleanup.Recent = append(out.Cleanup.Recent,
			cleanupFailureJSON{f.UUID, f.Attempts, f.LastError, f.LastFailed, max(f.RetryIn, 0).Seconds()})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func writeStatusText(w io.Writer, st queue.Status) {
	states := map[string]int{}
	for _, p := range st.Processors {
		states[p.State]++
	}
	fmt.Fprintf(w, "processors: %d (%d live, %d stale, %d dead)\n",
		len(st.Processors), states["live"], states["stale"], states["dead"])
	if len(st.Processors) > 0 {
		tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  ID\tNAME\tSTATE\tLAST SEEN\tPENDING")
		for _, p := range st.Processors {
			seen := "never"
			if p.LastSeen != nil {
				seen = p.LastSeen.Format("2006-01-02 15:04:05")
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%d\n", p.ID, p.Name, p.State, seen, p.Pending)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "jobs: %d queued, %d started, %d succeeded, %d failed\n",
		st.Queued, st.Started, st.Succeeded, st.Failed)
	fmt.Fprintf(w, "priority requests pending: %d\n", st.PriorityRequests)
	if st.OldestQueuedAge != nil {
		fmt.Fprintf(w, "oldest queued job: %s\n", st.OldestQueuedAge.Round(time.Second))
	} else {
		fmt.Fprintln(w, "oldest queued job: none")
	}
	fmt.Fprintf(w, "cleanups failing: %d\n", st.CleanupFailing)
	for _, f := range st.CleanupFailures {
		fmt.Fprintf(w, "  %s  %d attempt(s), last %s, retry in %s: %s\n", f.UUID, f.Attempts,
			f.LastFailed.Format("2006-01-02 15:04:05"), max(f.RetryIn, 0).Round(time.Second), f.LastError)
	}
}

// cmdVersion prints the version and build information.
func cmdVersion(args []string, stdout io.Writer) error {
	f := newFlags("version")
	positional, err := f.parse(args)
	if err != nil {
		return err
	}
	if err := noArgs(positional); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "monitor %s\n", version)
	fmt.Fprintf(stdout, "go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if bi, ok := debug.ReadBuildInfo(); ok {
		fmt.Fprintf(stdout, "module: %s\n", bi.Main.Path)
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" || s.Key == "vcs.time" || s.Key == "vcs.modified" {
				fmt.Fprintf(stdout, "%s: %s\n", s.Key, s.Value)
			}
		}
	}
	return nil
}
