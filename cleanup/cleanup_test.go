package cleanup

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/internal/treefault"
	"github.com/crashmonitor/monitor/queue"
	"github.com/crashmonitor/monitor/scanner"
)

// createTestSet writes the classic fixtures of set into a tree as the
// classic createTestSet did: a one-line json and a one-line dump each,
// settled.
func createTestSet(t *testing.T, tree *crashstore.Store, set string) []testkit.Pair {
	t.Helper()
	fxs := testkit.ClassicPairs(t, set)
	for i := range fxs {
		fxs[i].Dump, fxs[i].JSON = pairData(fxs[i].ID)
	}
	testkit.WritePairs(t, tree, nil, fxs...)
	return fxs
}

// classicCleanupSetup is the setup of classic tests 21 and 22: four
// processors, the 14 jsonFileData crashes queued by the standard loop, jobs
// 1, 3, 5, 11 succeeded (with a completion time), 2, 4, 8, 12 failed
// (without), the others untouched. It returns the uuids of each group.
func classicCleanupSetup(t *testing.T, b *bundle) (succeeded, failed, untouched []string) {
	t.Helper()
	ctx := t.Context()
	testkit.LiveProcessors(t, b.pool, 4)
	createTestSet(t, b.std, "jsonFileData")
	sc := scanner.New(scanner.Config{
		DelayFunc:   func() time.Duration { return time.Hour },
		CheckInFunc: func() time.Duration { return 5 * time.Minute },
	}, b.std, b.jobs, slog.New(slog.DiscardHandler))
	if res, err := sc.RunOnce(ctx); err != nil || res.Queued != 14 {
		t.Fatalf("standard loop queued %d, %v; want 14", res.Queued, err)
	}
	if _, err := b.pool.Exec(ctx, `
UPDATE jobs SET success = true, completeddatetime = localtimestamp WHERE id IN (1, 3, 5, 11);
UPDATE jobs SET success = false WHERE id IN (2, 4, 8, 12)`); err != nil {
		t.Fatal(err)
	}
	group := func(where string) []string {
		return testkit.QueryColumn[string](t, b.pool, `SELECT uuid FROM jobs WHERE `+where+` ORDER BY id`)
	}
	succeeded, failed, untouched = group(`success`), group(`NOT success`), group(`success IS NULL`)
	if len(succeeded) != 4 || len(failed) != 4 || len(untouched) != 6 {
		t.Fatalf("groups %d/%d/%d, want 4/4/6", len(succeeded), len(failed), len(untouched))
	}
	return succeeded, failed, untouched
}

// inTree reports whether the json or the dump of id is anywhere in root.
func inTree(t *testing.T, root, id string) bool {
	t.Helper()
	return len(treeFiles(t, root)[id]) > 0
}

// TestClassic21_CleanupWithArchives is classic test 21: after one cleanup
// pass each successful crash is in the successful archive only, each failed
// one in the failed archive only, the untouched ones still in the standard
// tree and in neither archive; and (implied there, asserted here) the
// finished rows are gone.
func TestClassic21_CleanupWithArchives(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	succeeded, failed, untouched := classicCleanupSetup(t, b)

	res := b.runOnce(t)
	if res.Archived != 8 || res.Rows != 8 || res.Failed+res.Missing+res.Incomplete != 0 {
		t.Errorf("pass = %+v, want 8 archived and 8 rows removed", res)
	}
	checkArchived(t, b.successful, succeeded, b.std)
	checkArchived(t, b.failed, failed, b.std)
	for _, id := range succeeded {
		if inTree(t, b.failRt, id) {
			t.Errorf("successful %s in the failed archive", id)
		}
	}
	for _, id := range failed {
		if inTree(t, b.successRoot, id) {
			t.Errorf("failed %s in the successful archive", id)
		}
	}
	for _, id := range untouched {
		if len(treeFiles(t, b.std.Root())[id]) != 2 || inTree(t, b.successRoot, id) || inTree(t, b.failRt, id) {
			t.Errorf("untouched %s moved", id)
		}
	}
	if got := rows(t, b.pool); !slices.Equal(got, slices.Sorted(slices.Values(untouched))) {
		t.Errorf("jobs left = %v, want the untouched %v", got, untouched)
	}
}

// TestClassic22_CleanupWithoutArchives is classic test 22 in its intended
// form (T-2009-07's "they are still removed from the file system", which
// FINAL lost): with both archive settings empty the finished crashes are
// deleted, nothing goes to either archive, the untouched ones stay.
func TestClassic22_CleanupWithoutArchives(t *testing.T) {
	t.Parallel()
	b := setup(t, options{noArchives: true})
	succeeded, failed, untouched := classicCleanupSetup(t, b)

	res := b.runOnce(t)
	if res.Deleted != 8 || res.Rows != 8 || res.Archived+res.Failed+res.Missing != 0 {
		t.Errorf("pass = %+v, want 8 deleted and 8 rows removed", res)
	}
	for _, root := range []string{b.successRoot, b.failRt} {
		if _, err := os.Stat(root); !os.IsNotExist(err) {
			t.Errorf("archive %s exists (stat: %v)", root, err)
		}
	}
	files := treeFiles(t, b.std.Root())
	for _, id := range append(succeeded, failed...) {
		if len(files[id]) > 0 {
			t.Errorf("finished %s still in the standard tree: %v", id, files[id])
		}
	}
	for _, id := range untouched {
		if len(files[id]) != 2 {
			t.Errorf("untouched %s: %v, want its pair", id, files[id])
		}
	}
	// The emptied name directories went too; the daily name directories stay.
	for _, id := range append(succeeded, failed...) {
		day, _ := crashstore.IDDate(id)
		top := filepath.Join(b.std.Root(), day.Format("20060102"), "name", id[:2])
		if _, err := os.Stat(top); err == nil && !slices.ContainsFunc(untouched, func(u string) bool {
			d, _ := crashstore.IDDate(u)
			return d.Equal(day) && u[:2] == id[:2]
		}) {
			t.Errorf("emptied name directory %s left", top)
		}
	}
	if got := rows(t, b.pool); !slices.Equal(got, slices.Sorted(slices.Values(untouched))) {
		t.Errorf("jobs left = %v, want the untouched %v", got, untouched)
	}
}

// TestCleanupBatches: many finished jobs over several batches, some still
// with their inbox links, some in the deferred tree: all archived by kind,
// every row gone, the links gone, unfinished jobs untouched. Those still in
// the inbox are only taken out of it by the first pass (a scanner pass that
// read their links must find their rows) and archived by the second.
func TestCleanupBatches(t *testing.T) {
	t.Parallel()
	b := setup(t, options{batchSize: 7})
	var ok, ko, deferred []string
	for i := range 40 {
		id := crashID(i, testDay)
		switch {
		case i%10 == 9:
			deferred = append(deferred, id)
		case i%3 == 0:
			ko = append(ko, id)
		default:
			ok = append(ok, id)
		}
	}
	links := put(t, b.std, true, ok[:5]...)
	put(t, b.std, false, ok[5:]...)
	put(t, b.std, false, ko...)
	put(t, b.deferred, false, deferred...)
	finish(t, b.pool, true, append(ok, deferred...)...)
	finish(t, b.pool, false, ko...)
	running := crashID(1000, testDay)
	put(t, b.std, false, running)
	testkit.Jobs(t, b.pool, testkit.Queued, 0, running)

	res := b.runOnce(t)
	if res.Archived != 35 || res.Rows != 35 || res.Deferred != 5 {
		t.Errorf("pass = %+v, want 35 archived and removed, 5 deferred", res)
	}
	for _, e := range links {
		if _, err := os.Lstat(e.DateLink); err == nil {
			t.Errorf("%s: still in the inbox after the first pass", e.ID)
		}
		if _, err := os.Stat(e.JSONPath); err != nil {
			t.Errorf("%s: moved by the first pass: %v", e.ID, err)
		}
	}
	if res := b.runOnce(t); res.Archived != 5 || res.Rows != 5 {
		t.Errorf("second pass = %+v, want the 5 deferred ones archived and removed", res)
	}
	checkArchived(t, b.successful, append(ok, deferred...), b.std, b.deferred)
	checkArchived(t, b.failed, ko, b.std)
	for _, e := range links {
		for _, l := range []string{e.DateLink, e.NameLink} {
			if _, err := os.Lstat(l); err == nil {
				t.Errorf("link %s left", l)
			}
		}
	}
	if got := rows(t, b.pool); !slices.Equal(got, []string{running}) {
		t.Errorf("jobs left = %v, want only the running one", got)
	}
	if len(treeFiles(t, b.std.Root())[running]) != 2 {
		t.Error("the pair of an unfinished job was touched")
	}
	// A third pass has nothing to do.
	if res := b.runOnce(t); res != (Result{}) {
		t.Errorf("third pass = %+v, want nothing", res)
	}
}

// TestCleanupDeferred: a finished crash of the deferred tree (a priority
// request found it there) is archived from it; deleted when archiving is
// off.
func TestCleanupDeferred(t *testing.T) {
	t.Parallel()
	for _, noArchives := range []bool{false, true} {
		t.Run(fmt.Sprintf("noArchives=%v", noArchives), func(t *testing.T) {
			t.Parallel()
			b := setup(t, options{noArchives: noArchives})
			fxs := createTestSet(t, b.deferred, "jsonMoreData")
			finish(t, b.pool, true, fxs[0].ID)
			finish(t, b.pool, false, fxs[1].ID)
			b.runOnce(t)
			if noArchives {
				if files := treeFiles(t, b.deferred.Root()); len(files) != 0 {
					t.Errorf("deferred tree still holds %v", files)
				}
			} else {
				checkArchived(t, b.successful, []string{fxs[0].ID}, b.deferred)
				checkArchived(t, b.failed, []string{fxs[1].ID}, b.deferred)
			}
			if got := rows(t, b.pool); len(got) != 0 {
				t.Errorf("jobs left: %v", got)
			}
		})
	}
}

// TestCleanupMissingFiles: a pair without its json, one without its dump,
// and a crash found nowhere never stall the loop: each is archived as far as
// it exists, warned about, and its row removed; the classic monitor stalled
// on the missing dump forever (socorro-classic 7.1 #7).
func TestCleanupMissingFiles(t *testing.T) {
	t.Parallel()
	for _, noArchives := range []bool{false, true} {
		t.Run(fmt.Sprintf("noArchives=%v", noArchives), func(t *testing.T) {
			t.Parallel()
			b := setup(t, options{noArchives: noArchives})
			noJSON, noDump, nowhere, fine := crashID(1, testDay), crashID(2, testDay), crashID(3, testDay), crashID(4, testDay)
			es := put(t, b.std, false, noJSON, noDump, fine)
			os.Remove(es[noJSON].JSONPath)
			os.Remove(es[noDump].DumpPath)
			finish(t, b.pool, true, noJSON, noDump, nowhere, fine)
			if _, err := b.pool.Exec(t.Context(), `INSERT INTO jobs (uuid, success) VALUES ('not a crash id', true)`); err != nil {
				t.Fatal(err)
			}

			res := b.runOnce(t)
			if got := rows(t, b.pool); len(got) != 0 {
				t.Errorf("jobs left: %v\n%s", got, b.log)
			}
			if res.Failed != 0 || res.Missing != 2 {
				t.Errorf("pass = %+v, want 2 missing (nowhere, the bad id), none failed", res)
			}
			if files := treeFiles(t, b.std.Root()); len(files) != 0 {
				t.Errorf("standard tree still holds %v", files)
			}
			log := b.log.String()
			for _, want := range []string{"not found for cleanup", "uuid=" + nowhere, "not a crash id"} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, log)
				}
			}
			if noArchives {
				return
			}
			if res.Archived != 3 || res.Incomplete != 2 {
				t.Errorf("pass = %+v, want 3 archived, 2 of them incomplete", res)
			}
			checkArchived(t, b.successful, []string{fine}, b.std)
			files := treeFiles(t, b.successful.Root())
			if len(files[noJSON]) != 1 || !strings.HasSuffix(files[noJSON][0], ".dump") ||
				len(files[noDump]) != 1 || !strings.HasSuffix(files[noDump][0], ".json") {
				t.Errorf("incomplete pairs archived as %v and %v", files[noJSON], files[noDump])
			}
			if !strings.Contains(log, "crash pair incomplete") || !strings.Contains(log, "json=missing") ||
				!strings.Contains(log, "dump=missing") {
				t.Errorf("no warning about the incomplete pairs:\n%s", log)
			}
		})
	}
}

// TestCleanupFailureRecovers: a file where the archive's daily directory
// must go fails the crashes of that day (tests may run as root, so no chmod
// trick) while the rest of the batch is archived; the failures are recorded
// and shown by status, skipped while backing off, and archived once the
// obstacle is gone and their retry time has come.
func TestCleanupFailureRecovers(t *testing.T) {
	t.Parallel()
	b := setup(t, options{batchSize: 3})
	otherDay := testDay.AddDate(0, 0, 1)
	blocked := []string{crashID(1, otherDay), crashID(2, otherDay)}
	fine := []string{crashID(3, testDay), crashID(4, testDay), crashID(5, testDay), crashID(6, testDay)}
	put(t, b.std, false, append(blocked, fine...)...)
	finish(t, b.pool, true, blocked[0], fine[0], blocked[1], fine[1], fine[2], fine[3])
	inTheWay := filepath.Join(b.successful.Root(), otherDay.Format("20060102"))
	if err := os.MkdirAll(b.successful.Root(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inTheWay, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}

	res := b.runOnce(t)
	if res.Archived != 4 || res.Failed != 2 || res.Rows != 4 {
		t.Errorf("pass = %+v, want 4 archived, 2 failed", res)
	}
	checkArchived(t, b.successful, fine, b.std)
	if got := rows(t, b.pool); !slices.Equal(got, slices.Sorted(slices.Values(blocked))) {
		t.Errorf("jobs left = %v, want the blocked %v", got, blocked)
	}
	if log := b.log.String(); !strings.Contains(log, "will be retried") || !strings.Contains(log, inTheWay) {
		t.Errorf("the failures are not logged with their path:\n%s", log)
	}
	st, err := b.jobs.Status(t.Context(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if st.CleanupFailing != 2 || len(st.CleanupFailures) != 2 || st.CleanupFailures[0].Attempts != 1 ||
		!strings.Contains(st.CleanupFailures[0].LastError, inTheWay) || st.CleanupFailures[0].RetryIn < 50*time.Second {
		t.Errorf("status: %d failing, %+v", st.CleanupFailing, st.CleanupFailures)
	}

	// Backing off: the next pass does not try them.
	if res := b.runOnce(t); res != (Result{}) {
		t.Errorf("pass during the backoff = %+v, want nothing", res)
	}

	// Fixed, and the retry time has come.
	if err := os.Remove(inTheWay); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(t.Context(), `UPDATE monitor_cleanup_failures SET retry_after = localtimestamp - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if res := b.runOnce(t); res.Archived != 2 || res.Rows != 2 {
		t.Errorf("pass after the fix = %+v, want 2 archived", res)
	}
	checkArchived(t, b.successful, blocked, b.std)
	if got := rows(t, b.pool); len(got) != 0 {
		t.Errorf("jobs left: %v", got)
	}
	if st, err := b.jobs.Status(t.Context(), time.Minute); err != nil || st.CleanupFailing != 0 {
		t.Errorf("status after recovery: %d failing, %v", st.CleanupFailing, err)
	}
}

// TestCleanupEveryJobFails: when a whole batch fails (a file in the way of
// the archive's daily directory of every crash) the pass stops instead of
// trying every finished job.
func TestCleanupEveryJobFails(t *testing.T) {
	t.Parallel()
	b := setup(t, options{batchSize: 2})
	var ids []string
	for i := range 5 {
		ids = append(ids, crashID(i, testDay))
	}
	put(t, b.std, false, ids...)
	finish(t, b.pool, true, ids...)
	if err := os.MkdirAll(b.successRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.successRoot, testDay.Format("20060102")), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res := b.runOnce(t)
	if res.Failed != 2 || res.Archived != 0 || res.Held != 0 {
		t.Errorf("pass = %+v, want the first batch of 2 failed and the pass stopped", res)
	}
	if !strings.Contains(b.log.String(), "every job of a batch failed") {
		t.Errorf("log lacks the stop:\n%s", b.log)
	}
}

// TestCleanupArchiveCannotBeMade: an archive whose root cannot be made (the
// directory that should hold it is missing: a file system not mounted) is a
// fault of that tree, not of the jobs: they are held, nothing is recorded
// in monitor_cleanup_failures, one line says what to do, the other archive's
// jobs go on; once the directory is there, the next try archives them and
// one line says the fault cleared. (The tests of real file-system faults,
// which need root, are in fault_test.go.)
func TestCleanupArchiveCannotBeMade(t *testing.T) {
	t.Parallel()
	parent := filepath.Join(t.TempDir(), "not-mounted")
	// The failed archive's root is elsewhere, where it can be made.
	b := setup(t, options{batchSize: 3, archiveDir: parent, failedRoot: filepath.Join(t.TempDir(), "failed")})
	var ok, ko []string
	for i := range 10 {
		if id := crashID(i, testDay); i%2 == 0 {
			ok = append(ok, id)
		} else {
			ko = append(ko, id)
		}
	}
	put(t, b.std, false, append(ok, ko...)...)
	finish(t, b.pool, true, ok...)
	finish(t, b.pool, false, ko...)

	res := b.runOnce(t)
	if res.Archived != len(ko) || res.Failed != 0 || res.Held == 0 {
		t.Errorf("pass = %+v, want the %d failed ones archived, successful ones held", res, len(ko))
	}
	checkArchived(t, b.failed, ko, b.std)
	if got := rows(t, b.pool); !slices.Equal(got, slices.Sorted(slices.Values(ok))) {
		t.Errorf("jobs left = %v, want the successful ones", got)
	}
	if n := testkit.QueryInt(t, b.pool, `SELECT count(*) FROM monitor_cleanup_failures`); n != 0 {
		t.Errorf("%d failure records for a fault of the archive", n)
	}
	// While it waits a pass does not touch the successful jobs.
	if res := b.runOnce(t); res.Archived+res.Failed != 0 {
		t.Errorf("pass during the wait = %+v, want nothing tried", res)
	}
	if err := os.Mkdir(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	testkit.EventuallyWithin(t, treefault.MaxRetry+testkit.WaitTimeout(), "the successful crashes archived", func() bool {
		b.runOnce(t)
		return len(rows(t, b.pool)) == 0
	})
	checkArchived(t, b.successful, ok, b.std)
	log := b.log.String()
	if n := strings.Count(log, "storage fault: archive of successful crashes vanished"); n != 1 {
		t.Errorf("the fault is logged %d times, want once:\n%s", n, log)
	}
	if n := strings.Count(log, "storage fault cleared"); n != 1 {
		t.Errorf("the end of the fault is logged %d times, want once:\n%s", n, log)
	}
	if strings.Contains(log, "will be retried") {
		t.Errorf("the held jobs were logged as failures:\n%s", log)
	}
}

// TestCleanupModesAndGroup: archived files get dumpPermissions and dumpGID,
// the directories made in the archive dirPermissions and dumpGID.
func TestCleanupModesAndGroup(t *testing.T) {
	t.Parallel()
	gid := archiveGroup()
	b := setup(t, options{archive: crashstore.Options{FilePerm: 0o604, DirPerm: 0o751, GID: gid}})
	ids := []string{crashID(1, testDay), crashID(2, testDay)}
	put(t, b.std, false, ids...)
	finish(t, b.pool, false, ids...)
	b.runOnce(t)
	checkArchived(t, b.failed, ids, b.std)
	err := filepath.WalkDir(b.failed.Root(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o604)
		if d.IsDir() {
			want = fs.ModeDir | 0o751
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
		if gid > 0 && fileGID(t, p) != gid {
			t.Errorf("%s: gid %d, want %d", p, fileGID(t, p), gid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if gid == 0 {
		t.Log("no other group available: only the modes were checked")
	}
}

// TestCleanupCrossFileSystem archives into /dev/shm (a tmpfs, another file
// system than the test's temporary directory), or with AlwaysCopy when there
// is none: byte for byte, the sources gone, no temporary file left.
func TestCleanupCrossFileSystem(t *testing.T) {
	t.Parallel()
	o := options{archiveDir: otherFileSystem(t)}
	if o.archiveDir == "" {
		t.Log("/dev/shm is not another file system here: forcing the copy path")
		o.archive.AlwaysCopy = true
	}
	b := setup(t, o)
	var ok, ko []string
	for i := range 30 {
		if id := crashID(i, testDay); i%2 == 0 {
			ok = append(ok, id)
		} else {
			ko = append(ko, id)
		}
	}
	put(t, b.std, false, append(ok, ko...)...)
	finish(t, b.pool, true, ok...)
	finish(t, b.pool, false, ko...)
	if res := b.runOnce(t); res.Archived != 30 || res.Rows != 30 {
		t.Errorf("pass = %+v, want 30 archived", res)
	}
	checkArchived(t, b.successful, ok, b.std)
	checkArchived(t, b.failed, ko, b.std)
	for _, root := range []string{b.successRoot, b.failRt} {
		for id, files := range treeFiles(t, root) {
			if strings.HasPrefix(id, ".") {
				t.Errorf("temporary file left: %v", files)
			}
		}
	}
}

// TestCleanupRunStops: Run returns nil when its context is done.
func TestCleanupRunStops(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.cleaner.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

// The Cleaner uses *queue.Store.
var _ jobStore = (*queue.Store)(nil)
