// Command crashsim holds the tools that stand in for the rest of a Socorro
// pipeline around the monitor, for the demo, the benchmarks and manual tests:
//
//	crashsim generate  writes crashes into a storage tree as a collector does
//	crashsim process   runs a simulated processor (the processor protocol, README)
//	crashsim report    prints queue, archive and log counts as name=value lines
//	crashsim apmon-listen  prints the ApMon datagrams it receives, decoded
//
// The simulated processor is a stand-in for real processors: it registers,
// heartbeats, claims, reads the crash files and records results exactly as
// the processor protocol says, but does no processing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/crashmonitor/monitor/config"
	"github.com/crashmonitor/monitor/crashstore"
)

// Exit codes, as the monitor's.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const usage = `usage: crashsim <command> [flags]

commands:
  generate  write crashes into a storage tree as a collector does
  process   run a simulated processor until SIGTERM/SIGINT (SIGUSR1: crash)
  report    print queue, archive and log counts as name=value lines
  apmon-listen  print each ApMon datagram received on a UDP port, decoded

Run "crashsim <command> -h" for the flags of a command. Flags that are not
given come from the monitor configuration named by -c (or MONITOR_CONFIG).
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// usageError marks a failure that exits 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// run executes one subcommand and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, args := args[0], args[1:]
	var err error
	switch cmd {
	case "generate":
		err = cmdGenerate(ctx, args, stdout, stderr)
	case "process":
		err = cmdProcess(ctx, args, stderr)
	case "report":
		err = cmdReport(ctx, args, stdout)
	case "apmon-listen":
		err = cmdApMonListen(ctx, args, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "crashsim: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	}
	fmt.Fprintf(stderr, "crashsim %s: %v\n", cmd, err)
	if errors.As(err, new(usageError)) {
		return exitUsage
	}
	return exitFailure
}

// newFlagSet returns a flag set that prints its usage on -h and reports
// errors once, through run.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	f := flag.NewFlagSet(name, flag.ContinueOnError)
	f.SetOutput(stderr)
	f.Usage = func() {
		fmt.Fprintf(stderr, "usage: crashsim %s\n\nflags:\n", synopsis)
		f.PrintDefaults()
	}
	return f
}

// parse parses args and rejects positional arguments.
func parse(f *flag.FlagSet, args []string) error {
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if f.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(f.Args(), " "))}
	}
	return nil
}

// loadConfig loads the monitor configuration named by -c, else by
// MONITOR_CONFIG; it returns nil when neither is given.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		path = os.Getenv("MONITOR_CONFIG")
	}
	if path == "" {
		return nil, nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}

// set reports whether the flag was given on the command line.
func set(f *flag.FlagSet, name string) bool {
	found := false
	f.Visit(func(fl *flag.Flag) { found = found || fl.Name == name })
	return found
}

// storeOptions are the crashstore options of a configuration (nil: the
// defaults) with the layout flag applied.
func storeOptions(cfg *config.Config, layout string) (crashstore.Options, error) {
	opts := crashstore.Options{GID: -1}
	if cfg != nil {
		opts = crashstore.Options{
			Layout:     crashstore.Layout(cfg.StorageLayout),
			JSONSuffix: cfg.JSONFileSuffix,
			DumpSuffix: cfg.DumpFileSuffix,
			DirPerm:    cfg.DirPermissions,
			FilePerm:   cfg.DumpPermissions,
			GID:        cfg.DumpGID,
		}
	}
	if layout != "" {
		opts.Layout = crashstore.Layout(layout)
	}
	switch opts.Layout {
	case "", crashstore.LayoutDaily, crashstore.LayoutFlat:
		return opts, nil
	}
	return opts, usageError{fmt.Errorf("unknown layout %q (want daily or flat)", layout)}
}
