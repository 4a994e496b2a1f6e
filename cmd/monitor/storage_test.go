package main

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
)

// The storage faults through `monitor run` (root only: real faults need
// mounts, and the permission case runs the monitor as another user).

// resumeWithin is how soon after a fault clears its work must be done.
const resumeWithin = 30 * time.Second

// faultRun is a monitor configuration for a storage fault test: cleanup
// passes an hour apart, so that only the fault's retries make it try again.
func faultRun(t *testing.T, dir string, pool *pgxpool.Pool) (testkit.Config, string) {
	t.Helper()
	cfg := testkit.BaseConfig(dir, testkit.SchemaURL(t, pool))
	cfg["cleanupJobsLoopDelay"] = "01:00:00"
	path := filepath.Join(dir, "monitor.yaml")
	cfg.Write(t, path)
	return cfg, path
}

// checkFaultRun checks that while the fault lasted the successful crashes
// were archived and the failed ones kept (rows and files, no failure
// records), then clears the fault with fix and checks that within 30 s every
// pair is archived once, byte for byte, its row gone, and that the fault's
// start (logged) and end were each logged once.
func checkFaultRun(t *testing.T, d *testkit.Proc, pool *pgxpool.Pool, cfg testkit.Config, pairs []cleanupPair, logged string, fix func()) {
	t.Helper()
	failed := 0
	for _, p := range pairs {
		if !p.success {
			failed++
		}
	}
	d.WaitLog(t, logged, 1)
	if !testkit.Poll(t, testkit.WaitTimeout(), func() bool { return countJobs(t, pool) == failed }) {
		t.Fatalf("%d rows left, want the %d failed ones:\n%s", countJobs(t, pool), failed, d.LogText())
	}
	if n := testkit.QueryInt(t, pool, `SELECT count(*) FROM monitor_cleanup_failures`); n != 0 {
		t.Errorf("%d failure records for a fault of the archive", n)
	}
	if files := len(testkit.Files(t, cfg["saveFailedMinidumpsTo"])); files != 0 && !strings.Contains(logged, "full") {
		t.Errorf("%d files in the failed archive while it is at fault", files)
	}
	// A retry that found the archive still at fault: a pass that only held
	// jobs (it logs at DEBUG only).
	d.WaitLog(t, "DEBUG - cleanup - cleanup pass archived=0", 1)

	fix()
	fixed := time.Now()
	if !testkit.Poll(t, resumeWithin, func() bool { return countJobs(t, pool) == 0 }) {
		t.Fatalf("%d rows left %s after the fix:\n%s", countJobs(t, pool), resumeWithin, d.LogText())
	}
	t.Logf("every pair archived %s after the fix", time.Since(fixed).Round(time.Millisecond))
	d.WaitLog(t, "storage fault cleared: archive of failed crashes", 1)
	stopDaemon(t, d)
	checkCleanupArchives(t, cfg, pairs)
	log := d.LogText()
	if n := strings.Count(log, logged); n != 1 {
		t.Errorf("%q logged %d times, want once:\n%s", logged, n, log)
	}
	if n := strings.Count(log, "storage fault"); n != 2 {
		t.Errorf("%d lines about storage faults, want its start and its end:\n%s", n, log)
	}
	for _, bad := range []string{"will be retried", "pass failed", "not found for cleanup"} {
		if strings.Contains(log, bad) {
			t.Errorf("the log says %q:\n%s", bad, log)
		}
	}
}

// TestRunArchiveFull: the failed-crash archive is a 1 MiB tmpfs, full when
// `monitor run` starts. The log says once (WARNING) that it is full and
// where to free space; the successful crashes are archived; the failed ones
// wait, and are tried again. Grown to 64 MiB (and 10,000 inodes: its 200
// would not hold the 100 pairs), every failed pair is archived within 30 s.
func TestRunArchiveFull(t *testing.T) {
	testkit.RequireRoot(t)
	t.Parallel()
	pool := pgtest.Schema(t)
	cfg, path := faultRun(t, t.TempDir(), pool)
	failedRoot := cfg["saveFailedMinidumpsTo"]
	testkit.MountTmpfs(t, failedRoot, "size=1m,nr_inodes=200")
	std := crashstore.New(cfg["storageRoot"], crashstore.Options{GID: -1})
	deferred := crashstore.New(cfg["deferredStorageRoot"], crashstore.Options{GID: -1})
	pairs := writeFinishedPairs(t, pool, std, deferred, 300)
	testkit.Fill(t, failedRoot, ".filler")

	d := startDaemon(t, path, cfg["logFilePathname"])
	checkFaultRun(t, d, pool, cfg, pairs,
		"WARNING - cleanup - storage fault: archive of failed crashes file system full: free space on "+failedRoot,
		func() {
			testkit.Remount(t, failedRoot, "size=64m,nr_inodes=10000")
			// Not part of the archive, which the check reads whole.
			if err := os.Remove(filepath.Join(failedRoot, ".filler")); err != nil {
				t.Fatal(err)
			}
		})
}

// TestRunArchiveNotPermitted: `monitor run` as an unprivileged user (nobody)
// whose failed-crash archive it may not write (mode 0500): a real EACCES,
// which root would not get. Logged once with what to do; the successful
// crashes go on; given write permission, every failed pair is archived
// within 30 s.
func TestRunArchiveNotPermitted(t *testing.T) {
	testkit.RequireRoot(t)
	t.Parallel()
	const nobody = 65534
	pool := pgtest.Schema(t)
	// A directory nobody can reach: the test's temporary directories are
	// private to root.
	dir, err := os.MkdirTemp("", "monitor-eacces-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "monitor")
	copyFile(t, monitorBin, bin, 0o755)
	cfg, path := faultRun(t, dir, pool)
	std := crashstore.New(cfg["storageRoot"], crashstore.Options{GID: -1})
	deferred := crashstore.New(cfg["deferredStorageRoot"], crashstore.Options{GID: -1})
	pairs := writeFinishedPairs(t, pool, std, deferred, 60)
	failedRoot := cfg["saveFailedMinidumpsTo"]
	if err := os.Mkdir(failedRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	chownTree(t, dir, nobody)
	if err := os.Chmod(failedRoot, 0o500); err != nil {
		t.Fatal(err)
	}

	d := testkit.StartProc(t, "/usr/bin/setpriv", cfg["logFilePathname"],
		"--reuid=65534", "--regid=65534", "--clear-groups", "--", bin, "run", "-c", path)
	checkFaultRun(t, d, pool, cfg, pairs,
		"WARNING - cleanup - storage fault: archive of failed crashes not permitted: let the monitor's user read and write "+failedRoot,
		func() {
			if err := os.Chmod(failedRoot, 0o700); err != nil {
				t.Fatal(err)
			}
		})
}

// copyFile copies src to dst with mode perm.
func copyFile(t *testing.T, src, dst string, perm fs.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// chownTree gives everything under dir (dir included) to uid and its group.
func chownTree(t *testing.T, dir string, uid int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
	if err != nil {
		t.Fatal(err)
	}
}
