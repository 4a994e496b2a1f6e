package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/crashgen"
	"github.com/crashmonitor/monitor/internal/procsim"
	"github.com/crashmonitor/monitor/internal/testkit"
)

// TestRunThroughPgBouncer: with databaseURL on PgBouncer 1.18 in
// transaction pooling mode (three server connections for the monitor's
// eight) and databaseSessionURL on PostgreSQL, and nothing else set, the
// monitor migrates, queues crashes, reaps a dead processor (moving its jobs
// and returning its priority ids), resolves priority requests heard through
// its listener, and cleans up, every crash once, with no prepared statement
// error; `monitor status` and `monitor prioritize` work through the pooler.
func TestRunThroughPgBouncer(t *testing.T) {
	t.Parallel()
	const (
		pairs = 200
		seed  = 13
		ratio = 0.1
	)
	cluster := testkit.NewCluster(t)
	bouncer := testkit.NewPgBouncer(t, cluster)
	checkPoolerKeepsNoPreparedStatements(t, bouncer)

	dir := t.TempDir()
	path := filepath.Join(dir, "monitor.yaml")
	// The session URL names its application, so that its connections can
	// be told from those that go through the pooler.
	direct := cluster.URL() + "&application_name=monitor-direct"
	// Migrations need a session (tern's advisory lock): they only use
	// databaseSessionURL, even with nothing listening at databaseURL.
	cfg := testkit.BaseConfig(dir, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable")
	cfg["databaseSessionURL"] = direct
	cfg.Write(t, path)
	if r := runMonitor(t, "migrate", "-c", path); r.code != 0 || !strings.Contains(r.stdout, "schema migrated") {
		t.Fatalf("migrate on databaseSessionURL alone: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	cfg["databaseURL"] = bouncer.URL("postgres")
	cfg["processorCheckInTime"] = "00:00:02"
	cfg["priorityLoopDelay"] = "00:01:00" // a request resolved within seconds was heard
	cfg["cleanupJobsLoopDelay"] = "00:00:01"
	cfg.Write(t, path)
	if r := runMonitor(t, "migrate", "-c", path); r.code != 0 || !strings.Contains(r.stdout, "up to date") {
		t.Fatalf("migrate again: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	pool, err := pgxpool.New(t.Context(), cluster.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	standard := crashstore.New(cfg["storageRoot"], crashstore.Options{GID: -1})
	deferred := crashstore.New(cfg["deferredStorageRoot"], crashstore.Options{GID: -1})
	standardGen := testkit.Generate(t, standard, crashgen.Options{Count: pairs, DumpSize: 64, Seed: seed})
	deferredGen := testkit.Generate(t, deferred, crashgen.Options{Count: 4, DumpSize: 64, Seed: seed + 1})
	// A dead processor holding three of the deferred crashes, one of them
	// also waiting in its priority table.
	dead := testkit.Processor(t, pool, time.Hour)
	testkit.Jobs(t, pool, testkit.Queued, dead, deferredGen.ID(0), deferredGen.ID(1), deferredGen.ID(2))
	testkit.PriorityTableWith(t, pool, dead, deferredGen.ID(1))

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for _, name := range []string{"sim-a", "sim-b"} {
		p := procsim.New(procsim.Config{
			Name: name, CheckIn: 2 * time.Second, WorkTime: 5 * time.Millisecond, FailRatio: ratio, Seed: seed,
			Concurrency: 4, Idle: 50 * time.Millisecond, Standard: standard, Deferred: deferred,
		}, procsim.NewSession(pool), slog.New(slog.DiscardHandler))
		wg.Go(func() {
			if err := p.Run(ctx); err != nil {
				t.Errorf("processor %s: %v", name, err)
			}
		})
	}
	defer wg.Wait()
	defer cancel()
	testkit.Eventually(t, "the processors registered", func() bool {
		return testkit.QueryInt(t, pool, `SELECT count(*) FROM processors WHERE name LIKE 'sim-%'`) == 2
	})

	d := startDaemon(t, path, cfg["logFilePathname"])
	waitUntil := func(within time.Duration, what string, cond func() bool) {
		t.Helper()
		if !testkit.Poll(t, within, cond) {
			t.Fatalf("%s: not within %s; log (end):\n%s", what, within, d.Tail(40))
		}
	}
	d.WaitLog(t, "listening for priority requests", 1)
	d.WaitLog(t, "reaped dead processors", 1)
	waitUntil(testkit.WaitTimeout(), "the dead processor's priority id resolved", func() bool {
		return testkit.QueryInt(t, pool, `SELECT count(*) FROM priorityjobs`) == 0
	})
	asked := time.Now()
	if r := runMonitor(t, "prioritize", "-c", path, deferredGen.ID(3)); r.code != 0 {
		t.Fatalf("prioritize through the pooler: code %d, stderr %s", r.code, r.stderr)
	}
	waitUntil(testkit.WaitTimeout(), "the request resolved", func() bool {
		return testkit.QueryInt(t, pool, `SELECT count(*) FROM priorityjobs`) == 0 &&
			testkit.QueryInt(t, pool, `SELECT count(*) FROM jobs WHERE uuid = $1`, deferredGen.ID(3))+
				pairFiles(t, filepath.Join(dir, "successful"), deferredGen.ID(3))+pairFiles(t, filepath.Join(dir, "failed"), deferredGen.ID(3)) > 0
	})
	resolved := time.Since(asked)

	ids := make([]string, 0, pairs+4)
	for i := range pairs {
		ids = append(ids, standardGen.ID(i))
	}
	for i := range 4 {
		ids = append(ids, deferredGen.ID(i))
	}
	waitUntil(6*testkit.WaitTimeout(), "every crash processed and archived, its row gone", func() bool {
		return archived(t, dir) == len(ids) && testkit.QueryInt(t, pool, `SELECT count(*) FROM jobs`) == 0
	})
	if r := runMonitor(t, "status", "-c", path); r.code != 0 {
		t.Errorf("status through the pooler: code %d, stderr %s", r.code, r.stderr)
	}
	addr := d.HTTPAddr(t)
	served := checkStatusAgrees(t, addr, path)
	if served.DatabaseError != "" {
		t.Errorf("the daemon's figures could not be read through the pooler: %s", served.DatabaseError)
	}
	fams := scrape(t, addr)
	checkMetrics(t, fams, []wantMetric{
		{name: "monitor_queued_total", labels: []string{"loop=scanner"}, value: pairs},
		{name: "monitor_queued_total", labels: []string{"loop=priority"}, value: 1},
		{name: "monitor_cleaned_total", labels: []string{"outcome=archived"}, value: pairs + 4},
		{name: "monitor_processors_reaped_total", value: 1},
		{name: "monitor_pass_errors_total", labels: []string{"loop=scanner"}},
		{name: "monitor_pass_errors_total", labels: []string{"loop=priority"}},
		{name: "monitor_pass_errors_total", labels: []string{"loop=cleanup"}},
	})
	listeners := testkit.QueryColumn[string](t, pool, `SELECT application_name FROM pg_stat_activity WHERE application_name LIKE '%priority listener'`)
	if len(listeners) != 1 || listeners[0] != "monitor-direct priority listener" {
		t.Errorf("priority listeners %q, want one on databaseSessionURL", listeners)
	}
	if code, body := get(t, "http://"+addr+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d %q", code, body)
	}
	stopDaemon(t, d)
	cancel()
	wg.Wait()

	wantArchivedOnce(t, dir, ids, seed, ratio)
	log := d.LogText()
	for _, bad := range []string{"prepared statement", " ERROR - ", "pass failed", "unreachable"} {
		if strings.Contains(log, bad) {
			t.Errorf("the log holds %q:\n%s", bad, log)
		}
	}
	if !strings.Contains(bouncer.Log(), "login attempt: db=postgres") {
		t.Errorf("no connection went through the pooler:\n%s", bouncer.Log())
	}
	t.Logf("%d crashes through PgBouncer (transaction mode, %d server connections); a priority request resolved %s after `monitor prioritize` started",
		len(ids), testkit.PgBouncerPoolSize, resolved.Round(time.Millisecond))
}

// checkPoolerKeepsNoPreparedStatements checks the pooler itself: through its
// database of a single server connection, two clients in pgx's default mode
// (named prepared statements, cached) collide, while in the exec mode the
// monitor uses they do not. So the pooler in these tests shares server
// connections between transactions and keeps no prepared statement for a
// client, as PgBouncer before 1.21 does.
func checkPoolerKeepsNoPreparedStatements(t *testing.T, b *testkit.PgBouncer) {
	t.Helper()
	for _, mode := range []string{"cache_statement", "exec"} {
		var conns []*pgx.Conn
		for range 2 {
			conn, err := pgx.Connect(t.Context(), b.URL("control")+"&default_query_exec_mode="+mode)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.WithoutCancel(t.Context()))
			conns = append(conns, conn)
		}
		var errs []error
		for i, conn := range conns {
			var n int
			errs = append(errs, conn.QueryRow(t.Context(), `SELECT $1::int`, i).Scan(&n))
		}
		joined := errors.Join(errs...)
		pgErr, prepared := errors.AsType[*pgconn.PgError](joined)
		switch {
		case mode == "exec" && joined != nil:
			t.Fatalf("through the pooler in exec mode: %v", joined)
		case mode != "exec" && !(prepared && strings.Contains(pgErr.Message, "prepared statement")):
			t.Fatalf("through the pooler, cached prepared statements did not collide (%v): is it in transaction mode?", joined)
		}
	}
}
