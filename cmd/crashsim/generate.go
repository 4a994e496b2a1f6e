package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/crashgen"
)

// cmdGenerate writes crashes into a storage tree as a collector does.
func cmdGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlagSet("generate", "generate [-c FILE [-deferred] | -root DIR] [-n N] [flags]", stderr)
	configPath := f.String("c", "", "monitor configuration: the tree is its storageRoot (or deferredStorageRoot with -deferred), with its layout, suffixes and modes")
	deferred := f.Bool("deferred", false, "with -c: write into deferredStorageRoot instead of storageRoot")
	root := f.String("root", "", "the storage tree to write into (overrides -c)")
	layout := f.String("layout", "", "daily or flat (default: the configuration's, else daily)")
	n := f.Int("n", 1000, "number of crashes")
	dumpSize := f.Int("dump-size", 1024, "dump file size in bytes")
	webheads := f.String("webheads", crashgen.DefaultWebhead, "comma-separated collector host names, used in turn")
	date := f.String("date", "", "crash date written in the ids, YYYY-MM-DD (default: the submission date)")
	submitted := f.String("submitted", "", "submission time of the last crash, RFC 3339 or YYYY-MM-DD (default: now)")
	spread := f.Duration("spread", 0, "spread the submission times evenly over this long before -submitted")
	depth := f.Int("depth", crashgen.DefaultDepth, "name-branch depth digit of the ids (1-4)")
	seed := f.Uint64("seed", 0, "seed of the ids; the same seed writes the same ids (default: random)")
	workers := f.Int("workers", 0, "writing goroutines (default: 4 per CPU, at least 4)")
	idsPath := f.String("ids", "", "write the generated crash ids to this file, one a line, in submission order (- for stdout)")
	if err := parse(f, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	opts, err := storeOptions(cfg, *layout)
	if err != nil {
		return err
	}
	dir := *root
	if dir == "" && cfg != nil {
		dir = cfg.StorageRoot
		if *deferred {
			dir = cfg.DeferredStorageRoot
			if dir == "" {
				return usageError{fmt.Errorf("-deferred: the configuration has no deferredStorageRoot")}
			}
		}
	}
	if dir == "" {
		return usageError{fmt.Errorf("no tree to write into: give -root DIR or -c FILE")}
	}

	genOpts := crashgen.Options{
		Count: *n, DumpSize: *dumpSize, Spread: *spread, Depth: *depth, Seed: *seed, Workers: *workers,
	}
	for _, w := range strings.Split(*webheads, ",") {
		if w = strings.TrimSpace(w); w != "" {
			genOpts.Webheads = append(genOpts.Webheads, w)
		}
	}
	if *date != "" {
		if genOpts.CrashDate, err = time.Parse(time.DateOnly, *date); err != nil {
			return usageError{fmt.Errorf("-date: %w", err)}
		}
	}
	if *submitted != "" {
		if genOpts.Submitted, err = parseTime(*submitted); err != nil {
			return usageError{fmt.Errorf("-submitted: %w", err)}
		}
	}
	g, err := crashgen.New(genOpts)
	if err != nil {
		return usageError{err}
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	store := crashstore.New(dir, opts)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := g.Write(ctx, store)
	fmt.Fprintf(stderr, "wrote %d crash pairs (%d-byte dumps, %s layout, seed %d) into %s in %s: %.0f pairs/s\n",
		res.Written, *dumpSize, store.Layout(), g.Options().Seed, store.Root(), res.Elapsed.Round(time.Millisecond), res.PairsPerSecond())
	if err != nil {
		return err
	}
	if *idsPath != "" {
		return writeIDs(*idsPath, stdout, g)
	}
	return nil
}

// parseTime parses an RFC 3339 time or a date (midnight UTC).
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}

// writeIDs writes the generated ids, one a line, to path (- for stdout).
func writeIDs(path string, stdout io.Writer, g *crashgen.Generator) (err error) {
	out := stdout
	if path != "-" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
		out = f
	}
	w := bufio.NewWriter(out)
	for i := range g.Options().Count {
		w.WriteString(g.ID(i))
		w.WriteByte('\n')
	}
	return w.Flush()
}
