// Command monitor keeps a Socorro-style crash processing pipeline moving: it
// queues new crash pairs as jobs for live processors, answers priority
// requests and archives finished pairs. This package is the process: flags,
// subcommands, signals and exit codes; the running daemon is package app.
// See the README for the operator's manual.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Exit codes of every subcommand, as the README's command table lists them.
const (
	exitOK      = 0
	exitFailure = 1 // a runtime error: the database, the filesystem
	exitUsage   = 2 // a bad config, a malformed argument or crash id
)

// exitError carries the exit code a failure maps to. A logged error has
// already been written to the log (whose stderr handler shows it), so it is
// not printed again.
type exitError struct {
	code   int
	err    error
	logged bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError is a failure that exits 2: bad config, bad arguments.
func usageError(err error) error { return &exitError{code: exitUsage, err: err} }

const usage = `usage: monitor <command> [flags]

commands:
  run          --config FILE          run the daemon until SIGTERM or SIGINT
  migrate      --config FILE          create or upgrade the jobs database schema
  check-config --config FILE          validate the configuration and print it
  status       --config FILE [--json] show processors, jobs and priority requests
  prioritize   --config FILE UUID...  request priority processing of crash ids
  version                             print version and build information

-c FILE is the same as --config FILE; MONITOR_CONFIG names the file when
neither is given. Every key can be overridden by MONITOR_<KEY in upper case>.
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one subcommand and returns the process exit code. It takes its
// context, arguments and writers as parameters so tests can drive it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, args := args[0], args[1:]
	var err error
	switch cmd {
	case "run":
		err = cmdRun(ctx, args, stderr)
	case "migrate":
		err = cmdMigrate(ctx, args, stdout)
	case "check-config":
		err = cmdCheckConfig(args, stdout, stderr)
	case "status":
		err = cmdStatus(ctx, args, stdout)
	case "prioritize":
		err = cmdPrioritize(ctx, args, stdout)
	case "version":
		err = cmdVersion(args, stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "monitor: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	code, logged := exitFailure, false
	if ee, ok := errors.AsType[*exitError](err); ok {
		code, logged = ee.code, ee.logged
	}
	if !logged {
		fmt.Fprintf(stderr, "monitor %s: %v\n", cmd, err)
	}
	return code
}

// flags is a subcommand's flag set with the --config/-c flag every command
// except version has.
type flags struct {
	*flag.FlagSet
	config string
}

func newFlags(name string) *flags {
	f := &flags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.SetOutput(io.Discard) // errors are reported once, by run
	f.StringVar(&f.config, "config", "", "configuration file")
	f.StringVar(&f.config, "c", "", "configuration file (same as --config)")
	return f
}

// parse parses args, allowing flags after positional arguments
// ("prioritize ID -c FILE"), and returns the positional arguments.
func (f *flags) parse(args []string) ([]string, error) {
	var positional []string
	for {
		if err := f.Parse(args); err != nil {
			return nil, usageError(err)
		}
		rest := f.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// configPath is the file named by --config, else by MONITOR_CONFIG.
func (f *flags) configPath() (string, error) {
	if f.config != "" {
		return f.config, nil
	}
	if p := os.Getenv("MONITOR_CONFIG"); p != "" {
		return p, nil
	}
	return "", usageError(errors.New("no configuration file: use --config FILE (or set MONITOR_CONFIG)"))
}

// noArgs rejects positional arguments for commands that take none.
func noArgs(positional []string) error {
	if len(positional) > 0 {
		return usageError(fmt.Errorf("unexpected arguments: %s", strings.Join(positional, " ")))
	}
	return nil
}
