package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/crashgen"
	"github.com/crashmonitor/monitor/internal/procsim"
	"github.com/crashmonitor/monitor/internal/testkit"
)

// Outage rig constants: the simulated processors' behaviour and how fast
// the loops must resume once the database answers again.
const (
	outageSeed      = 11
	outageFailRatio = 0.1
	// arrivalEvery is the pace at which collectors write crashes, a pair
	// at a time, for the whole run.
	arrivalEvery = 100 * time.Millisecond
)

// outageResumeWithin bounds the time from the database accepting connections
// again to each loop's first successful pass: the loops retry at most
// every 2 s during an outage and resume at once when one of them gets
// through.
func outageResumeWithin() time.Duration { return testkit.WaitTimeout() / 2 }

// outageRig is `monitor run` on a private cluster that the test stops and
// starts, with crashes arriving all along and two simulated processors that
// are started again whenever the database drops them.
type outageRig struct {
	t                  *testing.T
	cluster            *testkit.Cluster
	pool               *pgxpool.Pool
	dir, path          string
	d                  *testkit.Proc
	addr               string
	standard, deferred *crashstore.Store
	deferredGen        *crashgen.Generator
	requested          int // deferred crashes asked for so far

	mu  sync.Mutex
	ids []string // the standard crashes written so far

	stopArrivals, stopProcessors func()
	outages                      int // outages so far
}

// newOutageRig starts the cluster, the processors, the arrivals and the
// monitor, and waits until the monitor has queued and cleaned up crashes.
func newOutageRig(t *testing.T) *outageRig {
	t.Helper()
	r := &outageRig{t: t, cluster: testkit.NewCluster(t)}
	r.pool = r.cluster.Migrated(t)
	// The monitor removes a crash's inbox links once its job committed; a
	// server that acknowledges commits before their WAL is written (as the
	// throwaway cluster does for speed) loses them in an immediate
	// shutdown. Production servers keep synchronous_commit on, and so does
	// this database's every session.
	testkit.Exec(t, r.pool, `ALTER DATABASE postgres SET synchronous_commit = on`)
	r.pool.Reset()

	r.dir = t.TempDir()
	r.path = filepath.Join(r.dir, "monitor.yaml")
	cfg := testkit.BaseConfig(r.dir, r.cluster.URL())
	cfg["processorCheckInTime"] = "00:00:05"
	cfg["priorityLoopDelay"] = "00:01:00" // a request resolved within seconds was heard
	cfg["cleanupJobsLoopDelay"] = "00:00:01"
	cfg.Write(t, r.path)
	r.standard = crashstore.New(cfg["storageRoot"], crashstore.Options{GID: -1})
	r.deferred = crashstore.New(cfg["deferredStorageRoot"], crashstore.Options{GID: -1})
	r.deferredGen = testkit.Generate(t, r.deferred, crashgen.Options{Count: 3, DumpSize: 64, Seed: outageSeed + 1})

	r.stopProcessors = background(t, func(ctx context.Context) {
		var wg sync.WaitGroup
		for _, name := range []string{"sim-a", "sim-b"} {
			wg.Go(func() { r.process(ctx, name) })
		}
		wg.Wait()
	})
	r.stopArrivals = background(t, r.arrive)

	r.d = startDaemon(t, r.path, cfg["logFilePathname"])
	r.d.WaitLog(t, "monitor started", 1)
	r.addr = r.d.HTTPAddr(t)
	r.d.WaitLog(t, "cleaned up finished jobs", 1)
	return r
}

// background runs f in a goroutine until the returned function (also
// called at cleanup) cancels its context and waits for it.
func background(t *testing.T, f func(ctx context.Context)) func() {
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ctx)
	}()
	stop := sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	return stop
}

// process runs a simulated processor named name until ctx is done, starting
// it again (it takes its row over) whenever the database drops it.
func (r *outageRig) process(ctx context.Context, name string) {
	for ctx.Err() == nil {
		p := procsim.New(procsim.Config{
			Name: name, CheckIn: 5 * time.Second, WorkTime: 5 * time.Millisecond,
			FailRatio: outageFailRatio, Seed: outageSeed, Concurrency: 4, Idle: 50 * time.Millisecond,
			Standard: r.standard, Deferred: r.deferred,
		}, procsim.NewSession(r.pool), slog.New(slog.DiscardHandler))
		if err := p.Run(ctx); err == nil || ctx.Err() != nil {
			return
		}
		// The database went away under it: a real processor is restarted
		// by its supervisor.
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// arrive writes a crash into the inbox every arrivalEvery until ctx is
// done, as collectors do whatever the database's state.
func (r *outageRig) arrive(ctx context.Context) {
	tick := time.NewTicker(arrivalEvery)
	defer tick.Stop()
	for seed := uint64(1000); ; seed++ {
		r.writeCrash(ctx, seed)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// writeCrash writes one crash into the inbox and returns its id.
func (r *outageRig) writeCrash(ctx context.Context, seed uint64) string {
	g, err := crashgen.New(crashgen.Options{Count: 1, DumpSize: 64, Seed: seed})
	if err != nil {
		r.t.Error(err)
		return ""
	}
	if _, err := g.Write(ctx, r.standard); err != nil {
		if ctx.Err() == nil {
			r.t.Error(err)
		}
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, g.ID(0))
	return g.ID(0)
}

// passes returns each loop's pass state, from /api/status.
func (r *outageRig) passes() map[string]figures.PassState {
	r.t.Helper()
	code, body := get(r.t, "http://"+r.addr+"/api/status")
	if code != http.StatusOK {
		r.t.Fatalf("/api/status: %d %s", code, body)
	}
	var rep figures.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		r.t.Fatal(err)
	}
	out := map[string]figures.PassState{}
	for _, p := range rep.Daemon.Passes {
		out[p.Loop] = p
	}
	return out
}

// outage stops the server in mode, keeps it stopped for at least hold
// (after the monitor has said the database is unreachable) while checking
// that the monitor keeps running, then starts it again and checks that
// every loop and the priority listener resume within seconds.
func (r *outageRig) outage(mode string, hold time.Duration) {
	t := r.t
	t.Helper()
	stopped := time.Now()
	r.cluster.Stop(t, mode)
	r.outages++
	r.d.WaitLog(t, "database unreachable", r.outages)
	if rest := hold - time.Since(stopped); rest > 0 {
		// The monitor must stay up for the whole outage.
		r.d.RunUntil(t, rest, func() bool { return false })
	}
	if code, body := get(t, "http://"+r.addr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz during the outage = %d %q, want 200", code, body)
	}
	before := r.passes()
	r.cluster.Start(t)
	back := time.Now()
	took := r.resumed(before, back)
	r.d.WaitLog(t, "database answers again", r.outages)
	t.Logf("%s shutdown, database stopped for %s: %s", mode, back.Sub(stopped).Round(100*time.Millisecond), took)
	r.checkLog()
}

// killConnections ends every connection of the monitor (its pool's and its
// priority listener's) with pg_terminate_backend, and checks that it
// carries on within seconds, on new connections.
func (r *outageRig) killConnections() {
	t := r.t
	t.Helper()
	listenerPIDs := func() []int32 {
		return testkit.QueryColumn[int32](t, r.pool,
			`SELECT pid FROM pg_stat_activity WHERE application_name = 'monitor priority listener'`)
	}
	var old []int32
	testkit.Eventually(t, "the priority listener connected", func() bool { old = listenerPIDs(); return len(old) == 1 })
	before := r.passes()
	killed := testkit.QueryInt(t, r.pool, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name LIKE 'monitor%' AND pid <> pg_backend_pid()) AS k`)
	back := time.Now()
	took := r.resumed(before, back)
	if pids := listenerPIDs(); len(pids) != 1 || pids[0] == old[0] {
		t.Errorf("listener connections %v after killing %v, want one new one", pids, old)
	}
	t.Logf("%d connections killed: %s", killed, took)
	r.checkLog()
}

// resumed checks, after the database answered again at back, that every
// loop ends a pass without error (compared with the passes before), that a
// crash written now is queued, and that a priority request is heard
// through the listener once it listens on a connection opened since (the
// old one's reconnected, or a new loop's after the monitor took its lease
// again): the priority loop's delay is a minute. It returns how long each
// took.
func (r *outageRig) resumed(before map[string]figures.PassState, back time.Time) string {
	t := r.t
	t.Helper()
	resumed := map[string]time.Duration{}
	testkit.EventuallyWithin(t, outageResumeWithin(), "every loop resuming", func() bool {
		for loop, p := range r.passes() {
			if _, ok := resumed[loop]; !ok && p.Passes > before[loop].Passes && p.LastError == "" && !p.Running {
				resumed[loop] = time.Since(back).Round(time.Millisecond)
			}
		}
		return len(resumed) == len(figures.Loops())
	})
	id := r.writeCrash(t.Context(), uint64(time.Now().UnixNano()))
	testkit.EventuallyWithin(t, outageResumeWithin(), "a new crash queued", func() bool { return r.queued(id) })
	queued := time.Since(back)
	testkit.EventuallyWithin(t, outageResumeWithin(), "the priority listener listening again", func() bool {
		return testkit.QueryInt(t, r.pool, `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = 'monitor priority listener' AND backend_start >= $1 AND query LIKE 'LISTEN%'`,
			back.Add(-time.Second)) == 1
	})
	want := r.deferredGen.ID(r.requested)
	r.requested++
	asked := time.Now()
	testkit.Exec(t, r.pool, `INSERT INTO priorityjobs (uuid) VALUES ($1)`, want)
	testkit.EventuallyWithin(t, outageResumeWithin(), "the priority request resolved", func() bool {
		return testkit.QueryInt(t, r.pool, `SELECT count(*) FROM priorityjobs`) == 0
	})
	return fmt.Sprintf("first pass without error of each loop after %v; a crash written then queued after %s; a priority request resolved in %s",
		resumed, queued.Round(time.Millisecond), time.Since(asked).Round(time.Millisecond))
}

// checkLog checks that each outage so far is one line when it starts and
// one when it ends, and that no loop or listener logged its failures.
func (r *outageRig) checkLog() {
	r.t.Helper()
	log := r.d.LogText()
	for _, line := range []string{"database unreachable", "database answers again"} {
		if n := strings.Count(log, line); n != r.outages {
			r.t.Errorf("%d lines %q after %d outages, want one each", n, line, r.outages)
		}
	}
	for _, noise := range []string{"pass failed", "priority listener connection lost", "cannot listen for priority requests"} {
		if strings.Contains(log, noise) {
			r.t.Errorf("the log holds %q: an outage logged by a loop itself", noise)
		}
	}
	if n := strings.Count(log, " ERROR - "); n != r.outages {
		r.t.Errorf("%d ERROR lines for %d outages, want one each:\n%s", n, r.outages, log)
	}
}

// queued reports whether crash id has a job, or had one and is archived.
func (r *outageRig) queued(id string) bool {
	r.t.Helper()
	return testkit.QueryInt(r.t, r.pool, `SELECT count(*) FROM jobs WHERE uuid = $1`, id) == 1 ||
		pairFiles(r.t, filepath.Join(r.dir, "successful"), id)+pairFiles(r.t, filepath.Join(r.dir, "failed"), id) > 0
}

// finish stops the arrivals, waits until every crash is processed and
// archived, stops the processors and the monitor, and checks that every
// crash was queued once and archived once, in the archive of its outcome.
func (r *outageRig) finish() {
	t := r.t
	t.Helper()
	r.stopArrivals()
	r.mu.Lock()
	ids := append([]string(nil), r.ids...)
	r.mu.Unlock()
	for i := range r.requested {
		ids = append(ids, r.deferredGen.ID(i))
	}
	testkit.EventuallyWithin(t, 6*testkit.WaitTimeout(), "every crash processed and archived, its row gone", func() bool {
		return archived(t, r.dir) == len(ids) && testkit.QueryInt(t, r.pool, `SELECT count(*) FROM jobs`) == 0
	})
	r.stopProcessors()
	fams := scrape(t, r.addr)
	scanned, _ := metricValue(fams, "monitor_queued_total", "loop=scanner")
	prioritized, _ := metricValue(fams, "monitor_queued_total", "loop=priority")
	cleaned, _ := metricValue(fams, "monitor_cleaned_total", "outcome=archived")
	if int(scanned+prioritized) != len(ids) || int(prioritized) != r.requested || int(cleaned) != len(ids) {
		t.Errorf("queued %v by the scanner and %v by the priority loop, archived %v; want %d crashes queued once (%d by the priority loop) and archived once",
			scanned, prioritized, cleaned, len(ids), r.requested)
	}
	stopDaemon(t, r.d)
	wantArchivedOnce(t, r.dir, ids, outageSeed, outageFailRatio)
	r.checkLog()
	if left := testkit.Files(t, filepath.Join(r.dir, "toBeProcessed")); len(left) != 0 {
		t.Errorf("%d files left in the standard tree, e.g. %s", len(left), left[0])
	}
}

// wantArchivedOnce checks that each of ids is archived once under dir, in
// the archive of its outcome (procsim.Fails with seed and ratio), and not in
// the other.
func wantArchivedOnce(t *testing.T, dir string, ids []string, seed uint64, ratio float64) {
	t.Helper()
	for _, id := range ids {
		want, other := "successful", "failed"
		if procsim.Fails(id, seed, ratio) {
			want, other = other, want
		}
		if n := pairFiles(t, filepath.Join(dir, want), id); n != 2 {
			t.Errorf("%s: %d files in the %s archive, want its pair", id, n, want)
		}
		if n := pairFiles(t, filepath.Join(dir, other), id); n != 0 {
			t.Errorf("%s: %d files in the %s archive, want none", id, n, other)
		}
	}
}

// TestRunRidesOutRestarts: PostgreSQL stopped with a fast shutdown, then
// with an immediate one (a crash), while crashes arrive and processors
// work: the monitor keeps running, logs each outage once and its end once,
// every loop and the priority listener resume within seconds of the
// restart, and in the end every crash is queued once and archived once.
func TestRunRidesOutRestarts(t *testing.T) {
	t.Parallel()
	r := newOutageRig(t)
	r.outage("fast", 0)
	r.outage("immediate", 0)
	r.finish()
}

// TestRunWaitsOutLongOutage: the server refuses connections for 20 s,
// long enough for every retry to reach its cap many times over and for the
// processors to be judged dead (twice processorCheckInTime, 10 s) by the
// time it answers: still one line when the outage starts, one when it ends.
func TestRunWaitsOutLongOutage(t *testing.T) {
	t.Parallel()
	r := newOutageRig(t)
	r.outage("fast", 20*time.Second)
	r.finish()
}

// TestRunSurvivesKilledConnections: every connection of the monitor is
// killed with pg_terminate_backend, three times: it reconnects and carries
// on, and logs no outage.
func TestRunSurvivesKilledConnections(t *testing.T) {
	t.Parallel()
	r := newOutageRig(t)
	for range 3 {
		r.killConnections()
	}
	r.finish()
}
