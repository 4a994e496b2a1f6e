package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/app"
	"github.com/crashmonitor/monitor/config"
	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/figures"
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

// connectOnce is connect (app.ConnectOnce, or app.ConnectSessionOnce for
// what needs sessions of its own), with connection settings that cannot be
// parsed reported as a usage error (exit 2).
func connectOnce(ctx context.Context, cfg *config.Config,
	connect func(context.Context, *config.Config) (*pgxpool.Pool, error)) (*pgxpool.Pool, error) {
	pool, err := connect(ctx, cfg)
	if _, ok := errors.AsType[*app.SettingsError](err); ok {
		return nil, usageError(err)
	}
	return pool, err
}

// openStore connects and checks the schema is the one this binary expects,
// for the commands that read or write the queue (status, prioritize). The
// caller closes the returned pool.
func openStore(ctx context.Context, cfg *config.Config) (*queue.Store, *pgxpool.Pool, error) {
	pool, err := connectOnce(ctx, cfg, app.ConnectOnce)
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

// cmdMigrate creates or upgrades the schema, on databaseSessionURL when it
// is set: the migrations hold a session advisory lock, which a transaction
// pooler would not keep.
func cmdMigrate(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := loadConfigNoArgs(newFlags("migrate"), args)
	if err != nil {
		return err
	}
	pool, err := connectOnce(ctx, cfg, app.ConnectSessionOnce)
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
	rep := figures.StatusReport(st)
	rep.ReadAt = time.Now()
	rep.Daemon = daemonReport(ctx, cfg.HTTPListenAddress)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.WriteText(stdout)
	return nil
}

// daemonReport asks the daemon serving HTTP on addr for what only it knows
// (its inbox, throughput, passes, events); nil when none answers quickly.
func daemonReport(ctx context.Context, addr string) *figures.DaemonReport {
	if addr == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, daemonTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/status", nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var rep figures.Report
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&rep) != nil {
		return nil
	}
	return rep.Daemon
}

// daemonTimeout bounds asking a running daemon for its report.
const daemonTimeout = 2 * time.Second

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
