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

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/crashgen"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/procsim"
	"github.com/crashmonitor/monitor/internal/testkit"
	dto "github.com/prometheus/client_model/go"
)

// TestLifeCycle runs a whole life cycle through `monitor run` with two
// simulated processors: crashes generated as collectors write them, queued,
// processed, one processor dying half way (its work moves to the other), a
// crash of the deferred tree prioritized with `monitor prioritize`, and every
// processed pair archived by outcome, exactly once, its row gone.
func TestLifeCycle(t *testing.T) {
	t.Parallel()
	const (
		pairs     = 300
		deferred  = 5
		failRatio = 0.1
		seed      = 7
	)
	pool := pgtest.Schema(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "monitor.yaml")
	cfg := testkit.BaseConfig(dir, testkit.SchemaURL(t, pool))
	cfg["processorCheckInTime"] = "00:00:02"
	cfg["cleanupJobsLoopDelay"] = "00:00:01"
	cfg.Write(t, path)

	standard := crashstore.New(cfg["storageRoot"], crashstore.Options{GID: -1})
	deferredTree := crashstore.New(cfg["deferredStorageRoot"], crashstore.Options{GID: -1})
	gen := func(store *crashstore.Store, n int, seed uint64) *crashgen.Generator {
		return testkit.Generate(t, store, crashgen.Options{Count: n, DumpSize: 64, Seed: seed, Webheads: []string{"web1", "web2"}})
	}
	deferredGen := gen(deferredTree, deferred, seed+1)
	wanted := deferredGen.ID(2) // the one a user asks for

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	procs := make([]*procsim.Processor, 2)
	for i := range procs {
		procs[i] = procsim.New(procsim.Config{
			Name: "sim-" + string(rune('a'+i)), CheckIn: 2 * time.Second, WorkTime: 5 * time.Millisecond,
			FailRatio: failRatio, Seed: seed, Concurrency: 4, Idle: 50 * time.Millisecond,
			Standard: standard, Deferred: deferredTree,
		}, procsim.NewSession(pool), slog.New(slog.DiscardHandler))
		wg.Go(func() {
			if err := procs[i].Run(ctx); err != nil && !errors.Is(err, procsim.ErrCrashed) {
				t.Errorf("processor %d: %v", i, err)
			}
		})
	}
	defer wg.Wait()
	defer cancel()

	d := startDaemon(t, path, cfg["logFilePathname"])
	d.WaitLog(t, "monitor started", 1)
	standardGen := gen(standard, pairs, seed)

	count := func(sql string) int { return testkit.QueryInt(t, pool, sql) }
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		if !testkit.Poll(t, 6*testkit.WaitTimeout(), cond) {
			t.Fatalf("%s: not within %s; log:\n%s", what, 6*testkit.WaitTimeout(), d.LogText())
		}
	}

	// Half way, the second processor dies (its heartbeat stops); a user asks
	// for a crash that is only in the deferred tree.
	waitUntil("a third processed", func() bool {
		return count("SELECT count(*) FROM jobs WHERE success IS NOT NULL")+archived(t, dir) >= pairs/3
	})
	procs[1].Crash()
	if r := runMonitor(t, "prioritize", "-c", path, wanted); r.code != 0 {
		t.Fatalf("prioritize: code %d, stderr %s", r.code, r.stderr)
	}

	waitUntil("every crash processed and archived, its row gone", func() bool {
		return archived(t, dir) == pairs+1 && count("SELECT count(*) FROM jobs") == 0
	})
	waitUntil("the dead processor reaped", func() bool {
		return count("SELECT count(*) FROM processors") == 1
	})
	checkLifeCycleEndpoints(t, d.HTTPAddr(t), path, pairs)
	stopDaemon(t, d)

	ids := []string{wanted}
	for i := range pairs {
		ids = append(ids, standardGen.ID(i))
	}
	wantArchivedOnce(t, dir, ids, seed, failRatio)
	for i := range deferred {
		id := deferredGen.ID(i)
		_, err := deferredTree.Lookup(t.Context(), id)
		if id == wanted && !errors.Is(err, crashstore.ErrNotFound) {
			t.Errorf("prioritized deferred crash %s still in the deferred tree (%v)", id, err)
		}
		if id != wanted && err != nil {
			t.Errorf("deferred crash %s, not asked for, was touched: %v", id, err)
		}
	}
	if s := procs[1].Stats(); s.Succeeded+s.Failed == 0 {
		t.Error("the processor that died had processed nothing: the test did not kill it half way")
	}
	if !strings.Contains(d.LogText(), "reaped dead processors") {
		t.Error("no reap in the log")
	}
}

// archived counts the dumps in the two archive trees under dir.
func archived(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	for _, a := range []string{"successful", "failed"} {
		n += pairFiles(t, filepath.Join(dir, a), ".dump")
	}
	return n
}

// pairFiles counts the regular files under root whose name contains part.
func pairFiles(t *testing.T, root, part string) int {
	t.Helper()
	n := 0
	for _, f := range testkit.Files(t, root) {
		if strings.Contains(filepath.Base(f), part) {
			n++
		}
	}
	return n
}

// checkLifeCycleEndpoints checks every endpoint and metric of the HTTP
// server at the end of TestLifeCycle: pairs crashes queued by the scanner,
// one by the priority loop, all processed and archived, one processor
// reaped, the other live with nothing pending.
func checkLifeCycleEndpoints(t *testing.T, addr, configPath string, pairs int) {
	t.Helper()
	base := "http://" + addr
	for path, want := range map[string]string{"/healthz": "ok", "/-/healthy": "ok", "/readyz": "active", "/-/ready": "active"} {
		if code, body := get(t, base+path); code != http.StatusOK || strings.TrimSpace(body) != want {
			t.Errorf("%s = %d %q, want 200 %q", path, code, body, want)
		}
	}
	// The gauges come from a read at most a second old: wait for the one
	// after the last change.
	var fams map[string]*dto.MetricFamily
	testkit.Eventually(t, "the gauges to show the final state", func() bool {
		fams = scrape(t, addr)
		v, ok := metricValue(fams, "monitor_processors", "state=dead")
		live, _ := metricValue(fams, "monitor_processors", "state=live")
		return ok && v == 0 && live == 1
	})
	total := float64(pairs + 1)
	checkMetrics(t, fams, []wantMetric{
		{name: "monitor_jobs", labels: []string{"state=queued"}},
		{name: "monitor_jobs", labels: []string{"state=started"}},
		{name: "monitor_jobs", labels: []string{"state=succeeded"}},
		{name: "monitor_jobs", labels: []string{"state=failed"}},
		{name: "monitor_processors", labels: []string{"state=live"}, value: 1},
		{name: "monitor_processors", labels: []string{"state=stale"}},
		{name: "monitor_processors", labels: []string{"state=dead"}},
		{name: "monitor_processor_pending_jobs", labels: []string{"processor=sim-a"}},
		{name: "monitor_oldest_queued_job_age_seconds"},
		{name: "monitor_priority_requests_pending"},
		{name: "monitor_inbox_pairs", labels: []string{"state=complete"}},
		{name: "monitor_inbox_pairs", labels: []string{"state=incomplete"}},
		{name: "monitor_queued_total", labels: []string{"loop=scanner"}, value: float64(pairs)},
		{name: "monitor_queued_total", labels: []string{"loop=priority"}, value: 1},
		{name: "monitor_cleaned_total", labels: []string{"outcome=archived"}, value: total},
		{name: "monitor_cleaned_total", labels: []string{"outcome=deleted"}},
		{name: "monitor_cleaned_total", labels: []string{"outcome=missing"}},
		{name: "monitor_cleaned_total", labels: []string{"outcome=failed"}},
		{name: "monitor_processors_reaped_total", value: 1},
		{name: "monitor_jobs_moved_total", atLeast: true}, // whatever the dead one held
		{name: "monitor_pass_duration_seconds", labels: []string{"loop=scanner"}, value: 1, atLeast: true},
		{name: "monitor_pass_duration_seconds", labels: []string{"loop=priority"}, value: 1, atLeast: true},
		{name: "monitor_pass_duration_seconds", labels: []string{"loop=cleanup"}, value: 1, atLeast: true},
		{name: "monitor_pass_errors_total", labels: []string{"loop=scanner"}},
		{name: "monitor_pass_errors_total", labels: []string{"loop=priority"}},
		{name: "monitor_pass_errors_total", labels: []string{"loop=cleanup"}},
		{name: "monitor_arrival_latency_seconds", value: float64(pairs)},
		{name: "monitor_priority_latency_seconds", value: 1, atLeast: true},
		{name: "monitor_job_turnaround_seconds", labels: []string{"outcome=succeeded"}, value: 1, atLeast: true},
		{name: "monitor_job_turnaround_seconds", labels: []string{"outcome=failed"}, value: 1, atLeast: true},
		{name: "monitor_active", value: 1},
		{name: "monitor_build_info", value: 1},
		{name: "go_goroutines", value: 1, atLeast: true},
		{name: "process_resident_memory_bytes", value: 1, atLeast: true},
	})
	ok, _ := metricValue(fams, "monitor_job_turnaround_seconds", "outcome=succeeded")
	ko, _ := metricValue(fams, "monitor_job_turnaround_seconds", "outcome=failed")
	if ok+ko != total {
		t.Errorf("job turnarounds observed: %v succeeded + %v failed, want %v", ok, ko, total)
	}
	rep := checkStatusAgrees(t, addr, configPath)
	if len(rep.Processors) != 1 || rep.Processors[0].Name != "sim-a" || rep.Processors[0].State != "live" {
		t.Errorf("/api/status processors: %+v", rep.Processors)
	}
	var queued int64
	for _, m := range rep.Daemon.Throughput {
		queued += m.Queued
	}
	if queued != int64(total) {
		t.Errorf("/api/status throughput: %d queued in the last hour, want %v", queued, total)
	}
	if code, body := get(t, base+"/"); code != http.StatusOK || !strings.Contains(body, "sim-a") {
		t.Errorf("status page: %d, sim-a shown: %v", code, strings.Contains(body, "sim-a"))
	}
}
