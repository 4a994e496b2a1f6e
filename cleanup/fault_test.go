package cleanup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/internal/testkit"
)

// The cleanup loop under real faults of whole trees (root only: tmpfs
// mounts, remounts, the immutable flag, bind mounts): the jobs that need the
// tree wait without failure records, one line says what to do, the others
// go on, and once the fault is gone every pair is archived within 30 s,
// exactly once, byte for byte, and its row removed.

// resumeWithin is how soon after a fault clears its work must be done.
const resumeWithin = 30 * time.Second

// running is a Cleaner's Run in the background, stopped at cleanup.
func (b *bundle) running(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.cleaner.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

// failureRecords counts the rows of monitor_cleanup_failures.
func (b *bundle) failureRecords(t *testing.T) int {
	t.Helper()
	return testkit.QueryInt(t, b.pool, `SELECT count(*) FROM monitor_cleanup_failures`)
}

// heldPasses counts the passes that held jobs (the debug line of each).
func (b *bundle) heldPasses() int {
	n := 0
	for line := range strings.Lines(b.log.String()) {
		if strings.Contains(line, "cleanup pass") && !strings.Contains(line, "held=0") {
			n++
		}
	}
	return n
}

// TestCleanupArchiveFaults: the failed-crash archive is a tmpfs of its own
// (1 MiB, 200 inodes), on another file system than the standard tree, so
// pairs are copied into it. It is made full, read-only, or immutable (EPERM
// even for root) while finished jobs wait; the loop runs. The successful
// crashes are archived meanwhile; the failed ones stay in the standard tree
// with their rows, not recorded as failures, retried as a whole; one
// WARNING says what to do. Then the fault is removed (the tmpfs grown,
// remounted read-write, the flag cleared): within 30 s every failed pair is
// archived exactly once, byte for byte, their rows gone, and one line says
// the fault cleared.
func TestCleanupArchiveFaults(t *testing.T) {
	testkit.RequireRoot(t)
	t.Parallel()
	for _, tt := range []struct {
		name       string
		fault, fix func(t *testing.T, root string)
		logged     string
	}{
		{"Full",
			func(t *testing.T, root string) { testkit.Fill(t, root, ".filler") },
			func(t *testing.T, root string) { testkit.Remount(t, root, "size=64m") },
			"storage fault: archive of failed crashes file system full: free space on "},
		{"ReadOnly",
			func(t *testing.T, root string) { testkit.Remount(t, root, "ro") },
			func(t *testing.T, root string) { testkit.Remount(t, root, "rw") },
			"storage fault: archive of failed crashes file system read-only: remount "},
		{"Immutable",
			func(t *testing.T, root string) { testkit.Immutable(t, root, true) },
			func(t *testing.T, root string) { testkit.Immutable(t, root, false) },
			"storage fault: archive of failed crashes not permitted: let the monitor's user read and write "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			failedRoot := filepath.Join(t.TempDir(), "failed")
			testkit.MountTmpfs(t, failedRoot, "size=1m,nr_inodes=200")
			b := setup(t, options{batchSize: 7, failedRoot: failedRoot})
			var ok, ko []string
			for i := range 40 {
				if id := crashID(i, testDay.AddDate(0, 0, i%3)); i%2 == 0 {
					ok = append(ok, id)
				} else {
					ko = append(ko, id)
				}
			}
			put(t, b.std, false, append(ok, ko...)...)
			// Oldest first, interleaved: the failed ones come first in
			// every batch.
			for i := range ko {
				finish(t, b.pool, false, ko[i])
				finish(t, b.pool, true, ok[i])
			}
			tt.fault(t, failedRoot)
			b.running(t)

			testkit.Eventually(t, "the successful crashes archived", func() bool {
				return len(rows(t, b.pool)) == len(ko)
			})
			checkArchived(t, b.successful, ok, b.std)
			// The retries of the failed archive: several, none recorded.
			testkit.Eventually(t, "two more tries of the failed archive", func() bool { return b.heldPasses() >= 3 })
			if got := rows(t, b.pool); !slices.Equal(got, slices.Sorted(slices.Values(ko))) {
				t.Errorf("jobs left = %v, want the failed ones", got)
			}
			if n := b.failureRecords(t); n != 0 {
				t.Errorf("%d failure records for a fault of the archive", n)
			}
			files := treeFiles(t, b.std.Root())
			for _, id := range ko {
				if len(files[id]) != 2 {
					t.Errorf("%s: %v in the standard tree while its archive is at fault, want its pair", id, files[id])
				}
			}

			tt.fix(t, failedRoot)
			fixed := time.Now()
			testkit.EventuallyWithin(t, resumeWithin, "every failed crash archived after the fix", func() bool {
				return len(rows(t, b.pool)) == 0
			})
			t.Logf("%s: resumed %s after the fix", tt.name, time.Since(fixed).Round(time.Millisecond))
			checkArchived(t, b.failed, ko, b.std)
			checkNoTemporary(t, failedRoot)

			log := b.log.String()
			if n := strings.Count(log, tt.logged); n != 1 {
				t.Errorf("%q logged %d times, want once:\n%s", tt.logged, n, log)
			}
			if n := strings.Count(log, "storage fault"); n != 2 {
				t.Errorf("%d lines about storage faults, want the start and the end:\n%s", n, log)
			}
			if n := strings.Count(log, "storage fault cleared: archive of failed crashes "+failedRoot+" works again"); n != 1 {
				t.Errorf("the end of the fault is logged %d times, want once:\n%s", n, log)
			}
			if strings.Contains(log, "will be retried") || strings.Contains(log, "pass failed") {
				t.Errorf("the fault was taken for failures:\n%s", log)
			}
		})
	}
}

// checkNoTemporary fails the test when an interrupted copy left a hidden
// temporary file in root.
func checkNoTemporary(t *testing.T, root string) {
	t.Helper()
	for _, p := range testkit.Files(t, root) {
		if name := filepath.Base(p); strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".tmp") {
			t.Errorf("temporary file %s left in %s", p, root)
		}
	}
}

// TestCleanupStorageRootVanished: the standard tree is a bind mount, which
// goes (umount -l) while the loop runs with finished jobs waiting: the tree
// shows an empty directory, and the loop must not take that for every crash
// being gone: no row is removed, one line says the tree vanished, nothing is
// recorded. Bound again, every pair is archived within 30 s and the rows go.
// The same holds for a loop started while the tree is away, which never saw
// it: a crash found nowhere in a root holding no tree is not taken for gone.
func TestCleanupStorageRootVanished(t *testing.T) {
	testkit.RequireRoot(t)
	t.Parallel()
	for _, sawIt := range []bool{true, false} {
		t.Run(fmt.Sprintf("sawTree=%v", sawIt), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src, root := filepath.Join(dir, "src"), filepath.Join(dir, "toBeProcessed")
			if err := os.Mkdir(src, 0o755); err != nil {
				t.Fatal(err)
			}
			testkit.BindMount(t, src, root)
			b := setup(t, options{batchSize: 5, stdRoot: root})
			first, ko := []string{crashID(1, testDay)}, []string{crashID(2, testDay)}
			var ids []string
			for i := range 12 {
				ids = append(ids, crashID(100+i, testDay))
			}
			put(t, b.std, false, append(append(first, ko...), ids...)...)
			if sawIt {
				finish(t, b.pool, true, first...)
				b.runOnce(t) // the loop has seen the tree
				checkArchived(t, b.successful, first, b.std)
			}
			finish(t, b.pool, true, ids...)
			finish(t, b.pool, false, ko...)

			testkit.Unmount(t, root)
			b.running(t)
			testkit.Eventually(t, "the vanished tree logged", func() bool {
				return strings.Contains(b.log.String(), "storage fault: storage root vanished (")
			})
			testkit.Eventually(t, "a retry", func() bool { return b.heldPasses() >= 2 || strings.Count(b.log.String(), "cleanup pass") >= 2 })
			if got := len(rows(t, b.pool)); got != len(ids)+1 {
				t.Fatalf("%d rows left while the tree is away, want %d:\n%s", got, len(ids)+1, b.log)
			}
			if n := b.failureRecords(t); n != 0 {
				t.Errorf("%d failure records for a vanished tree", n)
			}

			testkit.BindMount(t, src, root)
			back := time.Now()
			testkit.EventuallyWithin(t, resumeWithin, "every crash archived once the tree is back", func() bool {
				return len(rows(t, b.pool)) == 0
			})
			t.Logf("resumed %s after the tree came back", time.Since(back).Round(time.Millisecond))
			checkArchived(t, b.successful, ids, b.std)
			checkArchived(t, b.failed, ko, b.std)
			log := b.log.String()
			for _, bad := range []string{"not found for cleanup", "will be retried", "pass failed"} {
				if strings.Contains(log, bad) {
					t.Errorf("log says %q:\n%s", bad, log)
				}
			}
			if n := strings.Count(log, "storage fault: storage root vanished"); n != 1 {
				t.Errorf("the vanished tree logged %d times, want once:\n%s", n, log)
			}
			if n := strings.Count(log, "storage fault cleared: storage root "+root); n != 1 {
				t.Errorf("its return logged %d times, want once:\n%s", n, log)
			}
		})
	}
}
