package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/bench"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

// priorityFixture is a schema with live processors (each with its
// priority_jobs table) and a config for `monitor run` whose
// priorityLoopDelay is the default minute.
type priorityFixture struct {
	pool               *pgxpool.Pool
	path               string
	cfg                testkit.Config
	standard, deferred *crashstore.Store
	procs              []int64
}

func newPriorityFixture(t *testing.T, processors int) *priorityFixture {
	t.Helper()
	pool := pgtest.Schema(t)
	cfg, path := newConfig(t, testkit.SchemaURL(t, pool))
	f := &priorityFixture{pool: pool, path: path, cfg: cfg}
	f.cfg["priorityLoopDelay"] = "00:01:00"
	f.cfg.Write(t, f.path)
	f.standard = crashstore.New(f.cfg["storageRoot"], crashstore.Options{GID: -1})
	f.deferred = crashstore.New(f.cfg["deferredStorageRoot"], crashstore.Options{GID: -1})
	f.procs = testkit.LiveProcessors(t, pool, processors)
	testkit.PriorityTables(t, pool, f.procs...)
	return f
}

// put writes a settled pair (files an hour old) into s, submitted at.
func (f *priorityFixture) put(t *testing.T, s *crashstore.Store, id string, at time.Time) crashstore.Entry {
	t.Helper()
	return testkit.WritePairs(t, s, nil, testkit.Pair{ID: id, Webhead: "webhead01", At: at})[0]
}

// told reports whether id has a job with priority 1 or more that is
// waiting in its owner's priority_jobs table.
func (f *priorityFixture) told(t *testing.T, id string) bool {
	t.Helper()
	var owner, prio int64
	err := f.pool.QueryRow(t.Context(), `SELECT owner, coalesce(priority, 0) FROM jobs WHERE uuid = $1`, id).Scan(&owner, &prio)
	if err == pgx.ErrNoRows {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	var pending bool
	table := pgx.Identifier{fmt.Sprintf("priority_jobs_%d", owner)}.Sanitize()
	if err := f.pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT FROM `+table+` WHERE uuid = $1)`, id).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	return prio >= 1 && pending
}

// TestRunResolvesPriorityRequests: with priorityLoopDelay at its default
// minute, `monitor prioritize` of a crash in the standard tree and one in
// the deferred tree gets both queued with priority 1 and into their owners'
// priority tables within seconds: the NOTIFY wakes the loop.
func TestRunResolvesPriorityRequests(t *testing.T) {
	t.Parallel()
	f := newPriorityFixture(t, 2)
	now := time.Now().UTC()
	const (
		stdID = "4dd21cc0-49d9-46ae-a42b-fadb42090928"
		defID = "29adfb61-f75b-11dc-b6be-001320081225"
	)
	std := f.put(t, f.standard, stdID, now.Add(-time.Hour))
	// Out of the inbox, so that the scanner cannot queue it first and only
	// the priority loop's lookup in the standard tree can.
	if err := f.standard.RemoveLinks(std); err != nil {
		t.Fatal(err)
	}
	def := f.put(t, f.deferred, defID, time.Date(2008, 12, 25, 5, 0, 0, 0, time.UTC))

	d := startDaemon(t, f.path, f.cfg["logFilePathname"])
	d.WaitLog(t, "listening for priority requests", 1)
	d.WaitLog(t, "priority - priority pass", 2) // the first pass and the one after listening

	if r := runMonitor(t, "prioritize", "-c", f.path, stdID, defID); r.code != 0 {
		t.Fatalf("prioritize: code %d, stderr %q", r.code, r.stderr)
	}
	// WaitTimeout is well under the minute's delay.
	if !testkit.Poll(t, testkit.WaitTimeout(), func() bool { return f.told(t, stdID) && f.told(t, defID) }) {
		t.Fatalf("requests not resolved within %s:\n%s", testkit.WaitTimeout(), d.LogText())
	}
	if left := testkit.QueryInt(t, f.pool, `SELECT count(*) FROM priorityjobs`); left != 0 {
		t.Errorf("%d requests left", left)
	}
	if _, err := os.Lstat(def.DateLink); err == nil {
		t.Errorf("the deferred crash's inbox link remains")
	}
	for _, p := range []string{std.JSONPath, std.DumpPath, def.JSONPath, def.DumpPath} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("crash file moved or deleted: %v", err)
		}
	}
	stopDaemon(t, d)
	log := d.LogText()
	for _, want := range []string{"priority crash queued uuid=" + stdID + " tree=standard", "priority crash queued uuid=" + defID + " tree=deferred"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// TestMeasurePriorityLatency measures, through `monitor run` (built without
// the race detector) with priorityLoopDelay 00:01:00, how long 1,000
// priority requests inserted one at a time take to be resolved: half for
// crashes in the deferred tree (looked up on disk, queued with priority),
// half for crashes the scanner has already queued (priority raised, owner
// told). Set MONITOR_MEASURE=1 to run it; the target is 100 ms at p99.
func TestMeasurePriorityLatency(t *testing.T) {
	if os.Getenv("MONITOR_MEASURE") != "1" {
		t.Skip("set MONITOR_MEASURE=1 to measure the priority latency")
	}
	const n = 1000
	f := newPriorityFixture(t, 2)
	bin := filepath.Join(t.TempDir(), "monitor")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build monitor: %v", err)
	}

	at := time.Now().UTC().Add(-time.Hour)
	var queued, deferred []string
	for i := range n / 2 {
		// Ooids: depth digit 2, then the crash date.
		id := fmt.Sprintf("%08x-0000-4000-8000-000002%s", i, at.Format("060102"))
		f.put(t, f.standard, id, at)
		queued = append(queued, id)
		id = fmt.Sprintf("%08x-1111-4000-8000-000002%s", i, at.Format("060102"))
		f.put(t, f.deferred, id, at)
		deferred = append(deferred, id)
	}

	d := testkit.StartProc(t, bin, f.cfg["logFilePathname"], "run", "-c", f.path)
	d.WaitLog(t, "listening for priority requests", 1)
	jobs := func() int { return testkit.QueryInt(t, f.pool, `SELECT count(*) FROM jobs`) }
	if !testkit.Poll(t, time.Minute, func() bool { return jobs() == n/2 }) {
		t.Fatalf("the scanner queued %d of %d crashes", jobs(), n/2)
	}

	var ids []string
	for i := range n / 2 {
		ids = append(ids, deferred[i], queued[i])
	}
	ds, err := bench.MeasurePriorityLatency(t.Context(), queue.NewStore(f.pool), bench.NewDB(f.pool), ids, 500*time.Microsecond)
	if err != nil {
		t.Fatal(err)
	}
	var onDisk, inQueue []time.Duration
	for i, d := range ds {
		if i%2 == 0 {
			onDisk = append(onDisk, d)
		} else {
			inQueue = append(inQueue, d)
		}
	}
	report := func(name string, ds []time.Duration) {
		t.Logf("%-28s n=%d p50=%v p99=%v max=%v", name, len(ds),
			bench.Percentile(ds, 50).Round(10*time.Microsecond),
			bench.Percentile(ds, 99).Round(10*time.Microsecond),
			slices.Max(ds).Round(10*time.Microsecond))
	}
	report("all requests", ds)
	report("deferred tree (queued)", onDisk)
	report("already queued (raised)", inQueue)
	if p99 := bench.Percentile(ds, 99); p99 > 100*time.Millisecond {
		t.Errorf("p99 = %v, want at most 100ms", p99)
	}
	for _, id := range ids {
		if !f.told(t, id) {
			t.Errorf("%s not queued with priority and told", id)
			break
		}
	}
	stopDaemon(t, d)
}
