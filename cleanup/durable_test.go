package cleanup

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

// recordingJobs is the queue's Store that remembers the limits of the
// batches read.
type recordingJobs struct {
	*queue.Store
	mu     sync.Mutex
	limits []int
}

func (r *recordingJobs) FinishedJobsOf(ctx context.Context, v queue.Verdicts, limit int, after *queue.FinishedJob) ([]queue.FinishedJob, error) {
	r.mu.Lock()
	r.limits = append(r.limits, limit)
	r.mu.Unlock()
	return r.Store.FinishedJobsOf(ctx, v, limit, after)
}

// rebuild replaces the bundle's Cleaner by one with cfg (DelayFunc set) on
// jobs (the bundle's own when nil).
func (b *bundle) rebuild(cfg Config, jobs jobStore) {
	if jobs == nil {
		jobs = b.jobs
	}
	cfg.DelayFunc = func() time.Duration { return time.Hour }
	logger := slog.New(slog.NewTextHandler(b.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b.cleaner = New(cfg, b.trees, jobs, logger)
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = crashID(i, testDay)
	}
	return out
}

// TestCleanupBatchesGrow: while full batches keep coming each one is twice
// the one before, up to the cap; the last, partial one ends the pass.
func TestCleanupBatchesGrow(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	rec := &recordingJobs{Store: b.jobs}
	b.rebuild(Config{BatchSize: 2, MaxBatchSize: 8}, rec)
	all := ids(40)
	put(t, b.std, false, all...)
	finish(t, b.pool, true, all...)

	res := b.runOnce(t)
	if res.Archived != 40 || res.Rows != 40 {
		t.Fatalf("pass = %+v, want 40 archived and removed", res)
	}
	// 2, 4, then 8 at a time: 38 in full batches, and a last read of 8
	// that finds the 2 left.
	want := []int{2, 4, 8, 8, 8, 8, 8}
	if !slices.Equal(rec.limits, want) {
		t.Errorf("batch limits = %v, want %v", rec.limits, want)
	}
	checkArchived(t, b.successful, all, b.std)
}

// TestCleanupSyncsOncePerFileSystem: the four trees on one file system cost
// one sync a batch, not four; the rows of a batch are still there when its
// sync runs, and its pairs already archived.
func TestCleanupSyncsOncePerFileSystem(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.rebuild(Config{BatchSize: 5, MaxBatchSize: 5}, nil)
	all := ids(12)
	put(t, b.std, false, all...)
	finish(t, b.pool, true, all...)
	var mu sync.Mutex
	var synced []string
	var rowsAtSync []int
	b.cleaner.sync = func(s *crashstore.Store) error {
		n := len(rows(t, b.pool))
		mu.Lock()
		defer mu.Unlock()
		synced = append(synced, s.Root())
		rowsAtSync = append(rowsAtSync, n)
		return s.Sync()
	}
	res := b.runOnce(t)
	if res.Archived != 12 || res.Rows != 12 {
		t.Fatalf("pass = %+v, want 12 archived and removed", res)
	}
	// Batches of 5, 5 and 2: one sync each, of the first tree.
	if want := []string{b.std.Root(), b.std.Root(), b.std.Root()}; !slices.Equal(synced, want) {
		t.Errorf("synced %v, want %v", synced, want)
	}
	// Each batch's rows are there at its sync: 12 before the first, at
	// least 7 before the second (the first batch's delete may not have run
	// yet), at least 2 before the third.
	if len(rowsAtSync) != 3 || rowsAtSync[0] != 12 || rowsAtSync[1] < 7 || rowsAtSync[2] < 2 {
		t.Errorf("rows at each sync = %v, want 12, ≥7, ≥2", rowsAtSync)
	}
}

// TestCleanupSyncsEachFileSystem: an archive on another file system is
// synced too, once a batch.
func TestCleanupSyncsEachFileSystem(t *testing.T) {
	t.Parallel()
	other := otherFileSystem(t)
	if other == "" {
		t.Skip("/dev/shm is not another file system here")
	}
	b := setup(t, options{archiveDir: other})
	b.rebuild(Config{}, nil)
	all := ids(4)
	put(t, b.std, false, all...)
	finish(t, b.pool, true, all...)
	var mu sync.Mutex
	var synced []string
	b.cleaner.sync = func(s *crashstore.Store) error {
		mu.Lock()
		defer mu.Unlock()
		synced = append(synced, s.Root())
		return s.Sync()
	}
	if res := b.runOnce(t); res.Archived != 4 {
		t.Fatalf("pass = %+v, want 4 archived", res)
	}
	if want := []string{b.std.Root(), b.successful.Root()}; !slices.Equal(synced, want) {
		t.Errorf("synced %v, want %v", synced, want)
	}
}

// TestCleanupSyncFailsRowsStay: when the sync fails (as when the monitor is
// killed between the disk work and the row delete) no row goes, and the
// next pass, repeating the disk work on pairs already moved, finishes every
// job exactly once.
func TestCleanupSyncFailsRowsStay(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.rebuild(Config{BatchSize: 3, MaxBatchSize: 3}, nil)
	all := ids(7)
	put(t, b.std, false, all...)
	finish(t, b.pool, true, all...)
	b.cleaner.sync = func(*crashstore.Store) error { return errors.New("simulated: killed before the sync") }
	if _, err := b.cleaner.RunOnce(t.Context()); err == nil {
		t.Fatal("RunOnce succeeded with every sync failing")
	}
	if got := rows(t, b.pool); len(got) != len(all) {
		t.Fatalf("rows after failed syncs = %v, want all %d", got, len(all))
	}

	b.cleaner.sync = (*crashstore.Store).Sync
	res := b.runOnce(t)
	if res.Archived != len(all) || res.Rows != int64(len(all)) || res.Missing != 0 {
		t.Errorf("repeat pass = %+v, want %d archived (already) and removed", res, len(all))
	}
	checkArchived(t, b.successful, all, b.std)
	if got := rows(t, b.pool); len(got) != 0 {
		t.Errorf("rows left: %v", got)
	}
}

// TestCleanupStartsBeforeScannerPass: Run does not wait for the scanner's
// first pass: the finished jobs without inbox links are cleaned up at once.
// A job whose leftover inbox link the cleanup removed keeps its row, pass
// after pass, until that scanner pass is done (it may have read the link);
// then the next pass archives it.
func TestCleanupStartsBeforeScannerPass(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	ready := make(chan struct{})
	b.rebuild(Config{Ready: ready}, nil)
	all := ids(6)
	linked := all[:2]
	put(t, b.std, true, linked...)
	put(t, b.std, false, all[2:]...)
	finish(t, b.pool, true, all...)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.cleaner.Run(ctx) }()
	testkit.Eventually(t, "the jobs without inbox links cleaned up", func() bool {
		return len(rows(t, b.pool)) == len(linked)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkArchived(t, b.successful, all[2:], b.std)
	for _, id := range linked {
		if e, err := b.std.Lookup(t.Context(), id); err != nil || b.std.InInbox(e) {
			t.Errorf("%s: lookup %v, still in the inbox: %v", id, err, err == nil)
		}
	}

	// Another pass before the scanner's: the rows still wait.
	if res := b.runOnce(t); res.Deferred != len(linked) || res.Rows != 0 {
		t.Errorf("pass before the scanner's first = %+v, want %d deferred, no row removed", res, len(linked))
	}
	if got := rows(t, b.pool); !slices.Equal(got, slices.Sorted(slices.Values(linked))) {
		t.Errorf("rows = %v, want %v", got, linked)
	}
	close(ready)
	if res := b.runOnce(t); res.Archived != len(linked) || res.Rows != int64(len(linked)) {
		t.Errorf("pass after the scanner's first = %+v, want %d archived", res, len(linked))
	}
	checkArchived(t, b.successful, all, b.std)
}
