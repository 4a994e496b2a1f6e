package main

import (
	"context"
	"errors"
	"log/slog"
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
	stopDaemon(t, d)

	ids := []string{wanted}
	for i := range pairs {
		ids = append(ids, standardGen.ID(i))
	}
	for _, id := range ids {
		want, other := "successful", "failed"
		if procsim.Fails(id, seed, failRatio) {
			want, other = other, want
		}
		if n := pairFiles(t, filepath.Join(dir, want), id); n != 2 {
			t.Errorf("%s: %d files in the %s archive, want its pair", id, n, want)
		}
		if n := pairFiles(t, filepath.Join(dir, other), id); n != 0 {
			t.Errorf("%s: %d files in the %s archive, want none", id, n, other)
		}
	}
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
