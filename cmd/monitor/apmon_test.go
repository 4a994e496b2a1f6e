package main

import (
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/apmon"
	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
)

// monALISA is a MonALISA service stand-in on a loopback UDP port: it keeps
// every datagram it receives.
type monALISA struct{ *testkit.UDP }

func newMonALISA(t *testing.T) *monALISA { return &monALISA{testkit.ListenUDP(t)} }

// addr is the service's host:port.
func (m *monALISA) addr() string { return m.Addr() }

// datagrams returns what arrived so far, decoded (undecodable ones left
// out: checkStream reports them).
func (m *monALISA) datagrams() []apmon.Datagram {
	got, _, _ := m.decoded()
	return got
}

// decoded returns what arrived, decoded, with the size of each, and the
// errors of those that could not be decoded.
func (m *monALISA) decoded() (got []apmon.Datagram, size []int, bad []error) {
	for _, b := range m.Datagrams() {
		d, err := apmon.Decode(b)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		got, size = append(got, d), append(size, len(b))
	}
	return got, size, bad
}

// reports returns the datagrams of cluster, in order of arrival.
func (m *monALISA) reports(cluster string) []apmon.Datagram {
	var out []apmon.Datagram
	for _, d := range m.datagrams() {
		if d.Cluster == cluster {
			out = append(out, d)
		}
	}
	return out
}

// checkStream checks what arrived: every datagram readable and within
// 1,439 bytes, numbered 1, 2, 3... in order, from one instance, with the
// destination's password and the version that makes MonALISA read the
// numbers. It returns the instance id.
func (m *monALISA) checkStream(t *testing.T, password string) int32 {
	t.Helper()
	got, size, bad := m.decoded()
	if len(bad) > 0 {
		t.Errorf("%s: undecodable datagrams: %v", m.addr(), bad)
	}
	if len(got) == 0 {
		t.Fatalf("%s: nothing received", m.addr())
	}
	for i, d := range got {
		if size[i] > apmon.MaxDatagram {
			t.Errorf("%s: datagram %d is %d bytes", m.addr(), i, size[i])
		}
		if d.Seq != int32(i+1) {
			t.Fatalf("%s: datagram %d has sequence number %d, want %d", m.addr(), i, d.Seq, i+1)
		}
		if d.InstanceID != got[0].InstanceID {
			t.Errorf("%s: datagram %d from instance %d, the first from %d", m.addr(), i, d.InstanceID, got[0].InstanceID)
		}
		if d.Password != password || d.Version != apmon.Version || d.Time == 0 {
			t.Errorf("%s: datagram %d: password %q, version %q, time %d", m.addr(), i, d.Password, d.Version, d.Time)
		}
	}
	return got[0].InstanceID
}

// writeApMonConfig writes cfg with apmonDestinations as a YAML list, in one
// rename, so that a watching monitor never reads half of it.
func writeApMonConfig(t *testing.T, path string, cfg testkit.Config, dests ...string) {
	t.Helper()
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(cfg)) {
		fmt.Fprintf(&b, "%s: %q\n", k, cfg[k])
	}
	b.WriteString("apmonDestinations:\n")
	for _, d := range dests {
		fmt.Fprintf(&b, "  - %q\n", d)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// apmonCounts is what a report's monitor figures should be: the counts of
// the database, read as the contract defines them.
type apmonCounts map[string]int32

// dbCounts reads the report's database figures straight from the tables,
// and the age of the oldest queued job.
func dbCounts(t *testing.T, pool *pgxpool.Pool, checkIn time.Duration) (apmonCounts, float64) {
	t.Helper()
	c := apmonCounts{}
	var q, s, ok, ko, live, stale, dead, prio int32
	var age float64
	err := pool.QueryRow(t.Context(), `
SELECT (SELECT count(*) FROM jobs WHERE success IS NULL AND starteddatetime IS NULL),
       (SELECT count(*) FROM jobs WHERE success IS NULL AND starteddatetime IS NOT NULL),
       (SELECT count(*) FROM jobs WHERE success),
       (SELECT count(*) FROM jobs WHERE NOT success),
       (SELECT count(*) FROM processors WHERE lastseendatetime >= localtimestamp - $1::interval),
       (SELECT count(*) FROM processors WHERE lastseendatetime < localtimestamp - $1::interval
                                          AND lastseendatetime >= localtimestamp - 2 * $1::interval),
       (SELECT count(*) FROM processors WHERE lastseendatetime IS NULL OR lastseendatetime < localtimestamp - 2 * $1::interval),
       (SELECT count(*) FROM priorityjobs),
       coalesce((SELECT extract(epoch FROM localtimestamp - min(queueddatetime))::float8
                 FROM jobs WHERE success IS NULL AND starteddatetime IS NULL), 0)`,
		checkIn).Scan(&q, &s, &ok, &ko, &live, &stale, &dead, &prio, &age)
	if err != nil {
		t.Fatal(err)
	}
	c["jobs_queued"], c["jobs_started"], c["jobs_succeeded"], c["jobs_failed"] = q, s, ok, ko
	c["processors_live"], c["processors_stale"], c["processors_dead"] = live, stale, dead
	c["priority_requests_pending"] = prio
	return c, age
}

// pendingByName reads each processor's unfinished jobs.
func pendingByName(t *testing.T, pool *pgxpool.Pool) map[string]int32 {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
SELECT p.name, count(j.id)::int FROM processors p LEFT JOIN jobs j ON j.owner = p.id AND j.success IS NULL GROUP BY p.name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]int32{}
	for rows.Next() {
		var name string
		var n int32
		if err := rows.Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		m[name] = n
	}
	return m
}

// reportParams are the parameters of the monitor's own report and their
// types: counts int32, ages and rates double.
func reportParams() map[string]apmon.Kind {
	m := map[string]apmon.Kind{}
	for _, n := range []string{"jobs_queued", "jobs_started", "jobs_succeeded", "jobs_failed", "processors_live",
		"processors_stale", "processors_dead", "priority_requests_pending", "inbox_pairs_complete", "inbox_pairs_incomplete", "active"} {
		m[n] = apmon.Int32
	}
	for _, n := range []string{"oldest_queued_job_age_seconds", "queued_per_second", "cleaned_per_second"} {
		m[n] = apmon.Double
	}
	return m
}

// matches reports whether the report d holds every parameter with its type
// and the counts the database holds now (the age within a few seconds).
func matches(t *testing.T, d apmon.Datagram, want apmonCounts, age float64) (bool, string) {
	t.Helper()
	kinds := reportParams()
	got := map[string]apmon.Param{}
	for _, p := range d.Params {
		got[p.Name] = p
	}
	for name, kind := range kinds {
		p, ok := got[name]
		if !ok || p.Kind != kind {
			return false, fmt.Sprintf("%s missing or not of type %d: %v", name, kind, d)
		}
	}
	if len(got) != len(kinds) {
		return false, fmt.Sprintf("%d parameters, want %d: %v", len(got), len(kinds), d)
	}
	for name, n := range want {
		if got[name].Int != n {
			return false, fmt.Sprintf("%s = %d, the database holds %d", name, got[name].Int, n)
		}
	}
	if a := got["oldest_queued_job_age_seconds"].Num; math.Abs(a-age) > 3 {
		return false, fmt.Sprintf("oldest_queued_job_age_seconds = %v, the database says %v", a, age)
	}
	if got["active"].Int != 1 {
		return false, "active is not 1"
	}
	return true, ""
}

// TestApMonReports: `monitor run` sends its report every apmonInterval to
// two MonALISA stand-ins (one with a password), each datagram readable,
// numbered in order, from one instance; the report carries every figure
// with the value the database holds, first with no live processor (a stale
// and a dead one, a priority request waiting), then with live ones; each
// processor's pending jobs, the host's and the process's figures arrive in
// their clusters; the queuing rate adds up to the crashes queued.
func TestApMonReports(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	cfg, path := newConfig(t, testkit.SchemaURL(t, pool))
	const checkIn = 10 * time.Minute
	cfg["processorCheckInTime"] = "00:10:00"
	cfg["cleanupJobsLoopDelay"] = "01:00:00"
	cfg["apmonInterval"] = "1"
	cfg["apmonClusterName"] = "Crash_Test"
	cfg["apmonNodeName"] = "monitor-under-test"
	plain, locked := newMonALISA(t), newMonALISA(t)
	writeApMonConfig(t, path, cfg, plain.addr(), locked.addr()+" s3cret")

	day := time.Now().UTC()
	id := func(i int) string { return testkit.CrashID(i, day) }
	stale := testkit.Processor(t, pool, 15*time.Minute)
	testkit.PriorityTables(t, pool, stale)
	testkit.Jobs(t, pool, testkit.Queued, stale, id(1), id(2), id(3))
	testkit.Jobs(t, pool, testkit.Started, stale, id(4), id(5))
	// The trees exist from the start, so that the scanner watches them.
	for _, k := range []string{"storageRoot", "deferredStorageRoot"} {
		if err := os.MkdirAll(cfg[k], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := startDaemon(t, path, cfg["logFilePathname"])
	d.WaitLog(t, "monitor started", 1)
	// Cleanup's first pass is done before the finished jobs come; its next
	// is an hour away. The dead processor comes after the scanner's first
	// sweep; with no live processor none can take its jobs, so it stays.
	testkit.Eventually(t, "cleanup's first pass", func() bool {
		log := d.LogText()
		return strings.Contains(log, "- cleanup - cleanup pass") || strings.Contains(log, "cleaned up finished jobs")
	})
	testkit.Jobs(t, pool, testkit.Succeeded, stale, id(6), id(7), id(8), id(9))
	testkit.Jobs(t, pool, testkit.Failed, stale, id(10))
	dead := testkit.Processor(t, pool, 30*time.Minute)
	testkit.Jobs(t, pool, testkit.Started, dead, id(11))
	// A request for a crash only in the deferred tree waits for a live
	// processor to queue it to.
	deferred := crashstore.New(cfg["deferredStorageRoot"], crashstore.Options{GID: -1})
	testkit.WritePairs(t, deferred, nil, testkit.Pair{ID: id(50)})
	testkit.Exec(t, pool, `INSERT INTO priorityjobs (uuid) VALUES ($1)`, id(50))

	converge := func(phase string, check func(apmonCounts) string) {
		t.Helper()
		why := "no report yet"
		ok := testkit.Poll(t, 3*testkit.WaitTimeout(), func() bool {
			reports := plain.reports("Crash_Test")
			if len(reports) == 0 {
				return false
			}
			want, age := dbCounts(t, pool, checkIn)
			if why = check(want); why != "" {
				return false
			}
			var good bool
			good, why = matches(t, reports[len(reports)-1], want, age)
			return good
		})
		if !ok {
			t.Fatalf("%s: the reports never matched the database: %s\nlog:\n%s", phase, why, d.Tail(30))
		}
	}
	// With no live processor nothing moves: the requests wait, the dead
	// processor stays, every figure is there to compare.
	converge("no live processor", func(c apmonCounts) string {
		if c["processors_dead"] != 1 || c["priority_requests_pending"] != 1 || c["jobs_succeeded"] != 4 || c["jobs_failed"] != 1 {
			return fmt.Sprintf("the database is not in the state the test set up: %v", c)
		}
		return ""
	})

	// Live processors: the waiting request is queued at once; crashes
	// written into the inbox wake the scanner, whose pass reaps the dead
	// processor and queues them. The queuing rate of the reports after the
	// request, times their interval (1 s), adds up to the 20 crashes.
	live := testkit.LiveProcessors(t, pool, 2)
	testkit.PriorityTables(t, pool, live...)
	testkit.Eventually(t, "the waiting request to be queued", func() bool {
		return testkit.QueryInt(t, pool, `SELECT count(*) FROM priorityjobs`) == 0
	})
	n := len(plain.reports("Crash_Test"))
	testkit.Eventually(t, "a report after the request", func() bool { return len(plain.reports("Crash_Test")) > n })
	before := len(plain.reports("Crash_Test"))
	store := crashstore.New(cfg["storageRoot"], crashstore.Options{GID: -1})
	var pairs []testkit.Pair
	for i := range 20 {
		pairs = append(pairs, testkit.Pair{ID: id(100 + i)})
	}
	testkit.WritePairs(t, store, nil, pairs...)
	testkit.Eventually(t, "the 20 crashes to be queued", func() bool {
		return testkit.QueryInt(t, pool, `SELECT count(*) FROM jobs WHERE uuid = ANY($1)`, idsOf(pairs)) == 20
	})
	after := len(plain.reports("Crash_Test"))
	testkit.Eventually(t, "two more reports", func() bool { return len(plain.reports("Crash_Test")) >= after+2 })
	var queued float64
	for _, r := range plain.reports("Crash_Test")[before:] {
		for _, p := range r.Params {
			if p.Name == "queued_per_second" {
				queued += p.Num
			}
		}
	}
	if queued < 17 || queued > 23 {
		t.Errorf("queued_per_second over the reports adds up to %.2f crashes, want 20", queued)
	}
	converge("live processors", func(c apmonCounts) string {
		if c["processors_live"] != 2 || c["processors_dead"] != 0 || c["priority_requests_pending"] != 0 {
			return fmt.Sprintf("not settled yet: %v", c)
		}
		return ""
	})

	// Each processor's pending jobs, in its own node of the _Processors
	// cluster, as the database counts them.
	want := pendingByName(t, pool)
	got := map[string]int32{}
	for _, r := range plain.reports("Crash_Test_Processors") {
		if len(r.Params) != 1 || r.Params[0].Name != "pending_jobs" || r.Params[0].Kind != apmon.Int32 {
			t.Fatalf("a processor's report: %v", r)
		}
		got[r.Node] = r.Params[0].Int
	}
	for name, n := range want {
		if got[name] != n {
			t.Errorf("processor %s: pending_jobs %d, the database holds %d (live: %v)", name, got[name], n, live)
		}
	}

	// The libraries' background monitoring: the host and the process.
	for cluster, names := range map[string][]string{
		"Crash_Test_SysInfo": {"cpu_usr", "cpu_sys", "cpu_idle", "cpu_usage", "load1", "load5", "load15",
			"mem_used", "mem_free", "mem_usage", "swap_used", "swap_free", "processes", "uptime"},
		"Crash_Test_JobInfo": {"run_time", "cpu_time", "cpu_usage", "rss", "virtualmem", "mem_usage", "open_files",
			"disk_total", "disk_used", "disk_free", "disk_usage"},
	} {
		seen := map[string]bool{}
		for _, r := range plain.reports(cluster) {
			if r.Node != "monitor-under-test" {
				t.Errorf("%s from node %q", cluster, r.Node)
			}
			for _, p := range r.Params {
				seen[p.Name] = p.Kind == apmon.Double
			}
		}
		for _, n := range names {
			if !seen[n] {
				t.Errorf("%s: %s missing or not a double", cluster, n)
			}
		}
	}

	stopDaemon(t, d)
	a, b := plain.checkStream(t, ""), locked.checkStream(t, "s3cret")
	if a != b {
		t.Errorf("instance ids %d and %d: one process, one id", a, b)
	}
	if n := len(locked.reports("Crash_Test")); n < 3 {
		t.Errorf("the destination with a password got %d reports", n)
	}
}

func idsOf(pairs []testkit.Pair) []string {
	ids := make([]string, len(pairs))
	for i, p := range pairs {
		ids[i] = p.ID
	}
	return ids
}

// TestApMonBurstReloadAndUnresolvable: at apmonMaxMsgRate 2, a report of
// 64 datagrams (60 processors) to a fresh destination lets 26 through in its
// second (the libraries' rule, below 10 a second without a draw), a few a
// round after; a host that does not resolve is logged once while the other
// destination receives every round; a reload adds a destination, which
// starts its own numbering at 1.
func TestApMonBurstReloadAndUnresolvable(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	cfg, path := newConfig(t, testkit.SchemaURL(t, pool))
	cfg["apmonInterval"] = "1"
	cfg["apmonMaxMsgRate"] = "2"
	testkit.LiveProcessors(t, pool, 60)
	first, added := newMonALISA(t), newMonALISA(t)
	writeApMonConfig(t, path, cfg, first.addr(), "monalisa.invalid:8884 pw-secret-77")
	d := startDaemon(t, path, cfg["logFilePathname"])
	d.WaitLog(t, "monitor started", 1)

	testkit.Eventually(t, "four reports", func() bool { return len(first.reports("Socorro_Monitor")) >= 4 })
	writeApMonConfig(t, path, cfg, first.addr(), "monalisa.invalid:8884 pw-secret-77", added.addr())
	testkit.Eventually(t, "reports at the added destination", func() bool { return len(added.reports("Socorro_Monitor")) >= 3 })
	stopDaemon(t, d)

	for name, m := range map[string]*monALISA{"first": first, "added": added} {
		m.checkStream(t, "")
		// Rounds start with the monitor's report; the first is a burst.
		// Each datagram carries the second it was sent in.
		type round struct {
			n           int
			first, last int32
		}
		var rounds []round
		for _, dg := range m.datagrams() {
			if dg.Cluster == "Socorro_Monitor" {
				rounds = append(rounds, round{first: dg.Time})
			}
			if len(rounds) > 0 {
				r := &rounds[len(rounds)-1]
				r.n++
				r.last = dg.Time
			}
		}
		t.Logf("%s: datagrams let through in each round (n, first and last second): %v", name, rounds)
		// 26 in the burst's second; if it straddles two, at most 3 more.
		if n := rounds[0].n; n < 26 || n > 29 {
			t.Errorf("%s: the first round let %d datagrams through, want 26 (the rule allows up to 29 over two seconds)", name, n)
		}
		// A round in the second after the last one's gets 2 and a little.
		// One that a loaded machine delayed by a second more finds the
		// history spread over the gap (the libraries' rule: 14 after the
		// burst for a gap of 2), never more than the burst.
		next := 0
		for i, r := range rounds[1:] {
			switch gap := r.first - rounds[i].last; {
			case gap <= 1:
				next++
				if r.n > 4 {
					t.Errorf("%s: round %d let %d datagrams through at 2 a second", name, i+2, r.n)
				}
			case r.n > 26:
				t.Errorf("%s: round %d let %d datagrams through %d s after the one before", name, i+2, r.n, gap)
			}
		}
		if next == 0 {
			t.Errorf("%s: no round came in the second after the one before: %v", name, rounds)
		}
	}
	log := d.LogText()
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, " - apmon - ") {
			t.Log(line)
		}
	}
	if n := strings.Count(log, "ApMon destination does not resolve"); n != 1 {
		t.Errorf("the unresolvable destination logged %d times, want once:\n%s", n, log)
	}
	if !strings.Contains(log, "monalisa.invalid:8884 **********") {
		t.Errorf("the log does not name the destination:\n%s", log)
	}
	if strings.Count(log, "dropping ApMon datagrams") < 1 {
		t.Errorf("the rate rule's drops are not logged:\n%s", log)
	}
	if strings.Contains(log, "pw-secret-77") {
		t.Errorf("a password in the log:\n%s", log)
	}
}

// TestApMonCheckConfig: check-config prints the destinations, passwords
// masked; a malformed destination stops every command, named.
func TestApMonCheckConfig(t *testing.T) {
	t.Parallel()
	cfg, path := newConfig(t, "postgres://nobody@127.0.0.1:1/none")
	cfg["apmonDestinations"] = "ml1.example.org hunter2, ml2.example.org:9000"
	cfg.Write(t, path)
	r := runMonitor(t, "check-config", "-c", path)
	if r.code != 0 || !strings.Contains(r.stdout, "apmonDestinations=ml1.example.org:8884 **********, ml2.example.org:9000\n") ||
		strings.Contains(r.stdout+r.stderr, "hunter2") {
		t.Errorf("check-config: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"apmonClusterName=Socorro_Monitor", "apmonInterval=00:00:30", "apmonMaxMsgRate=20", "apmonNodeName="} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check-config lacks %q", want)
		}
	}
	delete(cfg, "apmonDestinations")
	writeApMonConfig(t, path, cfg, "ml1.example.org:88x4 hunter2")
	for _, cmd := range []string{"check-config", "run"} {
		r := runMonitor(t, cmd, "-c", path)
		if r.code != exitUsage || !strings.Contains(r.stderr, `apmonDestinations: entry "ml1.example.org:88x4 **********" has a bad port`) ||
			strings.Contains(r.stderr, "hunter2") {
			t.Errorf("%s with a malformed destination: code %d, stderr %q", cmd, r.code, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), "monitor.log")); !os.IsNotExist(err) {
		t.Errorf("a log file was opened for a bad configuration")
	}
}
