package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
)

// cleanupPair is a finished crash of the end-to-end cleanup tests.
type cleanupPair struct {
	id         string
	success    bool
	dump, json []byte
}

// writeFinishedPairs writes n pairs as a collector does and removes their
// inbox links as the scanner does once they are queued; every tenth goes to
// the deferred tree. Each file's content is distinct and of its own size.
// Then it inserts their finished jobs: two in three succeeded.
func writeFinishedPairs(t *testing.T, pool *pgxpool.Pool, std, deferred *crashstore.Store, n int) []cleanupPair {
	t.Helper()
	pairs := make([]cleanupPair, n)
	day := time.Now().UTC().AddDate(0, 0, -1)
	var toStd, toDeferred []testkit.Pair
	var ok, ko []string
	for i := range pairs {
		id := fmt.Sprintf("%08x-c1ea-4e1f-9a5c-0000%02d%s", uint32(i)*2654435761, 2, day.Format("060102"))
		p := cleanupPair{
			id:      id,
			success: i%3 != 0,
			dump:    bytes.Repeat([]byte("dump "+id+"\n"), 1+i%50),
			json:    []byte(`{"uuid": "` + id + `", "n": ` + fmt.Sprint(i) + `}`),
		}
		pairs[i] = p
		written := testkit.Pair{ID: id, At: day, Dump: p.dump, JSON: p.json}
		if i%10 == 9 {
			toDeferred = append(toDeferred, written)
		} else {
			toStd = append(toStd, written)
		}
		if p.success {
			ok = append(ok, id)
		} else {
			ko = append(ko, id)
		}
	}
	queued := &testkit.PairOpts{Fresh: true, Queued: true}
	testkit.WritePairs(t, std, queued, toStd...)
	testkit.WritePairs(t, deferred, queued, toDeferred...)
	testkit.Jobs(t, pool, testkit.Succeeded, 0, ok...)
	testkit.Jobs(t, pool, testkit.Failed, 0, ko...)
	return pairs
}

func countJobs(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	return testkit.QueryInt(t, pool, "SELECT count(*) FROM jobs")
}

// TestRunKilledDuringCleanup kills `monitor run` with SIGKILL while it
// archives 3000 finished pairs, at random moments, restarts it each time,
// and checks that in the end every job row is gone and every pair is in the
// archive of its verdict exactly once, byte for byte, with nothing left in
// the source trees and no temporary file anywhere.
func TestRunKilledDuringCleanup(t *testing.T) {
	t.Parallel()
	const n = 3000
	pool := pgtest.Schema(t)
	cfg, path := newConfig(t, testkit.SchemaURL(t, pool))
	cfg["cleanupJobsLoopDelay"] = "1"
	cfg.Write(t, path)
	std := crashstore.New(cfg["storageRoot"], crashstore.Options{GID: -1})
	deferred := crashstore.New(cfg["deferredStorageRoot"], crashstore.Options{GID: -1})
	pairs := writeFinishedPairs(t, pool, std, deferred, n)

	archived := func() int {
		return len(testkit.Files(t, cfg["saveSuccessfulMinidumpsTo"])) + len(testkit.Files(t, cfg["saveFailedMinidumpsTo"]))
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	killedMidway := 0
	for round := range 4 {
		before := archived()
		if before >= 2*n {
			break
		}
		// The first round kills as soon as the first batch's rows are
		// deleted, so in the middle of the second batch's disk work; even
		// rounds once a random share of what is left is in the archive
		// (between the renames of a pair, between a batch's disk work and
		// its rows' deletion); odd rounds after a random time (anywhere:
		// start-up, a query, a batch).
		target := before + 1 + rng.IntN(2*n-before)
		within := 3 * testkit.WaitTimeout()
		if round%2 == 1 {
			target = 2*n + 1
			within = time.Duration(200+rng.IntN(1500)) * time.Millisecond
		}
		done := func() bool { return archived() >= target }
		if round == 0 {
			done = func() bool { return countJobs(t, pool) < n }
		}
		d := startDaemon(t, path, cfg["logFilePathname"])
		d.RunUntil(t, within, done)
		d.Kill(t)
		files, rows := archived(), countJobs(t, pool)
		if files < 2*n && rows > 0 {
			killedMidway++
		}
		t.Logf("round %d: killed with %d of %d files archived, %d rows left", round, files, 2*n, rows)
	}
	if killedMidway == 0 {
		t.Log("no kill landed in the middle of the cleanup (it was too fast); the restart is still checked")
	}

	// The last run logs to a file of its own: the killed runs' log may
	// rotate (1 MiB) as it starts, taking their lines with it.
	cfg["logFilePathname"] = filepath.Join(filepath.Dir(path), "final.log")
	cfg.Write(t, path)
	d := startDaemon(t, path, cfg["logFilePathname"])
	d.WaitLog(t, "monitor started", 1)
	if !testkit.Poll(t, 3*testkit.WaitTimeout(), func() bool { return countJobs(t, pool) == 0 }) {
		t.Fatalf("after the restarts: %d rows left\n%s", countJobs(t, pool), d.LogText())
	}
	stopDaemon(t, d)

	checkCleanupArchives(t, cfg, pairs)
	for _, root := range []string{cfg["storageRoot"], cfg["deferredStorageRoot"]} {
		if files := testkit.Files(t, root); len(files) > 0 {
			t.Errorf("%d files left in %s, e.g. %s", len(files), root, files[0])
		}
	}
	if log := d.LogText(); strings.Contains(log, "will be retried") || strings.Contains(log, "not found for cleanup") {
		t.Errorf("the restarts logged failures or lost crashes:\n%s", log)
	}
}

// checkCleanupArchives checks that the two archives hold exactly the pairs,
// each in the archive of its verdict, once, byte for byte.
func checkCleanupArchives(t *testing.T, cfg testkit.Config, pairs []cleanupPair) {
	t.Helper()
	want := map[string][]string{}
	for _, p := range pairs {
		root := cfg["saveFailedMinidumpsTo"]
		if p.success {
			root = cfg["saveSuccessfulMinidumpsTo"]
		}
		day, _ := crashstore.IDDate(p.id)
		base := filepath.Join(root, day.Format("20060102"), "name", p.id[:2], p.id[2:4], p.id)
		want[root] = append(want[root], base+".dump", base+".json")
		for _, f := range []struct {
			path string
			data []byte
		}{{base + ".dump", p.dump}, {base + ".json", p.json}} {
			got, err := os.ReadFile(f.path)
			if err != nil {
				t.Errorf("%s: %v", p.id, err)
			} else if !bytes.Equal(got, f.data) {
				t.Errorf("%s differs from what the collector wrote", f.path)
			}
		}
	}
	for root, files := range want {
		got := testkit.Files(t, root)
		for i := range got {
			got[i] = filepath.Join(root, got[i])
		}
		slices.Sort(got)
		slices.Sort(files)
		if !slices.Equal(got, files) {
			t.Errorf("%s holds %d files, want exactly the %d archived ones", root, len(got), len(files))
		}
	}
}

// TestRunCleanupStatus: a finished job whose archive directory is blocked by
// a file is reported by `monitor run` and shown by `monitor status` (text
// and JSON) as a failing cleanup; the other finished job is archived.
func TestRunCleanupStatus(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	cfg, path := newConfig(t, testkit.SchemaURL(t, pool))
	cfg.Write(t, path)
	std := crashstore.New(cfg["storageRoot"], crashstore.Options{GID: -1})
	const blocked, fine = "4dd21cc0-49d9-46ae-a42b-fadb42090928", "0bba929f-8721-460c-dead-a43c20071025"
	testkit.WritePairs(t, std, &testkit.PairOpts{Fresh: true, Queued: true}, testkit.Pair{ID: blocked}, testkit.Pair{ID: fine})
	testkit.Jobs(t, pool, testkit.Succeeded, 0, blocked, fine)
	inTheWay := filepath.Join(cfg["saveSuccessfulMinidumpsTo"], "20090928")
	if err := os.MkdirAll(filepath.Dir(inTheWay), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inTheWay, []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}

	d := startDaemon(t, path, cfg["logFilePathname"])
	d.WaitLog(t, "cleanup of a finished job failed; it will be retried", 1)
	d.WaitLog(t, "INFO - cleanup - cleaned up finished jobs archived=1", 1)
	stopDaemon(t, d)
	if log := d.LogText(); !strings.Contains(log, "uuid="+blocked) || !strings.Contains(log, inTheWay) {
		t.Errorf("the failure is not logged with its crash and path:\n%s", log)
	}

	r := runMonitor(t, "status", "-c", path)
	if r.code != 0 {
		t.Fatalf("status: code %d, stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{"cleanups failing: 1", blocked + "  1 attempt(s)", inTheWay, "jobs: 0 queued, 0 started, 1 succeeded"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runMonitor(t, "status", "-c", path, "--json")
	var st figures.Report
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 {
		t.Fatalf("status --json: code %d, %v:\n%s", r.code, err, r.stdout)
	}
	if st.Cleanup.Failing != 1 || len(st.Cleanup.Recent) != 1 || st.Cleanup.Recent[0].UUID != blocked ||
		st.Cleanup.Recent[0].Attempts != 1 || !strings.Contains(st.Cleanup.Recent[0].LastError, inTheWay) ||
		st.Cleanup.Recent[0].RetryInSeconds <= 0 {
		t.Errorf("status --json cleanup = %+v", st.Cleanup)
	}
}
