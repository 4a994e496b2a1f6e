package cleanup

import (
	"bytes"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

// options configures setup.
type options struct {
	noArchives bool               // both archive settings empty
	archiveDir string             // where the archive trees go; "" a temporary directory
	archive    crashstore.Options // the archives' modes, group, AlwaysCopy
	batchSize  int
	stdRoot    string // the standard tree's root; "" toBeProcessed in a temporary directory
	failedRoot string // the failed archive's root; "" failed in archiveDir
}

// bundle is a Cleaner over temporary trees and a schema of its own.
type bundle struct {
	pool                *pgxpool.Pool
	jobs                *queue.Store
	trees               Trees
	std, deferred       *crashstore.Store
	successful, failed  *crashstore.Store // nil when deleting
	successRoot, failRt string
	log                 *testkit.SyncBuffer
	cleaner             *Cleaner
}

func setup(t testing.TB, o options) *bundle {
	t.Helper()
	b := &bundle{pool: pgtest.Schema(t), log: &testkit.SyncBuffer{}}
	b.jobs = queue.NewStore(b.pool)
	dir := t.TempDir()
	stdRoot := o.stdRoot
	if stdRoot == "" {
		stdRoot = filepath.Join(dir, "toBeProcessed")
	}
	b.std = crashstore.New(stdRoot, crashstore.Options{GID: -1})
	b.deferred = crashstore.New(filepath.Join(dir, "toBeDeferred"), crashstore.Options{GID: -1})
	archiveDir := o.archiveDir
	if archiveDir == "" {
		archiveDir = dir
	}
	b.successRoot, b.failRt = filepath.Join(archiveDir, "successful"), filepath.Join(archiveDir, "failed")
	if o.failedRoot != "" {
		b.failRt = o.failedRoot
	}
	if !o.noArchives {
		b.successful = crashstore.New(b.successRoot, o.archive)
		b.failed = crashstore.New(b.failRt, o.archive)
	}
	b.trees = Trees{Standard: b.std, Deferred: b.deferred, Successful: b.successful, Failed: b.failed}
	logger := slog.New(slog.NewTextHandler(b.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b.cleaner = New(Config{
		DelayFunc: func() time.Duration { return time.Hour },
		BatchSize: o.batchSize,
	}, b.trees, b.jobs, logger)
	return b
}

// crashID returns the i-th test crash id, dated day, depth 2, spread over
// the name branch like real ids.
var crashID = testkit.CrashID

// testDay is the crash date of generated ids.
var testDay = time.Date(2009, 9, 28, 0, 0, 0, 0, time.UTC)

// pairData is the content of a crash's files: distinct per id and per file.
func pairData(id string) (dump, json []byte) {
	return []byte(strings.Repeat("dump of "+id+"\n", 1+len(id)%7)), []byte(`{"uuid": "` + id + `"}`)
}

// put writes complete pairs into tree as a collector does, and removes their
// inbox links as the scanner does once they are queued (keepLinks leaves
// them).
func put(t testing.TB, tree *crashstore.Store, keepLinks bool, ids ...string) map[string]crashstore.Entry {
	t.Helper()
	pairs := make([]testkit.Pair, len(ids))
	for i, id := range ids {
		dump, json := pairData(id)
		pairs[i] = testkit.Pair{ID: id, Webhead: "webhead01", At: testDay.Add(12 * time.Hour), Dump: dump, JSON: json}
	}
	out := make(map[string]crashstore.Entry, len(ids))
	for _, e := range testkit.WritePairs(t, tree, &testkit.PairOpts{Fresh: true, Queued: !keepLinks}, pairs...) {
		out[e.ID] = e
	}
	return out
}

// finish inserts finished jobs (no owner), completed in the given order.
func finish(t testing.TB, pool *pgxpool.Pool, success bool, ids ...string) {
	t.Helper()
	state := testkit.Failed
	if success {
		state = testkit.Succeeded
	}
	testkit.Jobs(t, pool, state, 0, ids...)
}

// rows returns the uuids of the jobs table, sorted.
func rows(t testing.TB, pool *pgxpool.Pool) []string {
	t.Helper()
	return testkit.QueryColumn[string](t, pool, `SELECT uuid FROM jobs ORDER BY uuid`)
}

// runOnce runs a pass and fails the test on error.
func (b *bundle) runOnce(t testing.TB) Result {
	t.Helper()
	res, err := b.cleaner.RunOnce(t.Context())
	if err != nil {
		t.Fatalf("RunOnce: %v\nlog:\n%s", err, b.log)
	}
	return res
}

// treeFiles maps each crash id to the files of it under root (relative
// paths), links excluded, temporary files under their own name.
func treeFiles(t testing.TB, root string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, r := range testkit.Files(t, root) {
		name := filepath.Base(r)
		id := strings.TrimSuffix(strings.TrimSuffix(name, ".json"), ".dump")
		out[id] = append(out[id], r)
	}
	return out
}

// checkArchived checks that each id's pair is in archive, byte for byte,
// once (both files in its crash-date directory), and nowhere in the source
// trees.
func checkArchived(t testing.TB, archive *crashstore.Store, ids []string, sources ...*crashstore.Store) {
	t.Helper()
	files := treeFiles(t, archive.Root())
	for _, id := range ids {
		rel := testDayOf(id).Format("20060102") + "/name/" + radix(id) + "/" + id
		want := []string{rel + ".dump", rel + ".json"}
		got := slices.Sorted(slices.Values(files[id]))
		if !slices.Equal(got, want) {
			t.Errorf("%s in %s: %v, want %v", id, archive.Root(), got, want)
			continue
		}
		dump, json := pairData(id)
		checkBytes(t, filepath.Join(archive.Root(), want[0]), dump)
		checkBytes(t, filepath.Join(archive.Root(), want[1]), json)
	}
	for _, src := range sources {
		have := treeFiles(t, src.Root())
		for _, id := range ids {
			if len(have[id]) > 0 {
				t.Errorf("%s still in %s: %v", id, src.Root(), have[id])
			}
		}
	}
}

// radix is the name-branch directory of an id below name/.
func radix(id string) string {
	var parts []string
	for i := range crashstore.IDDepth(id) {
		parts = append(parts, id[2*i:2*i+2])
	}
	return strings.Join(parts, "/")
}

// testDayOf is the daily directory of an id in an archive.
func testDayOf(id string) time.Time {
	d, ok := crashstore.IDDate(id)
	if !ok {
		return time.Now().UTC()
	}
	return d
}

func checkBytes(t testing.TB, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Error(err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s holds %q, want %q", p, got, want)
	}
}

// fileGID returns a path's group.
func fileGID(t testing.TB, p string) int {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Gid)
}

// archiveGroup returns a group the test process may give files other than
// its own: any as root, else a supplementary group; 0 when none.
func archiveGroup() int {
	if os.Geteuid() == 0 {
		for _, name := range []string{"nogroup", "daemon", "bin"} {
			if g, err := user.LookupGroup(name); err == nil {
				if n, err := strconv.Atoi(g.Gid); err == nil && n > 0 && n != os.Getegid() {
					return n
				}
			}
		}
		return 4242
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if g > 0 && g != os.Getegid() {
			return g
		}
	}
	return 0
}

// otherFileSystem returns a fresh directory in /dev/shm when it is another
// file system than the test's temporary directories, else "".
func otherFileSystem(t testing.TB) string {
	t.Helper()
	dev := func(p string) (uint64, bool) {
		fi, err := os.Stat(p)
		if err != nil {
			return 0, false
		}
		return uint64(fi.Sys().(*syscall.Stat_t).Dev), true
	}
	shm, ok1 := dev("/dev/shm")
	here, ok2 := dev(t.TempDir())
	if !ok1 || !ok2 || shm == here {
		return ""
	}
	dir, err := os.MkdirTemp("/dev/shm", "cleanup-test-")
	if err != nil {
		return ""
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
