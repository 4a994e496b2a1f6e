// Command monitorbench is the monitor's benchmark harness. It measures what
// operators run: the real binary (`monitor run`) on trees shaped like
// production's (many days of minute slots, one or two pairs per webhead
// directory) on disk (-dir, /var/tmp by default), against the PostgreSQL
// server named by MONITOR_TEST_DATABASE_URL (`make bench` starts a durable
// one), each scenario in a fresh schema of its own:
//
//	walk      the yardsticks on disk: the bare inbox walk, and the walk
//	          removing each pair's links (no database)
//	copy      a raw COPY of the drain's ids into an empty jobs table
//	drain     a backlog drained by `monitor run`: exec to first commit, to an
//	          empty inbox, and the monitor's peak memory
//	classic   the classic monitor's standard loop, re-implemented faithfully
//	          (one INSERT and one COMMIT per crash), on the drain's tree
//	tmpfs     the walk and the drain again on -tmpfs's directory (with -tmpfs)
//	scraped   the drain while /metrics is scraped ten times a second
//	arrival   how long a new pair takes to become a job while the monitor idles
//	priority  how long a priority request takes to be resolved
//	cleanup   finished jobs archived and their rows removed by `monitor run`
//	deadmove  the jobs of a dead processor moved by `monitor run`'s sweep
//	page      the status page of a monitor with 100 processors
//	scale     the drain at 10,000 and 100,000 pairs of trees just written, and at
//	          10,000, 100,000 and 1,000,000 pairs read from the disk (root only)
//	priorityload  the priority latency with 1,000,000 unfinished jobs
//
// The physical ceiling of a drain is the slower of walk-and-unlink and COPY.
// It prints one table, a line per figure with its target and pass or miss,
// then the scaling table; it writes them as JSON and, with -svg, a chart.
// Exit status: 0 when every figure ran (and, except with -smoke, met its
// target); 1 when something failed to run; 2 on bad flags; 3 when a figure
// missed its target (never with -smoke, whose tiny sizes are noise).
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
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
	exitMissed = 3
)

// scenarios are the names -only takes, in the order they run.
var scenarios = []string{"walk", "copy", "drain", "classic", "tmpfs", "scraped", "arrival", "priority", "cleanup",
	"deadmove", "page", "scale", "priorityload"}

// sizes are a run's scenario sizes.
type sizes struct {
	drain         int           // pairs drained by monitor run (and walked, and copied)
	classicBudget time.Duration // how long the classic loop runs on the drain's tree
	arrivals      int           // new pairs written one at a time
	priority      int           // priority requests
	priorityLoad  int           // unfinished jobs under priorityload
	cleanup       []int         // finished jobs cleaned up, a run each
	deadmove      int           // jobs of the dead processor
	page          int           // requests of the status page
	scale         []int         // the scaling table's drains of trees just written (in the kernel's caches)
	scaleCold     []int         // its drains of trees read from the disk (caches dropped first)
}

// oneMillion is the size of the largest scaling rows, which -no-1m leaves out.
const oneMillion = 1_000_000

func fullSizes() sizes {
	return sizes{drain: 50_000, classicBudget: 20 * time.Second, arrivals: 200, priority: 1_000, priorityLoad: oneMillion,
		cleanup: []int{10_000, 100_000}, deadmove: 100_000, page: 200,
		scale: []int{10_000, 100_000}, scaleCold: []int{10_000, 100_000, oneMillion}}
}

func smokeSizes() sizes {
	return sizes{drain: 2_000, classicBudget: 2 * time.Second, arrivals: 30, priority: 100, priorityLoad: 20_000,
		cleanup: []int{1_000}, deadmove: 5_000, page: 20, scale: []int{1_000}}
}

// options are the parsed flags.
type options struct {
	mode       string // smoke or full
	sizes      sizes
	only       map[string]bool
	jsonPath   string
	monitorBin string
	dir        string
	tmpfs      string // -tmpfs: also drain on this directory, "" for no
	svg        string
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
		n         = f.Int("n", 0, "pairs in the main backlog drain (default 50,000; 2,000 with -smoke)")
		smoke     = f.Bool("smoke", false, "small sizes, well under a minute; targets missed do not fail the run")
		no1M      = f.Bool("no-1m", false, "leave out the 1,000,000-pair rows (scale's drain, priorityload's jobs: 100,000 instead)")
		tmpfs     = f.Bool("tmpfs", false, "also walk and drain the main backlog on a tmpfs (-tmpfs-dir), as extra rows")
		tmpDir    = f.String("tmpfs-dir", "/dev/shm", "the tmpfs directory for -tmpfs")
		only      = f.String("only", "", "comma-separated scenarios to run: "+strings.Join(scenarios, ","))
		scale     = f.String("scale", "", "comma-separated sizes of the scaling table's drains of trees just written, or none (default 10000,100000)")
		scaleCold = f.String("scale-cold", "", "comma-separated sizes of its drains with the kernel's caches dropped first (root only), or none (default 10000,100000,1000000)")
		opts      options
	)
	f.StringVar(&opts.jsonPath, "json", "bench-results.json", "write the table as JSON to this file")
	f.StringVar(&opts.monitorBin, "monitor", "", "the monitor binary (default: monitor beside this program)")
	f.StringVar(&opts.dir, "dir", "/var/tmp", "parent of the work directory: the trees' file system (on disk, as in production)")
	f.StringVar(&opts.svg, "svg", "", "write the chart (jobs queued over time, monitor and classic; cleanup's rows removed) to this SVG file")
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
	opts.mode, opts.sizes = "full", fullSizes()
	if *smoke {
		opts.mode, opts.sizes = "smoke", smokeSizes()
	}
	if *no1M {
		opts.sizes.scale = slices.DeleteFunc(opts.sizes.scale, func(n int) bool { return n >= oneMillion })
		opts.sizes.scaleCold = slices.DeleteFunc(opts.sizes.scaleCold, func(n int) bool { return n >= oneMillion })
		opts.sizes.priorityLoad = min(opts.sizes.priorityLoad, 100_000)
	}
	for _, l := range []struct {
		flag, value string
		sizes       *[]int
	}{{"-scale", *scale, &opts.sizes.scale}, {"-scale-cold", *scaleCold, &opts.sizes.scaleCold}} {
		if l.value == "" {
			continue
		}
		*l.sizes = nil
		if l.value == "none" {
			continue
		}
		for _, v := range strings.Split(l.value, ",") {
			size, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || size <= 0 {
				return opts, fmt.Errorf("%s: %q is not a positive number of pairs", l.flag, v)
			}
			*l.sizes = append(*l.sizes, size)
		}
	}
	if *tmpfs {
		opts.tmpfs = *tmpDir
	}
	if *n < 0 {
		return opts, fmt.Errorf("-n %d: negative", *n)
	}
	if *n > 0 {
		opts.sizes.drain = *n
	}
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
	if _, err := os.Stat(opts.monitorBin); err != nil {
		return opts, fmt.Errorf("the monitor binary: %w (run `make build`, or give -monitor)", err)
	}
	return opts, nil
}
