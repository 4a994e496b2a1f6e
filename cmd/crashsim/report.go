package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/queue"
)

// cmdReport prints what happened to the crashes of a run, as name=value
// lines a shell can read (every value is an integer):
//
//	processors_live, processors_stale, processors_dead
//	jobs_waiting, jobs_started, jobs_succeeded, jobs_failed  rows in jobs now
//	priority_pending            rows in priorityjobs
//	inbox                       crashes still in the standard tree's inbox
//	archived_succeeded, archived_failed, archived  pairs in the archive trees
//	processed_succeeded, processed_failed, processed  archived + finished rows
//	queued                      processed + waiting + started
//	log_queued                  the scanner's "queued crashes" total in the monitor's log
//	log_priority_queued         crashes the priority loop queued, by the monitor's log
//
// The derived counts assume the archive trees hold this run's crashes only
// (as in the demo) and that cleanup archives rather than deletes.
func cmdReport(ctx context.Context, args []string, stdout io.Writer) error {
	f := newFlagSet("report", "report -c FILE [-monitor-log FILE]", os.Stderr)
	configPath := f.String("c", "", "monitor configuration (required)")
	logPath := f.String("monitor-log", "", "the monitor's log file (default: the configuration's logFilePathname)")
	if err := parse(f, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	if cfg == nil {
		return usageError{errors.New("no configuration: give -c FILE")}
	}

	pool, err := pgxpool.New(ctx, cfg.ConnString())
	if err != nil {
		return usageError{fmt.Errorf("database connection settings: %w", err)}
	}
	defer pool.Close()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := queue.NewStore(pool).Status(sctx, cfg.ProcessorCheckInTime)
	if err != nil {
		return err
	}

	var out []string
	add := func(name string, v int64) { out = append(out, name+"="+strconv.FormatInt(v, 10)) }
	states := map[string]int64{}
	for _, p := range st.Processors {
		states[p.State]++
	}
	add("processors_live", states[queue.ProcessorLive])
	add("processors_stale", states[queue.ProcessorStale])
	add("processors_dead", states[queue.ProcessorDead])
	add("jobs_waiting", st.Queued)
	add("jobs_started", st.Started)
	add("jobs_succeeded", st.Succeeded)
	add("jobs_failed", st.Failed)
	add("priority_pending", st.PriorityRequests)

	inbox, err := countInbox(ctx, crashstore.New(cfg.StorageRoot, crashstore.Options{
		Layout: crashstore.Layout(cfg.StorageLayout), JSONSuffix: cfg.JSONFileSuffix, DumpSuffix: cfg.DumpFileSuffix,
	}))
	if err != nil {
		return err
	}
	add("inbox", inbox)

	archivedOK, err := countFiles(cfg.SaveSuccessfulMinidumpsTo, cfg.DumpFileSuffix)
	if err != nil {
		return err
	}
	archivedFailed, err := countFiles(cfg.SaveFailedMinidumpsTo, cfg.DumpFileSuffix)
	if err != nil {
		return err
	}
	add("archived_succeeded", archivedOK)
	add("archived_failed", archivedFailed)
	add("archived", archivedOK+archivedFailed)
	add("processed_succeeded", archivedOK+st.Succeeded)
	add("processed_failed", archivedFailed+st.Failed)
	processed := archivedOK + st.Succeeded + archivedFailed + st.Failed
	add("processed", processed)
	add("queued", processed+st.Queued+st.Started)

	if *logPath == "" {
		*logPath = cfg.LogFilePathname
	}
	scanned, prioritized, err := countLogQueued(*logPath)
	if err != nil {
		return err
	}
	add("log_queued", scanned)
	add("log_priority_queued", prioritized)

	_, err = io.WriteString(stdout, strings.Join(out, "\n")+"\n")
	return err
}

// countInbox counts the entries of a tree's inbox (complete or not).
func countInbox(ctx context.Context, store *crashstore.Store) (int64, error) {
	var n int64
	err := store.Walk(ctx, func(crashstore.Entry) error {
		n++
		return nil
	})
	return n, err
}

// countFiles counts the files under dir whose name ends in suffix; a
// missing or empty dir counts none.
func countFiles(dir, suffix string) (int64, error) {
	if dir == "" {
		return 0, nil
	}
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() && strings.HasSuffix(d.Name(), suffix) {
			n++
		}
		return nil
	})
	return n, err
}

var (
	// scannerQueued matches the scanner's pass summary, in the classic
	// line format (queued=N) and in JSON ("queued":N).
	scannerQueued = regexp.MustCompile(`queued crashes.*?\bqueued"?[=:](\d+)`)
	// priorityQueued matches the priority loop's line for a crash it
	// queued itself (found in the standard or deferred tree rather than
	// already queued).
	priorityQueued = regexp.MustCompile(`priority crash queued[\s"]`)
)

// countLogQueued sums the scanner's queued counts and counts the priority
// loop's queuings in a monitor log file; a missing file counts nothing.
func countLogQueued(path string) (scanned, prioritized int64, err error) {
	if path == "" {
		return 0, 0, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if m := scannerQueued.FindStringSubmatch(line); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			scanned += n
			continue
		}
		if priorityQueued.MatchString(line) {
			prioritized++
		}
	}
	return scanned, prioritized, sc.Err()
}
