package scanner

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

// The scanner under real storage faults (root only): an inbox directory
// that cannot be read, and a storage root whose file system goes away.

// resumeWithin is how soon after a fault clears its crashes must be queued.
const resumeWithin = 30 * time.Second

// startScanner runs a scanner loop (standardLoopDelay an hour: only the
// faults' retries and the inbox watch make passes) on the tree at root,
// with three live processors.
func startScanner(t *testing.T, root string) (*testBundle, *testkit.SyncBuffer, *figures.Figures) {
	t.Helper()
	pool := pgtest.Schema(t)
	testkit.LiveProcessors(t, pool, 3)
	crashes := crashstore.New(root, crashstore.Options{GID: -1})
	log := &testkit.SyncBuffer{}
	fig := figures.New(figures.Options{})
	sc := New(Config{
		DelayFunc:   func() time.Duration { return time.Hour },
		CheckInFunc: func() time.Duration { return time.Hour },
		Figures:     fig,
	}, crashes, queue.NewStore(pool), slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	return &testBundle{pool: pool, crashes: crashes, scanner: sc, now: time.Now().UTC()}, log, fig
}

// run runs the scanner's loop until the test ends.
func (b *testBundle) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.scanner.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

// queued returns the uuids of the jobs, sorted.
func (b *testBundle) queued(t *testing.T) []string {
	t.Helper()
	return testkit.QueryColumn[string](t, b.pool, `SELECT uuid FROM jobs ORDER BY uuid`)
}

// idsOf returns the sorted ids of entries.
func idsOf(es []crashstore.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ID)
	}
	slices.Sort(out)
	return out
}

// TestScanInboxDirectoryUnreadable: one minute directory of the inbox cannot
// be read (a dead FUSE mount over it: ENOTCONN, for root too). The rest of
// the inbox is queued; the directory is logged once, as unreadable and not
// as malformed; its crashes wait. Once it can be read (unmounted), they are
// queued within 30 s, and one line says it is readable again.
func TestScanInboxDirectoryUnreadable(t *testing.T) {
	testkit.RequireRoot(t)
	t.Parallel()
	b, log, _ := startScanner(t, filepath.Join(t.TempDir(), "toBeProcessed"))
	es := b.put(t, 9) // one a minute: nine minute directories
	hidden := es[4]
	slot := filepath.Dir(filepath.Dir(hidden.DateLink))
	testkit.DeadMount(t, slot)
	b.run(t)

	others := idsOf(slices.Delete(slices.Clone(es), 4, 5))
	testkit.Eventually(t, "the readable part of the inbox queued", func() bool {
		return slices.Equal(b.queued(t), others)
	})
	testkit.Eventually(t, "a retry of the unreadable directory", func() bool {
		return strings.Count(log.String(), "scan pass") >= 3
	})
	if got := b.queued(t); slices.Contains(got, hidden.ID) {
		t.Fatalf("a crash of the unreadable directory was queued: %v", got)
	}
	testkit.Unmount(t, slot)
	readable := time.Now()
	testkit.EventuallyWithin(t, resumeWithin, "its crashes queued once it can be read", func() bool {
		return slices.Equal(b.queued(t), idsOf(es))
	})
	t.Logf("queued %s after it could be read", time.Since(readable).Round(time.Millisecond))
	testkit.Eventually(t, "the end logged", func() bool { return strings.Contains(log.String(), "inbox directory readable again") })

	text := log.String()
	if n := strings.Count(text, "inbox directory unreadable"); n != 1 || !strings.Contains(text, "path="+slot) {
		t.Errorf("the unreadable directory logged %d times, want once naming %s:\n%s", n, slot, text)
	}
	if n := strings.Count(text, "inbox directory readable again"); n != 1 {
		t.Errorf("its end logged %d times, want once:\n%s", n, text)
	}
	if strings.Contains(text, "malformed") || strings.Contains(text, "pass failed") {
		t.Errorf("the unreadable directory was taken for something else:\n%s", text)
	}
}

// TestScanStorageRootVanished: the storage root is a bind mount that goes
// (umount -l) while the scanner runs. The root then shows an empty
// directory: the scanner concludes nothing from it (the inbox figures stay
// what they were, nothing is pruned, the fault is logged once) and retries
// on its backoff; meanwhile collectors keep writing into the real tree.
// Bound again, what arrived is queued within 30 s, and one line says the
// tree is back.
func TestScanStorageRootVanished(t *testing.T) {
	testkit.RequireRoot(t)
	t.Parallel()
	dir := t.TempDir()
	src, root := filepath.Join(dir, "src"), filepath.Join(dir, "toBeProcessed")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	testkit.BindMount(t, src, root)
	b, log, fig := startScanner(t, root)
	first := b.put(t, 3)
	// A pair still being written stays in the inbox: the figures count it.
	writing := testkit.WritePairs(t, b.crashes, &testkit.PairOpts{Fresh: true},
		testkit.Pair{ID: fmt.Sprintf("%08x-0000-4000-8000-00000%01d%s", 99, 2, b.now.Format("060102")), At: b.now.Add(-time.Hour)})[0]
	if err := os.Remove(writing.JSONPath); err != nil { // the json comes last
		t.Fatal(err)
	}
	b.run(t)
	testkit.Eventually(t, "the first crashes queued", func() bool { return slices.Equal(b.queued(t), idsOf(first)) })
	testkit.Eventually(t, "the inbox counted", func() bool { in := fig.Inbox(); return in != nil && in.Incomplete == 1 })

	testkit.Unmount(t, root)
	// Collectors go on writing into the real tree (its source here).
	later := testkit.WritePairs(t, crashstore.New(src, crashstore.Options{GID: -1}), nil,
		testkit.Pair{ID: fmt.Sprintf("%08x-0000-4000-8000-00000%01d%s", 100, 2, b.now.Format("060102")), At: b.now.Add(-time.Minute)})
	select {
	case b.scanner.wake <- struct{}{}: // as the inbox watch would
	default:
	}
	testkit.Eventually(t, "the vanished root logged", func() bool {
		return strings.Contains(log.String(), "storage fault: storage root vanished (")
	})
	faulted := passes(fig)
	testkit.Eventually(t, "two retries", func() bool { return passes(fig) >= faulted+2 })
	if in := fig.Inbox(); in == nil || in.Incomplete != 1 || in.Complete != 0 {
		t.Errorf("the inbox figures changed while the tree was away: %+v", in)
	}

	testkit.BindMount(t, src, root)
	back := time.Now()
	want := idsOf(append(slices.Clone(first), later...))
	testkit.EventuallyWithin(t, resumeWithin, "what arrived meanwhile queued", func() bool {
		return slices.Equal(b.queued(t), want)
	})
	t.Logf("queued %s after the tree came back", time.Since(back).Round(time.Millisecond))
	testkit.Eventually(t, "the return logged", func() bool { return strings.Contains(log.String(), "storage fault cleared") })
	if _, err := os.Lstat(writing.DumpPath); err != nil {
		t.Errorf("the pair being written was touched: %v", err)
	}
	text := log.String()
	if n := strings.Count(text, "storage fault: storage root vanished"); n != 1 {
		t.Errorf("the vanished root logged %d times, want once:\n%s", n, text)
	}
	if n := strings.Count(text, "storage fault cleared: storage root "+root); n != 1 {
		t.Errorf("its return logged %d times, want once:\n%s", n, text)
	}
	if strings.Contains(text, "pass failed") {
		t.Errorf("the fault failed passes:\n%s", text)
	}
}

// passes is how many passes the scanner has ended.
func passes(fig *figures.Figures) int64 {
	for _, p := range fig.Passes() {
		if p.Loop == figures.LoopScanner {
			return p.Passes
		}
	}
	return 0
}
