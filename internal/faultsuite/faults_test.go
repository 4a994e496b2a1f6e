package faultsuite

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/loop"
	"github.com/crashmonitor/monitor/internal/procsim"
	"github.com/crashmonitor/monitor/internal/testkit"
)

// The pipeline's timing in the suite: short enough that a dead processor is
// reaped within seconds and cleanup runs every second.
const (
	checkIn   = 2 * time.Second
	failRatio = 0.1
)

// resumeWithin is how soon after a fault the whole pipeline should work
// again ("within a few seconds of the database answering again"): rounds
// that took longer are counted, and fail a strict run.
const resumeWithin = 5 * time.Second

// takeoverWithin is how soon a standby takes over from a killed active
// monitor: a longer takeover fails a strict run.
const takeoverWithin = 5 * time.Second

// suite is one run: the settings, the processes and what was done to them.
type suite struct {
	t       *testing.T
	s       settings
	out     io.Writer
	rng     *rand.Rand // the fault schedule's; the test's goroutine only
	cluster *testkit.Cluster
	pool    *pgxpool.Pool
	w       *world
	ms      *monitorSet
	fl      *fleet
	began   time.Time

	deck []string // the first rounds' faults

	// What was done.
	rounds                     int
	pgFast, pgImmediate        int
	monitorKills, startupKills int
	killsWhileDown, startsDown int
	takeovers                  int
	takeoverTimes              []time.Duration
	resumed                    []stages
	crashedProcs, cycledProcs  int
}

// TestFaults is the fault-injection suite (and, with MONITOR_FAULTS_SOAK,
// the soak): see the package documentation and the README's
// "Fault-injection suite".
func TestFaults(t *testing.T) {
	s := loadSettings(t)
	su := &suite{t: t, s: s, out: t.Output(), rng: rand.New(rand.NewPCG(s.seed, 0x5eed)), began: time.Now()}
	mode := fmt.Sprintf("%d rounds", s.rounds)
	if s.soak > 0 {
		mode = fmt.Sprintf("soak of %s", s.soak)
	}
	fmt.Fprintf(su.out, "fault-injection suite: seed %d, %s, %d monitor(s), race detector %v\n", s.seed, mode, s.monitors, raceEnabled)
	fmt.Fprintf(su.out, "replay: %s\n", s.replay())
	t.Cleanup(func() {
		if t.Failed() {
			fmt.Fprintf(su.out, "FAILED; replay with: %s\n", s.replay())
		}
	})

	su.cluster = testkit.NewCluster(t)
	su.cluster.Migrated(t)
	su.pool = syncPool(t, su.cluster.URL())
	installLedger(t, su.pool)
	dir := workDir(t, su.out)

	// The configuration: the seed picks the layout and whether failed
	// crashes are archived or deleted.
	cfg := testkit.BaseConfig(dir, su.cluster.URL())
	cfg["processorCheckInTime"] = fmt.Sprint(checkIn.Seconds())
	cfg["standardLoopDelay"] = "10"
	cfg["priorityLoopDelay"] = "10"
	cfg["cleanupJobsLoopDelay"] = "1"
	cfg["logFileMaximumSize"] = "100000000"
	layout := crashstore.LayoutDaily
	if su.rng.IntN(4) == 0 {
		layout = crashstore.LayoutFlat
	}
	cfg["storageLayout"] = string(layout)
	failedTo := "archived"
	if su.rng.IntN(3) == 0 {
		cfg["saveFailedMinidumpsTo"] = ""
		failedTo = "deleted"
	}
	fmt.Fprintf(su.out, "layout %s; failed crashes %s; processorCheckInTime %s; work in %s\n", layout, failedTo, checkIn, dir)
	opts := crashstore.Options{Layout: layout, GID: -1}
	store := func(root string) *crashstore.Store {
		if root == "" {
			return nil
		}
		return crashstore.New(root, opts)
	}

	su.w = &world{t: t, standard: store(cfg["storageRoot"]), deferred: store(cfg["deferredStorageRoot"]), pool: su.pool, reg: newRegistry()}
	su.ms = newMonitorSet(t, buildMonitor(t, dir), dir, cfg, s.monitors, su.out)
	done := newProcessings()
	procLog, err := os.Create(filepath.Join(dir, "processors.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer procLog.Close()
	su.fl = &fleet{t: t, pool: su.pool, logger: slog.New(slog.NewTextHandler(procLog, nil)), base: procsim.Config{
		CheckIn: checkIn, FailRatio: failRatio, Seed: s.seed, Concurrency: 4,
		Idle: 50 * time.Millisecond, FinishEvery: 50 * time.Millisecond,
		Standard: su.w.standard, Deferred: su.w.deferred, Recorded: done.record,
	}}
	defer su.fl.stop()

	for i := range s.monitors {
		su.ms.start(i)
	}
	for range fleetSize {
		su.fl.add(su.rng)
	}

	// The load: two collectors and the users, until the rounds are over.
	load, stopLoad := context.WithCancel(t.Context())
	var loading sync.WaitGroup
	defer func() {
		stopLoad()
		loading.Wait()
		su.w.slow.Wait()
	}()
	for range 2 {
		rng := rand.New(rand.NewPCG(su.rng.Uint64(), 1))
		loading.Go(func() { su.w.collect(load, rng) })
	}
	reqRng := rand.New(rand.NewPCG(su.rng.Uint64(), 2))
	loading.Go(func() { su.w.request(load, reqRng) })

	var smp sampler
	if s.soak > 0 {
		loading.Go(func() { smp.run(load, s.sample, func() (int, string) { return su.ms.soaked(0) }) })
	}

	loadStarted := time.Now()
	for su.rounds = 1; ; su.rounds++ {
		if s.soak > 0 && time.Since(loadStarted) >= s.soak || s.soak == 0 && su.rounds > s.rounds {
			su.rounds--
			break
		}
		su.round()
	}

	stopLoad()
	loading.Wait()
	su.w.slow.Wait()
	drainStart := time.Now()
	su.drain()
	drained := time.Since(drainStart)
	su.ms.stopAll()
	su.fl.stop()

	res := checkInvariants(t, checkInput{
		reg: su.w.reg, done: done, pool: su.pool, standard: su.w.standard, deferred: su.w.deferred,
		successful: store(cfg["saveSuccessfulMinidumpsTo"]), failed: store(cfg["saveFailedMinidumpsTo"]),
		seed: s.seed, failRatio: failRatio,
	})
	su.summary(res, drained, done)
	if s.soak > 0 {
		smp.report(su.out)
		switch ts, _, _, judged := smp.trends(); {
		case judged:
			for _, tr := range ts {
				if tr.grows {
					t.Errorf("soak: %s grows without bound: %.1f in the last minute, %.1f at most in the first", tr.name, tr.lastMinuteMean, tr.firstMinuteMax)
				}
			}
		case s.soak >= 2*judgeWindow:
			t.Errorf("soak: the soaked monitor's last process was sampled for less than %s: nothing to judge", 2*judgeWindow)
		}
	}
	for i, p := range res.problems {
		if i == maxProblems {
			t.Errorf("... and %d more problems", len(res.problems)-maxProblems)
			break
		}
		t.Error(p)
	}
	if s.strict && len(su.ms.supervised)+len(su.ms.exits) > 0 {
		t.Errorf("strict: the suite had to restart monitors %d times (%d exits, %d stuck)", len(su.ms.supervised)+len(su.ms.exits), len(su.ms.exits), len(su.ms.supervised))
	}
	if n := su.slowRounds(); s.strict && n > 0 {
		t.Errorf("strict: %d rounds took over %s to resume", n, resumeWithin)
	}
	for _, d := range su.takeoverTimes {
		if s.strict && d > takeoverWithin {
			t.Errorf("strict: a takeover took %s, over %s", d.Round(10*time.Millisecond), takeoverWithin)
		}
	}
}

// syncPool opens the suite's pool (the reporter's and the processors'
// connections) after making every session of the cluster commit
// synchronously: testkit's cluster runs with synchronous_commit off, and an
// "immediate" stop would then lose commits already acknowledged, which the
// checker would count against the monitor.
func syncPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	if _, err := conn.Exec(t.Context(), `ALTER ROLE postgres SET synchronous_commit = on`); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 24
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var on string
	if err := pool.QueryRow(t.Context(), `SHOW synchronous_commit`).Scan(&on); err != nil || on != "on" {
		t.Fatalf("synchronous_commit = %q (%v), want on", on, err)
	}
	return pool
}

// workDir makes the run's directory (trees, archives, logs), on tmpfs when
// there is one: the suite is about the monitor, not a slow disk. It is
// removed after a run that passed (unless MONITOR_FAULTS_KEEP=1) and kept
// after one that failed.
func workDir(t *testing.T, out io.Writer) string {
	t.Helper()
	parent := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		parent = "/dev/shm"
	}
	dir, err := os.MkdirTemp(parent, "monitor-faults-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv(envKeep) == "1" {
			fmt.Fprintf(out, "kept for a look: %s (monitor logs in logs/, processors.log)\n", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// stallAfter is how long a wait goes without progress before the suite
// restarts the monitors, as an operator would.
func stallAfter() time.Duration { return max(20*time.Second, testkit.WaitTimeout()) }

// await polls until done holds, supervising the monitors meanwhile (one
// that exited is started again). progress returns a figure that grows while
// the pipeline moves; when it has not grown for stallAfter, the monitors are
// restarted once (reported by the summary), and when it stalls again the
// test fails with diagnose's account. It returns the time waited.
func (su *suite) await(what string, done func() bool, progress func() int64, diagnose func() string) time.Duration {
	t := su.t
	t.Helper()
	start := time.Now()
	last, since := progress(), time.Now()
	restarted := false
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !done() {
		select {
		case <-t.Context().Done():
			t.Fatalf("%s: the test ended", what)
		case <-tick.C:
		}
		su.ms.supervise()
		if p := progress(); p != last {
			last, since = p, time.Now()
			continue
		}
		if time.Since(since) < stallAfter() {
			continue
		}
		why := fmt.Sprintf("%s: no progress for %s: %s", what, stallAfter(), diagnose())
		if restarted {
			t.Fatalf("%s, even after the monitors were restarted; monitors: %s", why, su.ms.roles())
		}
		su.ms.restartAll(why)
		restarted, since = true, time.Now()
	}
	return time.Since(start)
}

// round runs one round: a pause under load, a fault (sometimes two at
// once), then a check that the whole pipeline resumed.
func (su *suite) round() {
	t := su.t
	t.Helper()
	at := time.Since(su.began)
	loop.Sleep(t.Context(), time.Duration(300+su.rng.IntN(2500))*time.Millisecond)
	var did string
	switch kind := su.pickFault(); kind {
	case "monitor":
		did = su.killMonitor(su.pickMonitor(nil))
	case "postgres-fast":
		did = su.restartPostgres("fast")
	case "postgres-immediate":
		did = su.restartPostgres("immediate")
	case "takeover":
		did = su.takeover()
	case "crash":
		su.crashedProcs++
		did = su.fl.crash(su.rng)
	case "cycle":
		su.cycledProcs++
		did = su.fl.cycle(su.rng)
	}
	resumed := su.resume()
	su.resumed = append(su.resumed, resumed)
	fmt.Fprintf(su.out, "round %d (+%s): %s; %s\n", su.rounds, at.Round(100*time.Millisecond), did, resumed)
}

// pickFault chooses the round's fault: a monitor killed, PostgreSQL
// restarted ("fast" or "immediate"), the active monitor killed (with
// several), a processor crashed or cycled. The first rounds deal each kind
// once, in an order of the seed's, so that even a short run meets them all;
// later rounds draw them at random. In the soak, monitor 0 is never killed:
// it is the one sampled.
func (su *suite) pickFault() string {
	killable := su.s.monitors
	if su.s.soak > 0 {
		killable--
	}
	if su.deck == nil {
		su.deck = []string{"postgres-fast", "postgres-immediate", "crash", "cycle"}
		if killable > 0 {
			su.deck = append(su.deck, "monitor")
		}
		if su.s.monitors > 1 && killable > 0 {
			su.deck = append(su.deck, "takeover")
		}
		su.rng.Shuffle(len(su.deck), func(i, j int) { su.deck[i], su.deck[j] = su.deck[j], su.deck[i] })
	}
	if su.rounds <= len(su.deck) {
		return su.deck[su.rounds-1]
	}
	for {
		switch r := su.rng.IntN(100); {
		case r < 30:
			if killable > 0 {
				return "monitor"
			}
		case r < 45:
			return "postgres-fast"
		case r < 60:
			return "postgres-immediate"
		case r < 80:
			if su.s.monitors > 1 && killable > 0 {
				return "takeover"
			}
		case r < 92:
			return "crash"
		default:
			return "cycle"
		}
	}
}

// pickMonitor chooses a monitor to kill among those up (among prefer, when
// some of them are up), never the soaked one; -1 when none.
func (su *suite) pickMonitor(prefer []int) int {
	var up, preferred []int
	for i := range su.s.monitors {
		if su.s.soak > 0 && i == 0 || !su.ms.up(i) {
			continue
		}
		up = append(up, i)
		for _, p := range prefer {
			if p == i {
				preferred = append(preferred, i)
			}
		}
	}
	if len(preferred) > 0 {
		up = preferred
	}
	if len(up) == 0 {
		return -1
	}
	return up[su.rng.IntN(len(up))]
}

// killMonitor kills monitor i with SIGKILL, keeps it down a moment and
// starts it again; sometimes it kills it again during its start-up.
func (su *suite) killMonitor(i int) string {
	if i < 0 {
		return "no monitor to kill"
	}
	su.ms.kill(i)
	su.monitorKills++
	loop.Sleep(su.t.Context(), time.Duration(su.rng.IntN(1500))*time.Millisecond)
	su.ms.start(i)
	did := fmt.Sprintf("monitor %d killed (SIGKILL) and started again", i)
	if su.rng.IntN(3) == 0 {
		loop.Sleep(su.t.Context(), time.Duration(su.rng.IntN(800))*time.Millisecond)
		su.ms.kill(i)
		su.monitorKills++
		su.startupKills++
		su.ms.start(i)
		did += ", killed again during its start-up"
	}
	return did
}

// restartPostgres stops PostgreSQL (mode "fast" or "immediate"), keeps it down
// up to 3 s and starts it again; sometimes a monitor is killed while it is
// down, and started again before it is back.
func (su *suite) restartPostgres(mode string) string {
	t := su.t
	if mode == "immediate" {
		su.pgImmediate++
	} else {
		su.pgFast++
	}
	down := time.Duration(200+su.rng.IntN(2800)) * time.Millisecond
	stopped := time.Now()
	su.cluster.Stop(t, mode)
	did := fmt.Sprintf("PostgreSQL stopped (%s)", mode)
	victim := -1
	if su.rng.IntN(3) == 0 {
		if victim = su.pickMonitor(nil); victim >= 0 {
			loop.Sleep(t.Context(), time.Duration(su.rng.IntN(500))*time.Millisecond)
			su.ms.kill(victim)
			su.monitorKills++
			su.killsWhileDown++
			did += fmt.Sprintf("; monitor %d killed while it was down", victim)
			if su.rng.IntN(2) == 0 {
				su.ms.start(victim)
				su.startsDown++
				did += " and started again before it was back"
				victim = -1
			}
		}
	}
	loop.Sleep(t.Context(), time.Until(stopped.Add(down)))
	su.cluster.Start(t)
	did += fmt.Sprintf("; PostgreSQL started again after %s", time.Since(stopped).Round(100*time.Millisecond))
	if victim >= 0 {
		su.ms.start(victim)
		did += fmt.Sprintf(", then monitor %d", victim)
	}
	return did
}

// takeover kills the active monitor (with several, one is active and the
// others stand by) and measures how long until another says it is active;
// the killed one starts again a moment later, to stand by.
func (su *suite) takeover() string {
	victim := su.pickMonitor(su.ms.active())
	if victim < 0 {
		return "no monitor to kill for a takeover"
	}
	su.ms.kill(victim)
	su.monitorKills++
	su.takeovers++
	killed := time.Now()
	took := time.Duration(-1)
	if testkit.Poll(su.t, 3*testkit.WaitTimeout(), func() bool { return len(su.ms.active()) > 0 }) {
		took = time.Since(killed)
	}
	did := fmt.Sprintf("active monitor %d killed", victim)
	if took < 0 {
		su.t.Errorf("takeover: no monitor active within %s of killing monitor %d: %s", 3*testkit.WaitTimeout(), victim, su.ms.roles())
		did += ", no other took over"
	} else {
		su.takeoverTimes = append(su.takeoverTimes, took)
		did += fmt.Sprintf(", another active after %s", took.Round(10*time.Millisecond))
	}
	loop.Sleep(su.t.Context(), time.Duration(su.rng.IntN(2000))*time.Millisecond)
	su.ms.start(victim)
	return did + ", it started again"
}

// stages is how long after a probe was written each part of the pipeline
// had done its share: the scanner queued the standard crash, the priority
// loop the deferred one, the processors finished both, the cleanup loop
// removed both rows (which is when the round counts as resumed).
type stages struct {
	scanner, priority, processed, cleaned time.Duration
}

// resume writes a probe (a standard crash, and a deferred one asked for) and
// waits until both are cleaned up: the scanner, the priority loop, the
// processors and the cleanup loop all work again. It returns when each did
// its part.
func (su *suite) resume() stages {
	written := time.Now()
	ids := su.w.writeProbe(su.rng)
	ctx := context.WithoutCancel(su.t.Context())
	events := func() int64 {
		rows, err := su.pool.Query(ctx, `SELECT count(*) FROM faultsuite_ledger WHERE uuid = ANY($1)`, ids)
		if err != nil {
			return -1
		}
		n, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[int64])
		if err != nil {
			return -1
		}
		return n
	}
	su.await(fmt.Sprintf("round %d: the pipeline to resume", su.rounds),
		func() bool {
			got, err := cleanedUp(ctx, su.pool, ids)
			return err == nil && len(got) == len(ids)
		},
		events,
		func() string { return su.diagnose(ids) })

	// The ledger's times (the database's clock, on this machine).
	var st stages
	rows, err := su.pool.Query(ctx, `SELECT uuid, event, at FROM faultsuite_ledger WHERE uuid = ANY($1)`, ids)
	if err != nil {
		su.t.Fatal(err)
	}
	var uuid, event string
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&uuid, &event, &at}, func() error {
		d := at.Sub(written)
		switch {
		case event == "queued" && uuid == ids[0]:
			st.scanner = d
		case event == "queued":
			st.priority = d
		case event == "finished":
			st.processed = max(st.processed, d)
		case event == "deleted":
			st.cleaned = max(st.cleaned, d)
		}
		return nil
	})
	if err != nil {
		su.t.Fatal(err)
	}
	return st
}

// slowRounds counts the rounds that took over resumeWithin to resume.
func (su *suite) slowRounds() int {
	n := 0
	for _, st := range su.resumed {
		if st.cleaned > resumeWithin {
			n++
		}
	}
	return n
}

// String renders the stages.
func (st stages) String() string {
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }
	return fmt.Sprintf("resumed in %s (queued by the scanner after %s, by the priority loop after %s; processed after %s)",
		r(st.cleaned), r(st.scanner), r(st.priority), r(st.processed))
}

// drain lets everything finish once the faults and the load stopped: every
// monitor and processor running, every crash that must be processed
// cleaned up, no job and no request left.
func (su *suite) drain() {
	t := su.t
	for _, i := range su.ms.down() {
		su.ms.start(i)
	}
	ctx := context.WithoutCancel(t.Context())
	var want []string
	for _, c := range su.w.reg.all() {
		if c.processed() {
			want = append(want, c.id)
		}
	}
	if _, err := su.pool.Exec(ctx, `CREATE TABLE faultsuite_expected (uuid text PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	if _, err := su.pool.CopyFrom(ctx, pgx.Identifier{"faultsuite_expected"}, []string{"uuid"},
		pgx.CopyFromSlice(len(want), func(i int) ([]any, error) { return []any{want[i]}, nil })); err != nil {
		t.Fatal(err)
	}
	var left, jobs, requests int64
	read := func() bool {
		err := su.pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM faultsuite_expected e WHERE NOT EXISTS
				(SELECT 1 FROM faultsuite_ledger l WHERE l.uuid = e.uuid AND l.event = 'deleted')),
			(SELECT count(*) FROM jobs), (SELECT count(*) FROM priorityjobs)`).Scan(&left, &jobs, &requests)
		return err == nil
	}
	su.await("the drain",
		func() bool { return read() && left == 0 && jobs == 0 && requests == 0 },
		func() int64 {
			var seq int64
			_ = su.pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM faultsuite_ledger`).Scan(&seq)
			return seq
		},
		func() string {
			read()
			var sample []string
			rows, err := su.pool.Query(ctx, `SELECT uuid FROM faultsuite_expected e WHERE NOT EXISTS
				(SELECT 1 FROM faultsuite_ledger l WHERE l.uuid = e.uuid AND l.event = 'deleted') LIMIT 3`)
			if err == nil {
				sample, _ = pgx.CollectRows(rows, pgx.RowTo[string])
			}
			var pending []string
			if rows, err := su.pool.Query(ctx, `SELECT uuid FROM priorityjobs ORDER BY uuid LIMIT 5`); err == nil {
				pending, _ = pgx.CollectRows(rows, pgx.RowTo[string])
			}
			return fmt.Sprintf("%d crashes not cleaned up, %d jobs, %d requests left (%q); %s", left, jobs, requests, pending, su.diagnose(sample))
		})
}

// diagnose says where each of ids stands, and the state of the pipeline.
func (su *suite) diagnose(ids []string) string {
	ctx := context.WithoutCancel(su.t.Context())
	var b strings.Builder
	for _, id := range ids {
		var events string
		err := su.pool.QueryRow(ctx, `SELECT coalesce(string_agg(event, ',' ORDER BY seq), 'nothing') FROM faultsuite_ledger WHERE uuid = $1`, id).Scan(&events)
		if err != nil {
			events = err.Error()
		}
		var requested bool
		_ = su.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM priorityjobs WHERE uuid = $1)`, id).Scan(&requested)
		fmt.Fprintf(&b, "%s: %s (request pending: %v); ", id, events, requested)
	}
	var live, stale, dead, queued, started, finished int
	err := su.pool.QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE s = 'live'), count(*) FILTER (WHERE s = 'stale'), count(*) FILTER (WHERE s = 'dead')
		FROM (SELECT monitor_processor_state(lastseendatetime, make_interval(secs => $1)) AS s FROM processors) p`,
		checkIn.Seconds()).Scan(&live, &stale, &dead)
	if err == nil {
		err = su.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE starteddatetime IS NULL AND success IS NULL),
			count(*) FILTER (WHERE starteddatetime IS NOT NULL AND success IS NULL), count(*) FILTER (WHERE success IS NOT NULL) FROM jobs`).
			Scan(&queued, &started, &finished)
	}
	if err != nil {
		fmt.Fprintf(&b, "database: %v; ", err)
	}
	fmt.Fprintf(&b, "processors %d live, %d stale, %d dead (%s); jobs %d queued, %d started, %d finished; monitors: %s",
		live, stale, dead, strings.Join(su.fl.names(), " "), queued, started, finished, su.ms.roles())
	return b.String()
}

// summary prints what the run did and what the checker found.
func (su *suite) summary(res checkResult, drained time.Duration, done *processings) {
	w := su.out
	standard, incomplete, deferred, requested := su.w.reg.counts()
	reg := su.w.reg
	fmt.Fprintf(w, "drained in %s\n", drained.Round(10*time.Millisecond))
	fmt.Fprintf(w, "rounds: %d; faults: %d monitor kills (%d during a start-up, %d while PostgreSQL was down, %d starts while it was down), "+
		"%d PostgreSQL restarts (%d fast, %d immediate), %d takeovers%s, %d processors crashed, %d cycled\n",
		su.rounds, su.monitorKills, su.startupKills, su.killsWhileDown, su.startsDown,
		su.pgFast+su.pgImmediate, su.pgFast, su.pgImmediate, su.takeovers, durations(" (another monitor active within", su.takeoverTimes, ")"),
		su.crashedProcs, su.cycledProcs)
	var scanner, priority, cleaned []time.Duration
	for _, st := range su.resumed {
		scanner, priority, cleaned = append(scanner, st.scanner), append(priority, st.priority), append(cleaned, st.cleaned)
	}
	fmt.Fprintf(w, "resumed after each round within%s (the scanner queuing within%s, the priority loop within%s); "+
		"rounds over %s: %d; processors restarted after errors: %d; monitors restarted by the suite: %d after an exit, %d stuck\n",
		durations("", cleaned, ""), durations("", scanner, ""), durations("", priority, ""), resumeWithin, su.slowRounds(),
		su.fl.restarts.Load(), len(su.ms.exits), len(su.ms.supervised))
	for _, e := range su.ms.exits {
		fmt.Fprintf(w, "  exit: %s\n", e)
	}
	for _, e := range su.ms.supervised {
		fmt.Fprintf(w, "  stuck: %s\n", e)
	}
	fmt.Fprintf(w, "crashes written: %d standard, %d incomplete, %d deferred (%d requested); requests: %d (%d for crashes that never existed, %d not crash ids, %d repeated)\n",
		standard, incomplete, deferred, requested, reg.requests, len(reg.ghosts), reg.hostile, reg.repeated)
	failed := fmt.Sprintf("%d archived as failed", res.archivedBad)
	if res.deletedBad > 0 {
		failed = fmt.Sprintf("%d failed and deleted", res.deletedBad)
	}
	fmt.Fprintf(w, "checked %d crashes: %d processed exactly once (%d archived as successful, %s), %d incomplete left in the inbox, "+
		"%d deferred left in place, %d never-existing ones nowhere; processings seen by the processors: %d (%d finishes committed unanswered); %d problems\n",
		res.checked, res.processed, res.archivedOK, failed, res.incompleteLeft, res.deferredLeft, res.ghosts,
		done.total(), res.unacknowledged, len(res.problems))
	fmt.Fprintf(w, "took %s\n", time.Since(su.began).Round(100*time.Millisecond))
}

// durations renders the maximum and median of ds, "" when empty.
func durations(prefix string, ds []time.Duration, suffix string) string {
	if len(ds) == 0 {
		return ""
	}
	sorted := slices.Sorted(slices.Values(ds))
	return fmt.Sprintf("%s %s, median %s%s", prefix, sorted[len(sorted)-1].Round(10*time.Millisecond),
		sorted[len(sorted)/2].Round(10*time.Millisecond), suffix)
}
