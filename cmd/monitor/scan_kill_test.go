package main

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/pgtest"
)

// TestRunKilledDuringScan kills `monitor run` with SIGKILL at random moments
// of a large scan, restarts it each time, and checks that in the end every
// pair has exactly one job, no inbox (date) link is left, and no file was
// touched:
// the commit-then-unlink order leaves each pair queued or in the inbox at any
// instant, and a restart finishes what the killed run left.
func TestRunKilledDuringScan(t *testing.T) {
	t.Parallel()
	const pairs = 12000
	pool := pgtest.Schema(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "monitor.yaml")
	cfg := baseConfig(dir, schemaURL(t, pool))
	cfg["processorCheckInTime"] = "01:00:00" // the processors below stay live throughout
	cfg.write(t, path)
	if _, err := pool.Exec(t.Context(), `INSERT INTO processors (name, startdatetime, lastseendatetime)
		SELECT 'p' || i, localtimestamp, localtimestamp FROM generate_series(1, 3) i`); err != nil {
		t.Fatal(err)
	}

	crashes := crashstore.New(cfg["storageRoot"], crashstore.Options{GID: -1})
	entries := writePairs(t, crashes, pairs)

	jobs := func() int {
		var n int
		if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM jobs").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	for round := range 4 {
		before := jobs()
		if before == pairs {
			break
		}
		// Even rounds kill as soon as the run has committed a random share
		// of what is left, so between a commit and its link removals; odd
		// rounds after a random time, so anywhere (start-up, mid-walk,
		// mid-transaction, mid-removal).
		target := before + 1 + rng.IntN(pairs-before)
		until := time.Now().Add(waitTimeout())
		if round%2 == 1 {
			target = pairs + 1
			until = time.Now().Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
		}
		d := startDaemon(t, path, cfg["logFilePathname"])
		for jobs() < target && time.Now().Before(until) {
			select {
			case <-d.done:
				t.Fatalf("monitor exited (code %d) during the scan; stderr:\n%s", d.code, d.stderrText())
			case <-time.After(time.Millisecond):
			}
		}
		if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-d.done
		t.Logf("round %d: killed with %d of %d jobs queued", round, jobs(), pairs)
	}

	logSoFar, _ := os.ReadFile(cfg["logFilePathname"])
	started := strings.Count(string(logSoFar), "monitor started")
	d := startDaemon(t, path, cfg["logFilePathname"])
	// Wait for its signal handlers before the SIGTERM below, even when the
	// killed runs left nothing to do.
	d.waitLog(t, "monitor started", started+1)
	deadline := time.Now().Add(3 * waitTimeout())
	for jobs() < pairs || inboxLinks(t, cfg["storageRoot"]) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after the restarts: %d jobs (want %d), %d inbox links left",
				jobs(), pairs, inboxLinks(t, cfg["storageRoot"]))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code = %d, want 0; stderr:\n%s", code, d.stderrText())
	}

	rows, err := pool.Query(t.Context(), "SELECT uuid FROM jobs ORDER BY uuid")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := make([]string, 0, len(entries))
	for _, e := range entries {
		want = append(want, e.ID)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%d jobs for %d pairs; the job ids are not exactly the pair ids", len(got), len(want))
	}
	nameLinks := 0
	for _, e := range entries {
		// A kill between an entry's two link removals leaves its name link
		// (the date link goes first): no walk reads it, and cleanup removes
		// it with the pair.
		if _, err := os.Lstat(e.NameLink); err == nil {
			nameLinks++
		}
		for _, p := range []string{e.JSONPath, e.DumpPath} {
			if b, err := os.ReadFile(p); err != nil || string(b) != e.ID {
				t.Errorf("%s: %q, %v; want the file untouched", p, b, err)
			}
		}
	}
	t.Logf("%d name links left by kills between an entry's two link removals", nameLinks)
}

// writePairs writes n complete pairs as a collector does, submitted over the
// past hour by two webheads, each file holding its crash id. The files are
// aged past the scanner's settle time.
func writePairs(t *testing.T, crashes *crashstore.Store, n int) []crashstore.Entry {
	t.Helper()
	entries := make([]crashstore.Entry, n)
	start := time.Now().UTC().Add(-time.Hour)
	old := time.Now().Add(-time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				id := fmt.Sprintf("%08x-4b1d-4e1f-9a5c-0000%02d%s", i, 2, start.Format("060102"))
				at := start.Add(time.Duration(i) * time.Hour / time.Duration(n))
				e, err := crashes.NewEntry(id, fmt.Sprintf("web%d", i%2), at, []byte(id), []byte(id))
				if err == nil {
					err = os.Chtimes(e.JSONPath, old, old)
				}
				if err == nil {
					err = os.Chtimes(e.DumpPath, old, old)
				}
				if err != nil {
					errs <- err
					return
				}
				entries[i] = e
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	return entries
}

// inboxLinks counts the links left in the date branches of a daily tree.
func inboxLinks(t *testing.T, root string) int {
	t.Helper()
	n := 0
	dates, _ := filepath.Glob(filepath.Join(root, "*", "date"))
	for _, d := range dates {
		err := filepath.WalkDir(d, func(_ string, de fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // pruned by the running monitor meanwhile
			}
			if err != nil {
				return err
			}
			if de.Type()&fs.ModeSymlink != 0 {
				n++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return n
}
