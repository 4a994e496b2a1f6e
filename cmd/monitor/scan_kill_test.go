package main

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
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
	cfg, path := newConfig(t, testkit.SchemaURL(t, pool))
	cfg["processorCheckInTime"] = "01:00:00" // the processors below stay live throughout
	cfg.Write(t, path)
	testkit.LiveProcessors(t, pool, 3)

	crashes := crashstore.New(cfg["storageRoot"], crashstore.Options{GID: -1})
	entries := writePairs(t, crashes, pairs)

	jobs := func() int { return countJobs(t, pool) }
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
		within := testkit.WaitTimeout()
		if round%2 == 1 {
			target = pairs + 1
			within = time.Duration(rng.IntN(1500)) * time.Millisecond
		}
		d := startDaemon(t, path, cfg["logFilePathname"])
		d.RunUntil(t, within, func() bool { return jobs() >= target })
		d.Kill(t)
		t.Logf("round %d: killed with %d of %d jobs queued", round, jobs(), pairs)
	}

	// The last run logs to a file of its own: the killed runs' log may
	// rotate (1 MiB) as it starts, taking their lines with it.
	cfg["logFilePathname"] = filepath.Join(filepath.Dir(path), "final.log")
	cfg.Write(t, path)
	d := startDaemon(t, path, cfg["logFilePathname"])
	// Wait for its signal handlers before the SIGTERM below, even when the
	// killed runs left nothing to do.
	d.WaitLog(t, "monitor started", 1)
	if !testkit.Poll(t, 3*testkit.WaitTimeout(), func() bool { return jobs() >= pairs && inboxLinks(t, cfg["storageRoot"]) == 0 }) {
		t.Fatalf("after the restarts: %d jobs (want %d), %d inbox links left",
			jobs(), pairs, inboxLinks(t, cfg["storageRoot"]))
	}
	stopDaemon(t, d)

	got := testkit.QueryColumn[string](t, pool, "SELECT uuid FROM jobs ORDER BY uuid")
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
	pairs := make([]testkit.Pair, n)
	start := time.Now().UTC().Add(-time.Hour)
	for i := range pairs {
		id := fmt.Sprintf("%08x-4b1d-4e1f-9a5c-0000%02d%s", i, 2, start.Format("060102"))
		at := start.Add(time.Duration(i) * time.Hour / time.Duration(n))
		pairs[i] = testkit.Pair{ID: id, Webhead: fmt.Sprintf("web%d", i%2), At: at, Dump: []byte(id), JSON: []byte(id)}
	}
	return testkit.WritePairs(t, crashes, nil, pairs...)
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
