// Command monitorbench is the monitor's benchmark harness. It measures, each
// scenario in a fresh schema of its own on the PostgreSQL server named by
// MONITOR_TEST_DATABASE_URL and on trees it generates on tmpfs:
//
//	drain     a backlog drained by `monitor run` (the real binary), in pairs/s,
//	          and the monitor's peak resident memory meanwhile
//	walk      the bare inbox walk of the same tree (no database)
//	classic   the classic monitor's standard loop, re-implemented faithfully
//	          (one INSERT and one COMMIT per crash), on a sample
//	copy      a raw COPY of the drain's ids into an empty jobs table: the ceiling
//	arrival   how long a new pair takes to become a job while the monitor idles
//	priority  how long a priority request takes to be resolved
//	cleanup   finished jobs archived and their rows removed, in pairs/s
//	cleanuprun the same through `monitor run`, from the exec to the last row gone
//	deadmove  the jobs of a dead processor moved to live ones
//
// It prints one table, a line per figure with its target and pass or miss,
// and writes it as JSON. Exit status: 0 when every figure ran (and, except
// with -smoke, met its target); 1 when something failed to run; 2 on bad
// flags; 3 when a figure missed its target (never with -smoke, whose tiny
// sizes are noise).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
	exitMissed = 3
)

// scenarios are the names -only takes, in the order they run.
var scenarios = []string{"drain", "walk", "copy", "classic", "scraped", "arrival", "priority", "cleanup", "cleanuprun", "deadmove", "page"}

// sizes are a run's scenario sizes.
type sizes struct {
	drain    int // pairs drained by monitor run (and walked, and copied)
	classic  int // pairs of the classic loop's sample
	arrivals int // new pairs written one at a time
	priority int // priority requests
	cleanup  int // finished jobs cleaned up (in-process)
	cleanRun int // finished jobs cleaned up by monitor run
	deadmove int // jobs of the dead processor
	page     int // requests of the status page
}

var (
	fullSizes  = sizes{drain: 200_000, classic: 20_000, arrivals: 200, priority: 1_000, cleanup: 100_000, cleanRun: 20_000, deadmove: 100_000, page: 200}
	smokeSizes = sizes{drain: 5_000, classic: 1_000, arrivals: 50, priority: 100, cleanup: 2_000, cleanRun: 2_000, deadmove: 5_000, page: 20}
	largeDrain = 1_000_000
)

// options are the parsed flags.
type options struct {
	mode       string // smoke, full, large
	sizes      sizes
	only       map[string]bool
	jsonPath   string
	monitorBin string
	dir        string
	keep       bool
	cpuProfile string
	dumpSize   int
	// settings override keys of the monitor configurations (-set).
	settings map[string]string
}

func (o options) smoke() bool { return o.mode == "smoke" }

func (o options) runs(name string) bool { return o.only == nil || o.only[name] }

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the harness and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "monitorbench: %v\n", err)
		return exitUsage
	}
	dbURL := os.Getenv("MONITOR_TEST_DATABASE_URL")
	if dbURL == "" {
		fmt.Fprintln(stderr, "monitorbench: MONITOR_TEST_DATABASE_URL is not set: run it through `make bench` (scripts/with-postgres.sh)")
		return exitUsage
	}
	if opts.cpuProfile != "" {
		f, err := os.Create(opts.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "monitorbench: %v\n", err)
			return exitFailed
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "monitorbench: cpu profile: %v\n", err)
			return exitFailed
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, runErr := runHarness(ctx, opts, dbURL, stderr)
	code := exitOK
	if report != nil && len(report.Figures) > 0 {
		fmt.Fprintln(stdout)
		if err := report.WriteTable(stdout); err != nil {
			runErr = errors.Join(runErr, err)
		}
		if err := report.WriteJSON(opts.jsonPath); err != nil {
			runErr = errors.Join(runErr, err)
		} else {
			fmt.Fprintf(stdout, "\nwritten to %s\n", opts.jsonPath)
		}
		if misses := report.Misses(); len(misses) > 0 {
			if opts.smoke() {
				fmt.Fprintf(stdout, "missed (not an error with -smoke: tiny sizes): %s\n", strings.Join(misses, ", "))
			} else {
				fmt.Fprintf(stdout, "missed: %s\n", strings.Join(misses, ", "))
				code = exitMissed
			}
		}
	}
	if runErr != nil {
		fmt.Fprintf(stderr, "monitorbench: %v\n", runErr)
		return exitFailed
	}
	return code
}

// parseFlags parses the command line.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	f := flag.NewFlagSet("monitorbench", flag.ContinueOnError)
	f.SetOutput(stderr)
	var (
		n     = f.Int("n", 0, "pairs in the backlog drain (default 200,000; 5,000 with -smoke; 1,000,000 with -large)")
		cn    = f.Int("cleanup-n", 0, "finished jobs of the cleanup and cleanuprun scenarios (default 100,000 and 20,000; 2,000 with -smoke)")
		large = f.Bool("large", false, "drain 1,000,000 pairs")
		smoke = f.Bool("smoke", false, "small sizes, well under a minute; targets missed do not fail the run")
		only  = f.String("only", "", "comma-separated scenarios to run: "+strings.Join(scenarios, ","))
		opts  options
	)
	f.StringVar(&opts.jsonPath, "json", "bench-results.json", "write the table as JSON to this file")
	f.StringVar(&opts.monitorBin, "monitor", "", "the monitor binary (default: monitor beside this program)")
	f.StringVar(&opts.dir, "dir", "", "parent of the work directory (default /dev/shm when it exists, else $TMPDIR)")
	f.BoolVar(&opts.keep, "keep", false, "keep the work directory (trees, configurations, monitor logs)")
	f.StringVar(&opts.cpuProfile, "cpuprofile", "", "write the harness's CPU profile (the in-process scenarios) to this file")
	f.IntVar(&opts.dumpSize, "dump-size", 512, "bytes per generated dump (each pair costs about two pages of tmpfs memory)")
	f.Func("set", "override a key of the monitor's configuration, as key=value (repeatable; e.g. logFileErrorLoggingLevel=20)", func(kv string) error {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("want key=value, got %q", kv)
		}
		if opts.settings == nil {
			opts.settings = map[string]string{}
		}
		opts.settings[k] = v
		return nil
	})
	f.Usage = func() {
		fmt.Fprintf(stderr, "usage: monitorbench [flags]\n\nRuns the monitor's benchmarks against MONITOR_TEST_DATABASE_URL and prints the table.\n\nflags:\n")
		f.PrintDefaults()
	}
	if err := f.Parse(args); err != nil {
		return opts, err
	}
	if f.NArg() > 0 {
		return opts, fmt.Errorf("unexpected arguments: %s", strings.Join(f.Args(), " "))
	}
	switch {
	case *smoke && *large:
		return opts, errors.New("-smoke and -large exclude each other")
	case *smoke:
		opts.mode, opts.sizes = "smoke", smokeSizes
	case *large:
		opts.mode, opts.sizes = "large", fullSizes
		opts.sizes.drain = largeDrain
	default:
		opts.mode, opts.sizes = "full", fullSizes
	}
	if *n < 0 {
		return opts, fmt.Errorf("-n %d: negative", *n)
	}
	if *n > 0 {
		opts.sizes.drain = *n
	}
	if *cn < 0 {
		return opts, fmt.Errorf("-cleanup-n %d: negative", *cn)
	}
	if *cn > 0 {
		opts.sizes.cleanup, opts.sizes.cleanRun = *cn, *cn
	}
	opts.sizes.classic = min(opts.sizes.classic, opts.sizes.drain)
	if opts.dumpSize < 0 {
		return opts, fmt.Errorf("-dump-size %d: negative", opts.dumpSize)
	}
	if *only != "" {
		opts.only = map[string]bool{}
		for _, name := range strings.Split(*only, ",") {
			name = strings.TrimSpace(name)
			if !slices.Contains(scenarios, name) {
				return opts, fmt.Errorf("-only: unknown scenario %q (known: %s)", name, strings.Join(scenarios, ","))
			}
			opts.only[name] = true
		}
	}
	if opts.monitorBin == "" {
		self, err := os.Executable()
		if err != nil {
			return opts, fmt.Errorf("find the monitor binary: %w (give -monitor)", err)
		}
		opts.monitorBin = filepath.Join(filepath.Dir(self), "monitor")
	}
	if _, err := os.Stat(opts.monitorBin); err != nil && (opts.runs("drain") || opts.runs("arrival") || opts.runs("priority")) {
		return opts, fmt.Errorf("the monitor binary: %w (run `make build`, or give -monitor)", err)
	}
	return opts, nil
}
