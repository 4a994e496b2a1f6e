package priority

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/internal/testkit"
)

// TestPriorityStorageRootVanished (root only): the standard tree is a bind
// mount, which goes (umount -l) while the loop runs. A request for a crash
// in it is kept, not dropped as "never found", and the vanished tree is
// logged once; a request for a crash already queued needs no tree and is
// resolved meanwhile. Bound again, the crash is queued within 30 s, and one
// line says the tree is back.
func TestPriorityStorageRootVanished(t *testing.T) {
	testkit.RequireRoot(t)
	t.Parallel()
	b := setup(t, Config{})
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	root := b.standard.Root()
	testkit.BindMount(t, src, root)
	procs := b.live(t, 2)
	at := time.Now().UTC().Add(-time.Hour)
	seen, wanted, queued := testkit.CrashID(1, at), testkit.CrashID(2, at), testkit.CrashID(3, at)
	for _, id := range []string{seen, wanted, queued} {
		write(t, b.standard, id, "web1", at)
	}
	b.request(t, seen)
	if res := b.runOnce(t); res.Queued != 1 {
		t.Fatalf("first pass = %+v, want the crash queued (the loop has seen the tree)", res)
	}
	b.enqueue(t, queued)

	testkit.Unmount(t, root)
	b.request(t, wanted, queued)
	b.start(t)
	eventually(t, "the vanished tree logged", func() bool {
		return len(b.log.find(slog.LevelWarn, "storage fault: storage root vanished")) == 1
	})
	eventually(t, "the queued crash's request resolved", func() bool {
		return slices.Equal(b.requests(t), []string{wanted})
	})
	if j, ok := b.job(t, queued); !ok || j.priority < 1 {
		t.Errorf("the queued crash: %+v, %v; want its priority raised", j, ok)
	}
	if _, ok := b.job(t, wanted); ok {
		t.Fatal("a crash of the vanished tree was queued")
	}

	testkit.BindMount(t, src, root)
	back := time.Now()
	testkit.EventuallyWithin(t, 30*time.Second, "the crash queued once the tree is back", func() bool {
		_, ok := b.job(t, wanted)
		return ok && len(b.requests(t)) == 0
	})
	t.Logf("queued %s after the tree came back", time.Since(back).Round(time.Millisecond))
	if j, _ := b.job(t, wanted); j.priority != 1 || !slices.Contains(procs, j.owner) {
		t.Errorf("the crash's job: %+v", j)
	}
	if lines := b.log.find(slog.LevelError, "never found"); len(lines) > 0 {
		t.Errorf("a request was dropped as never found: %+v", lines)
	}
	if n := len(b.log.find(slog.LevelWarn, "storage fault")); n != 1 {
		t.Errorf("%d warnings about the storage fault, want one", n)
	}
	if n := len(b.log.find(slog.LevelInfo, "storage fault cleared: storage root "+root)); n != 1 {
		t.Errorf("its end logged %d times, want once", n)
	}
	if n := len(b.log.find(slog.LevelWarn, "cannot look up a priority crash")); n != 0 {
		t.Errorf("%d warnings per request, want none", n)
	}
}
