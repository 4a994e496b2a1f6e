package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/crashgen"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/procsim"
	"github.com/crashmonitor/monitor/internal/testkit"
)

// handoverLimit is how soon a standby must be active after the active
// monitor stopped, was killed or lost its session.
const handoverLimit = 5 * time.Second

// Simulated processors of the election tests.
const (
	electionSeed      = 11
	electionFailRatio = 0.1
)

// rig is several `monitor run` on one database and one set of trees, with
// simulated processors working and collectors writing crashes all along.
type rig struct {
	t        *testing.T
	pool     *pgxpool.Pool
	dir      string
	cfg      testkit.Config
	standard *crashstore.Store
	procs    []*procsim.Processor

	mu       sync.Mutex
	monitors []*mon
	gens     []*crashgen.Generator // every crash written so far
	overlaps int                   // samples that saw two active monitors
}

// mon is one `monitor run` of a rig.
type mon struct {
	name    string
	proc    *testkit.Proc
	addr    string
	pid     int
	stopped bool
}

// newRig starts the processors, a collector writing a few crashes every
// 100 ms, and a sampler checking that never two monitors are active at
// once; they stop when the test ends (stopFeeding stops the collector
// earlier). Every insert of a job and every change of its owner is
// recorded in test_jobs_audit.
func newRig(t *testing.T) (*rig, func()) {
	pool := pgtest.Schema(t)
	dir := t.TempDir()
	r := &rig{t: t, pool: pool, dir: dir, cfg: testkit.BaseConfig(dir, testkit.SchemaURL(t, pool))}
	r.cfg["processorCheckInTime"] = "00:00:02"
	r.cfg["cleanupJobsLoopDelay"] = "00:00:01"
	testkit.Exec(t, pool, `
		CREATE TABLE test_jobs_audit (uuid text, op text, old_owner int, new_owner int);
		CREATE FUNCTION test_jobs_audit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF TG_OP = 'INSERT' THEN
				INSERT INTO test_jobs_audit VALUES (NEW.uuid, 'insert', NULL, NEW.owner);
			ELSIF NEW.owner IS DISTINCT FROM OLD.owner THEN
				INSERT INTO test_jobs_audit VALUES (NEW.uuid, 'move', OLD.owner, NEW.owner);
			END IF;
			RETURN NULL;
		END $$;
		CREATE TRIGGER test_jobs_audit AFTER INSERT OR UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION test_jobs_audit();`)
	r.standard = crashstore.New(r.cfg["storageRoot"], crashstore.Options{GID: -1})

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	r.procs = make([]*procsim.Processor, 2)
	for i := range r.procs {
		r.procs[i] = procsim.New(procsim.Config{
			Name: fmt.Sprintf("sim-%d", i), CheckIn: 2 * time.Second, WorkTime: 5 * time.Millisecond,
			FailRatio: electionFailRatio, Seed: electionSeed, Concurrency: 4, Idle: 50 * time.Millisecond,
			Standard: r.standard,
		}, procsim.NewSession(pool), slog.New(slog.DiscardHandler))
		wg.Go(func() {
			if err := r.procs[i].Run(ctx); err != nil && !errors.Is(err, procsim.ErrCrashed) && ctx.Err() == nil {
				t.Errorf("processor %d: %v", i, err)
			}
		})
	}
	feedCtx, cancelFeed := context.WithCancel(ctx)
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		r.feed(feedCtx)
	}()
	wg.Go(func() { r.sample(ctx) })
	stopFeeding := func() {
		cancelFeed()
		<-fed
	}
	t.Cleanup(func() {
		cancel()
		<-fed
		wg.Wait()
	})
	return r, stopFeeding
}

// feed writes 5 crashes every 100 ms, as collectors do, until ctx is done.
func (r *rig) feed(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for seed := uint64(1); ; seed++ {
		g, err := crashgen.New(crashgen.Options{Count: 5, DumpSize: 64, Seed: seed, Webheads: []string{"web1", "web2"}})
		if err != nil {
			r.t.Error(err)
			return
		}
		if _, err := g.Write(context.WithoutCancel(ctx), r.standard); err != nil {
			r.t.Errorf("write crashes: %v", err)
			return
		}
		r.mu.Lock()
		r.gens = append(r.gens, g)
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sample reads /readyz of every running monitor twice in a row, every
// 50 ms until ctx is done. A monitor active at both of its reads was active
// all along in between, so two of them active at both reads were active at
// once: that is counted as an overlap.
func (r *rig) sample(ctx context.Context) {
	client := &http.Client{Timeout: time.Second}
	ready := func(addr string) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "active"
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
		var addrs []string
		r.mu.Lock()
		for _, m := range r.monitors {
			if !m.stopped && m.addr != "" {
				addrs = append(addrs, m.addr)
			}
		}
		r.mu.Unlock()
		first := make([]bool, len(addrs))
		for i, a := range addrs {
			first[i] = ready(a)
		}
		both := 0
		for i, a := range addrs {
			if first[i] && ready(a) {
				both++
			}
		}
		if both > 1 {
			r.mu.Lock()
			r.overlaps++
			r.mu.Unlock()
		}
	}
}

// start starts a monitor named name, with a log and a configuration file of
// its own, and waits until it has started (as the active one or a standby).
func (r *rig) start(name string) *mon {
	t := r.t
	t.Helper()
	cfg := testkit.Config{}
	for k, v := range r.cfg {
		cfg[k] = v
	}
	cfg["logFilePathname"] = filepath.Join(r.dir, name+".log")
	path := filepath.Join(r.dir, name+".yaml")
	cfg.Write(t, path)
	p := startDaemon(t, path, cfg["logFilePathname"])
	p.WaitLog(t, "monitor started", 1)
	m := &mon{name: name, proc: p, addr: p.HTTPAddr(t)}
	m.pid = r.report(m).Daemon.PID
	r.mu.Lock()
	r.monitors = append(r.monitors, m)
	r.mu.Unlock()
	return m
}

// report reads m's /api/status.
func (r *rig) report(m *mon) figures.Report {
	r.t.Helper()
	code, body := get(r.t, "http://"+m.addr+"/api/status")
	var rep figures.Report
	if err := json.Unmarshal([]byte(body), &rep); code != http.StatusOK || err != nil || rep.Daemon == nil {
		r.t.Fatalf("%s: /api/status %d, %v:\n%s", m.name, code, err, body)
	}
	return rep
}

// readyz returns m's /readyz answer.
func (m *mon) readyz(t *testing.T) (int, string) {
	code, body := get(t, "http://"+m.addr+"/readyz")
	return code, strings.TrimSpace(body)
}

// running returns the monitors not stopped.
func (r *rig) running() []*mon {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*mon
	for _, m := range r.monitors {
		if !m.stopped {
			out = append(out, m)
		}
	}
	return out
}

// active waits up to within for exactly one running monitor other than
// not to say it is active (/readyz), the others standby, and returns it.
func (r *rig) active(within time.Duration, what string, not *mon) *mon {
	r.t.Helper()
	var act *mon
	testkit.EventuallyWithin(r.t, within, what, func() bool {
		act = r.activeNow()
		return act != nil && act != not
	})
	return act
}

// activeNow returns the running monitor that says it is active, when
// exactly one does and the others say they stand by; else nil.
func (r *rig) activeNow() *mon {
	var act *mon
	for _, m := range r.running() {
		switch code, body := m.readyz(r.t); {
		case code == http.StatusOK && body == "active" && act == nil:
			act = m
		case body != "standby":
			return nil
		}
	}
	return act
}

// gone marks m as stopped (killed, stopped or frozen by a signal): it is
// left out of the checks of who is active.
func (r *rig) gone(m *mon) {
	r.mu.Lock()
	m.stopped = true
	r.mu.Unlock()
}

// back counts m, woken up, among the running monitors again.
func (r *rig) back(m *mon) {
	r.mu.Lock()
	m.stopped = false
	r.mu.Unlock()
}

// terminateElection ends m's election session from the server's side, as
// an operator's pg_terminate_backend would.
func (r *rig) terminateElection(m *mon) {
	r.t.Helper()
	n := testkit.QueryInt(r.t, r.pool, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`,
		fmt.Sprintf("monitor election %d", m.pid))
	if n != 1 {
		r.t.Fatalf("%s: %d election sessions terminated, want 1", m.name, n)
	}
}

// checkStandbyLog checks that m said once that it stands by under act,
// naming its host and pid.
func (r *rig) checkStandbyLog(m, act *mon) {
	r.t.Helper()
	host, _ := os.Hostname()
	want := fmt.Sprintf("standing by: another monitor is active active_host=%s active_pid=%d", host, act.pid)
	m.proc.WaitLog(r.t, want, 1)
	if n := strings.Count(m.proc.LogText(), want); n != 1 {
		r.t.Errorf("%s said %d times that it stands by under %s, want once", m.name, n, act.name)
	}
}

// finish stops feeding crashes, lets the running monitors process and clean
// up everything, stops them, and checks that every crash written was queued
// once, moved at most once off a processor, archived once in the right tree
// and nothing was left behind; and that never two monitors were active.
func (r *rig) finish(stopFeeding func()) {
	t := r.t
	t.Helper()
	stopFeeding()
	r.mu.Lock()
	var ids []string
	for _, g := range r.gens {
		for i := range g.Options().Count {
			ids = append(ids, g.ID(i))
		}
	}
	r.mu.Unlock()
	count := func(sql string) int { return testkit.QueryInt(t, r.pool, sql) }
	if !testkit.Poll(t, 6*testkit.WaitTimeout(), func() bool {
		return archived(t, r.dir) == len(ids) && count("SELECT count(*) FROM jobs") == 0 &&
			inboxLinks(t, r.cfg["storageRoot"]) == 0
	}) {
		t.Fatalf("after %d crashes: %d archived, %d jobs left, %d inbox links left", len(ids), archived(t, r.dir),
			count("SELECT count(*) FROM jobs"), inboxLinks(t, r.cfg["storageRoot"]))
	}
	for _, m := range r.running() {
		stopDaemon(t, m.proc)
		r.gone(m)
	}

	if n := count(`SELECT count(DISTINCT uuid) FROM test_jobs_audit WHERE op = 'insert'`); n != len(ids) {
		t.Errorf("%d crashes queued, want %d", n, len(ids))
	}
	for _, bad := range testkit.QueryColumn[string](t, r.pool,
		`SELECT uuid FROM test_jobs_audit WHERE op = 'insert' GROUP BY uuid HAVING count(*) > 1`) {
		t.Errorf("%s was queued more than once", bad)
	}
	for _, bad := range testkit.QueryColumn[string](t, r.pool,
		`SELECT uuid FROM test_jobs_audit WHERE op = 'move' GROUP BY uuid, old_owner HAVING count(*) > 1`) {
		t.Errorf("%s was moved off the same processor more than once", bad)
	}
	for _, id := range ids {
		want, other := "successful", "failed"
		if procsim.Fails(id, electionSeed, electionFailRatio) {
			want, other = other, want
		}
		if n := pairFiles(t, filepath.Join(r.dir, want), id); n != 2 {
			t.Errorf("%s: %d files in the %s archive, want its pair", id, n, want)
		}
		if n := pairFiles(t, filepath.Join(r.dir, other), id); n != 0 {
			t.Errorf("%s: %d files in the %s archive, want none", id, n, other)
		}
	}
	for _, root := range []string{"successful", "failed", "toBeProcessed"} {
		for _, f := range testkit.Files(t, filepath.Join(r.dir, root)) {
			if strings.HasSuffix(f, ".tmp") || root == "toBeProcessed" {
				t.Errorf("left behind: %s", f)
			}
		}
	}
	for i, p := range r.procs {
		if s := p.Stats(); s.NotFound > 0 {
			t.Errorf("processor %d met %d jobs whose files were gone: a crash was queued again after its cleanup", i, s.NotFound)
		}
	}
	// A handover is quiet: the only errors logged are the lost sessions,
	// and, from a monitor frozen (SIGSTOP) inside a fenced transaction, the
	// server's ending of that transaction (idle_in_transaction_session_timeout,
	// which lets the takeover through), said once when it wakes.
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.monitors {
		for _, line := range strings.Split(m.proc.LogText(), "\n") {
			if (strings.Contains(line, " ERROR ") || strings.Contains(line, " CRITICAL ")) &&
				!strings.Contains(line, "the election session is lost; reconnecting") &&
				!strings.Contains(line, "terminating connection due to idle-in-transaction timeout (SQLSTATE 25P03)") {
				t.Errorf("%s logged: %s", m.name, line)
			}
		}
	}
	if r.overlaps > 0 {
		t.Errorf("two monitors were active at once in %d samples", r.overlaps)
	}
	t.Logf("%d crashes queued, processed and archived across the handovers", len(ids))
}

// TestTwoMonitors: of two `monitor run` on one database and one storageRoot
// one is active and the other stands by, saying so once and naming it; both
// show who is active. Losing its election session (pg_terminate_backend)
// makes the active one step down and the standby take over within 5 s; so
// does being frozen (SIGSTOP), and when it wakes up it steps down; a SIGTERM
// hands over within 5 s. Crashes keep arriving and processors keep working
// throughout, and none is lost or handled twice.
func TestTwoMonitors(t *testing.T) {
	t.Parallel()
	r, stopFeeding := newRig(t)
	a := r.start("a")
	if act := r.active(testkit.WaitTimeout(), "a to be active", nil); act != a {
		t.Fatalf("active: %s, want a", act.name)
	}
	b := r.start("b")
	r.checkStandbyLog(b, a)
	r.checkShown(a, b)

	r.terminateElection(a)
	cut := time.Now()
	if act := r.active(handoverLimit, "b to take over after a lost its session", a); act != b {
		t.Fatalf("active: %s, want b", act.name)
	}
	t.Logf("b took over %s after a's election session was terminated", time.Since(cut).Round(time.Millisecond))
	a.proc.WaitLog(t, "stepping down: the lease could not be renewed", 1)
	r.checkStandbyLog(a, b)

	// Frozen (SIGSTOP), b cannot renew: a takes over once b's lease has
	// expired. Woken up, b finds its lease gone and steps down before it
	// writes anything (what its loops still try is fenced off).
	r.gone(b)
	b.proc.Signal(t, syscall.SIGSTOP)
	frozen := time.Now()
	if act := r.active(handoverLimit, "a to take over from the frozen b", b); act != a {
		t.Fatalf("active: %s, want a", act.name)
	}
	t.Logf("a took over %s after b was frozen", time.Since(frozen).Round(time.Millisecond))
	b.proc.Signal(t, syscall.SIGCONT)
	b.proc.WaitLog(t, "stepping down", 1)
	host, _ := os.Hostname()
	b.proc.WaitLog(t, fmt.Sprintf("standing by: another monitor is active active_host=%s active_pid=%d", host, a.pid), 2)
	r.back(b)
	if act := r.active(testkit.WaitTimeout(), "a alone active after b woke up", nil); act != a {
		t.Fatalf("active: %s, want a", act.name)
	}

	act, took := r.stop(a, "b to take over after a's SIGTERM")
	if act != b {
		t.Fatalf("active: %s, want b", act.name)
	}
	t.Logf("b took over %s after a's SIGTERM", took.Round(time.Millisecond))
	if log := a.proc.LogText(); !strings.Contains(log, "resigned the lease: a standby may take over at once") {
		t.Errorf("a did not resign its lease:\n%s", log)
	}
	r.finish(stopFeeding)
}

// TestThreeMonitors: of three `monitor run` exactly one is active; when it
// is killed with kill -9, stopped with SIGTERM, or loses its election
// session, another takes over within 5 s, while crashes keep arriving, a
// processor dies and its work moves; nothing is lost or handled twice.
func TestThreeMonitors(t *testing.T) {
	t.Parallel()
	r, stopFeeding := newRig(t)
	first := r.start("m1")
	r.start("m2")
	r.start("m3")
	act := r.active(testkit.WaitTimeout(), "one active monitor", nil)
	if act != first {
		t.Errorf("active: %s, want m1, started first", act.name)
	}
	for _, m := range r.running() {
		if m != act {
			r.checkStandbyLog(m, act)
		}
	}

	// kill -9: the lease expires (3 s) and a standby takes it.
	act.proc.Kill(t)
	r.gone(act)
	killed := time.Now()
	next := r.active(handoverLimit, "a standby to take over after kill -9", act)
	t.Logf("%s took over %s after kill -9 of %s", next.name, time.Since(killed).Round(time.Millisecond), act.name)
	act = next
	r.start("m4")

	// A processor dies: the active monitor reaps it and moves its jobs.
	r.procs[1].Crash()

	// SIGTERM: the active monitor resigns once its loops have stopped.
	next, took := r.stop(act, "a standby to take over after SIGTERM")
	t.Logf("%s took over %s after SIGTERM of %s", next.name, took.Round(time.Millisecond), act.name)
	act = next

	// Its election session terminated: it steps down at once.
	r.terminateElection(act)
	cut := time.Now()
	next = r.active(handoverLimit, "a standby to take over after pg_terminate_backend", act)
	t.Logf("%s took over %s after pg_terminate_backend of %s's election session", next.name, time.Since(cut).Round(time.Millisecond), act.name)
	act.proc.WaitLog(t, "stepping down", 1)

	testkit.Eventually(t, "the dead processor reaped", func() bool {
		return testkit.QueryInt(t, r.pool, "SELECT count(*) FROM processors") == 1
	})
	r.finish(stopFeeding)
}

// stop sends m SIGTERM, waits for another monitor to be active within
// handoverLimit of the signal, and for m to exit 0. It returns the active
// monitor and how long it took to take over.
func (r *rig) stop(m *mon, what string) (*mon, time.Duration) {
	r.t.Helper()
	start := time.Now()
	m.proc.Signal(r.t, syscall.SIGTERM)
	r.gone(m)
	next := r.active(handoverLimit, what, m)
	took := time.Since(start)
	if !m.proc.Exited(testkit.WaitTimeout()) {
		r.t.Fatalf("%s did not exit within %s of SIGTERM", m.name, testkit.WaitTimeout())
	}
	if code := m.proc.Code(); code != 0 {
		r.t.Fatalf("%s: exit code %d after SIGTERM; stderr:\n%s", m.name, code, m.proc.Stderr())
	}
	return next, took
}

// checkShown: monitor status (text and JSON), /api/status, the status page
// and the metrics of both monitors name act as the active monitor and sb as
// the standby; the standby's /readyz is 503 standby, its /healthz 200.
func (r *rig) checkShown(act, sb *mon) {
	t := r.t
	t.Helper()
	host, _ := os.Hostname()
	for _, m := range []*mon{act, sb} {
		// The database figures are read at most once a second.
		var rep figures.Report
		testkit.Eventually(t, m.name+"'s report to list the standby", func() bool {
			rep = r.report(m)
			return len(rep.StandbyMonitors) > 0
		})
		if a := rep.ActiveMonitor; a == nil || a.PID != act.pid || a.Host != host || a.Since.IsZero() || a.Term < 1 {
			t.Errorf("%s's /api/status: active monitor %+v, want pid %d on %s", m.name, a, act.pid, host)
		}
		if s := rep.StandbyMonitors; len(s) != 1 || s[0].PID != sb.pid {
			t.Errorf("%s's /api/status: standby monitors %+v, want pid %d", m.name, s, sb.pid)
		}
		if rep.Daemon.Active != (m == act) {
			t.Errorf("%s's /api/status says active=%v", m.name, rep.Daemon.Active)
		}
		wantActive := 0.0
		if m == act {
			wantActive = 1
		}
		if v, _ := metricValue(scrape(t, m.addr), "monitor_active"); v != wantActive {
			t.Errorf("%s: monitor_active = %v, want %v", m.name, v, wantActive)
		}
		code, page := get(t, "http://"+m.addr+"/")
		if want := fmt.Sprintf("active monitor: <b>%s · pid %d", host, act.pid); code != http.StatusOK || !strings.Contains(page, want) {
			t.Errorf("%s's status page (%d) lacks %q", m.name, code, want)
		}
	}
	if code, body := sb.readyz(t); code != http.StatusServiceUnavailable || body != "standby" {
		t.Errorf("standby's /readyz = %d %q, want 503 standby", code, body)
	}
	if code, body := get(t, "http://"+sb.addr+"/healthz"); code != http.StatusOK {
		t.Errorf("standby's /healthz = %d %q, want 200", code, body)
	}
	res := runMonitor(t, "status", "-c", filepath.Join(r.dir, sb.name+".yaml"))
	for _, want := range []string{
		fmt.Sprintf("active monitor: %s pid %d, since ", host, act.pid),
		fmt.Sprintf("standby monitors: 1\n  %s pid %d, started ", host, sb.pid),
	} {
		if res.code != 0 || !strings.Contains(res.stdout, want) {
			t.Errorf("monitor status (code %d) lacks %q:\n%s%s", res.code, want, res.stdout, res.stderr)
		}
	}
	res = runMonitor(t, "status", "-c", filepath.Join(r.dir, sb.name+".yaml"), "--json")
	var rep figures.Report
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil || rep.ActiveMonitor == nil || rep.ActiveMonitor.PID != act.pid {
		t.Errorf("monitor status --json: %v, active monitor %+v", err, rep.ActiveMonitor)
	}
}
