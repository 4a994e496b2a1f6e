package scanner

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

const checkIn = 5 * time.Minute

// testBundle is a scanner over a temporary tree and its own schema.
type testBundle struct {
	pool    *pgxpool.Pool
	crashes *crashstore.Store
	scanner *Scanner
	now     time.Time // submission times of the fixtures are before this
}

func setup(t *testing.T, layout crashstore.Layout) *testBundle {
	t.Helper()
	pool := pgtest.Schema(t)
	root := filepath.Join(t.TempDir(), "toBeProcessed")
	crashes := crashstore.New(root, crashstore.Options{Layout: layout, GID: -1})
	sc := New(Config{
		DelayFunc:   func() time.Duration { return time.Hour },
		CheckInFunc: func() time.Duration { return checkIn },
		BatchSize:   7, // several batches per pass in the tests
	}, crashes, queue.NewStore(pool), slog.New(slog.NewTextHandler(t.Output(), nil)))
	return &testBundle{pool: pool, crashes: crashes, scanner: sc, now: time.Now().UTC()}
}

// processors registers processors seen ago (DB clock) and returns their ids.
func (b *testBundle) processors(t *testing.T, ago ...time.Duration) []int64 {
	t.Helper()
	return testkit.Processors(t, b.pool, ago...)
}

// put writes complete, settled pairs submitted a minute apart, oldest first.
func (b *testBundle) put(t *testing.T, n int) []crashstore.Entry {
	t.Helper()
	pairs := make([]testkit.Pair, n)
	for i := range pairs {
		at := b.now.Add(-time.Duration(n-i) * time.Minute)
		id := fmt.Sprintf("%08x-0000-4000-8000-00000%01d%s", i, 2, at.Format("060102"))
		pairs[i] = testkit.Pair{ID: id, Webhead: fmt.Sprintf("web%d", i%2), At: at}
	}
	return testkit.WritePairs(t, b.crashes, nil, pairs...)
}

// settleFiles ages a pair's files past the settle time.
func settleFiles(t *testing.T, e crashstore.Entry) {
	t.Helper()
	testkit.Settle(t, e.JSONPath, e.DumpPath)
}

type jobRow struct {
	ID    int64
	UUID  string
	Owner int64
}

func (b *testBundle) jobs(t *testing.T) []jobRow {
	t.Helper()
	rows, err := b.pool.Query(t.Context(), "SELECT id, uuid, owner FROM jobs ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []jobRow
	for rows.Next() {
		var r jobRow
		if err := rows.Scan(&r.ID, &r.UUID, &r.Owner); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func linkExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func TestRunOnce(t *testing.T) {
	t.Parallel()

	for _, layout := range []crashstore.Layout{crashstore.LayoutDaily, crashstore.LayoutFlat} {
		t.Run("QueuesEveryPairOnceBalancedInOrder/"+string(layout), func(t *testing.T) {
			t.Parallel()
			b := setup(t, layout)
			procs := b.processors(t, 0, 0, 0)
			es := b.put(t, 20)

			res, err := b.scanner.RunOnce(t.Context())
			if err != nil || res.Queued != 20 {
				t.Fatalf("RunOnce() = %+v, %v; want 20 queued", res, err)
			}
			jobs := b.jobs(t)
			byID := map[string]crashstore.Entry{}
			for _, e := range es {
				byID[e.ID] = e
			}
			// Submission order: (slot, webhead leaf) never goes back.
			order := func(e crashstore.Entry) string {
				return e.Slot.Format(time.RFC3339) + "/" + filepath.Base(filepath.Dir(e.DateLink))
			}
			load := map[int64]int{}
			for i, j := range jobs {
				e, ok := byID[j.UUID]
				if !ok {
					t.Fatalf("job %s is not one of the pairs", j.UUID)
				}
				if i > 0 && order(e) < order(byID[jobs[i-1].UUID]) {
					t.Errorf("job %d (%s) queued after a later submission (%s)", i, order(e), order(byID[jobs[i-1].UUID]))
				}
				load[j.Owner]++
			}
			if len(jobs) != len(es) {
				t.Errorf("%d jobs, want %d", len(jobs), len(es))
			}
			counts := []int{load[procs[0]], load[procs[1]], load[procs[2]]}
			if slices.Max(counts)-slices.Min(counts) > 1 {
				t.Errorf("loads %v, want max-min <= 1", counts)
			}
			for _, e := range es {
				if linkExists(e.DateLink) || linkExists(e.NameLink) {
					t.Errorf("inbox links of %s remain", e.ID)
				}
				if !linkExists(e.JSONPath) || !linkExists(e.DumpPath) {
					t.Errorf("files of %s were touched", e.ID)
				}
			}

			res, err = b.scanner.RunOnce(t.Context())
			if err != nil || res.Queued+res.Existing != 0 || len(b.jobs(t)) != 20 {
				t.Errorf("second RunOnce() = %+v, %v; want nothing more", res, err)
			}
		})
	}

	// Classic 6.2 #38 (destructiveDateWalk), fixed: the walk yields exactly
	// the 14 classic ids; it queues them, and only then removes their inbox
	// links and the emptied date directories. The daily directories keep an
	// empty date directory (a daily directory keeps its date and name
	// directories), and the files stay.
	for _, layout := range []crashstore.Layout{crashstore.LayoutDaily, crashstore.LayoutFlat} {
		t.Run("Classic38_QueuesTheClassicTreeAndEmptiesTheInbox/"+string(layout), func(t *testing.T) {
			t.Parallel()
			b := setup(t, layout)
			b.processors(t, 0, 0, 0, 0)
			fxs := testkit.ClassicPairs(t, "jsonFileData")
			for i := range fxs {
				fxs[i].Dump = []byte("dump of " + fxs[i].ID)
			}
			es := testkit.WritePairs(t, b.crashes, nil, fxs...)
			res, err := b.scanner.RunOnce(t.Context())
			if err != nil || res.Queued != len(fxs) || res.Incomplete != 0 {
				t.Fatalf("RunOnce() = %+v, %v; want %d queued", res, err, len(fxs))
			}
			var got, want []string
			for _, j := range b.jobs(t) {
				got = append(got, j.UUID)
			}
			for _, fx := range fxs {
				want = append(want, fx.ID)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("queued %v\nwant %v", got, want)
			}
			for _, e := range es {
				if linkExists(e.DateLink) || linkExists(e.NameLink) {
					t.Errorf("inbox links of %s remain", e.ID)
				}
				if !linkExists(e.JSONPath) || !linkExists(e.DumpPath) {
					t.Errorf("files of %s were touched", e.ID)
				}
			}
			dateDirs, _ := filepath.Glob(filepath.Join(b.crashes.Root(), "*", "date"))
			if layout == crashstore.LayoutFlat {
				dateDirs = []string{filepath.Join(b.crashes.Root(), "date")}
			}
			if len(dateDirs) == 0 {
				t.Fatal("no date directory left: the daily directories' date directories must stay")
			}
			for _, d := range dateDirs {
				left, err := os.ReadDir(d)
				if err != nil || len(left) != 0 {
					t.Errorf("%s after the pass: %v, %v; want an empty directory", d, left, err)
				}
			}
		})
	}

	// Ids that are plain uuids (no depth digit and date tail) are stored
	// under today and depth 4, and queued like any other.
	t.Run("PlainUUIDs", func(t *testing.T) {
		t.Parallel()
		b := setup(t, crashstore.LayoutDaily)
		b.processors(t, 0)
		ids := []string{
			"6ba7b810-9dad-11d1-80b4-00c04fd430c8", // letters in the tail
			"f47ac10b-58cc-4372-a567-0e02b2c3d479", // random version 4
			"123e4567-e89b-12d3-a456-426614999999", // digits, but month 99
		}
		for i, id := range ids {
			if crashstore.IDDepth(id) != 4 {
				t.Fatalf("IDDepth(%s) = %d, want 4", id, crashstore.IDDepth(id))
			}
			testkit.WritePairs(t, b.crashes, nil, testkit.Pair{ID: id, At: b.now.Add(-time.Duration(3-i) * time.Minute)})
		}
		res, err := b.scanner.RunOnce(t.Context())
		if err != nil || res.Queued != len(ids) {
			t.Fatalf("RunOnce() = %+v, %v; want %d queued", res, err, len(ids))
		}
		for i, j := range b.jobs(t) {
			if j.UUID != ids[i] {
				t.Errorf("job %d is %s, want %s (submission order)", i, j.UUID, ids[i])
			}
		}
	})

	t.Run("IncompletePairWaits", func(t *testing.T) {
		t.Parallel()
		b := setup(t, crashstore.LayoutDaily)
		b.processors(t, 0)
		id := "4dd21cc0-49d9-46ae-a42b-fadb42090928"
		e, err := b.crashes.CreateLinks(id, "web1", b.now)
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.scanner.RunOnce(t.Context())
		if err != nil || res.Queued != 0 || res.Incomplete != 1 {
			t.Fatalf("links only: RunOnce() = %+v, %v; want 1 incomplete", res, err)
		}
		if b.scanner.delay() != DefaultRecheck {
			t.Errorf("delay while a pair is written = %v, want %v", b.scanner.delay(), DefaultRecheck)
		}
		// The dump, then the json, still being written when the pass has
		// waited out the settle time (modified "in the future", as by a
		// writer whose clock is ahead): not complete yet.
		for _, p := range []string{e.DumpPath, e.JSONPath} {
			if err := os.WriteFile(p, []byte("x"), 0o660); err != nil {
				t.Fatal(err)
			}
		}
		ahead := time.Now().Add(time.Hour)
		if err := os.Chtimes(e.JSONPath, ahead, ahead); err != nil {
			t.Fatal(err)
		}
		if res, _ := b.scanner.RunOnce(t.Context()); res.Queued != 0 {
			t.Fatalf("files still being written: queued %d, want 0 until they settle", res.Queued)
		}
		if in := b.scanner.incomplete.Get(id); in == nil || !in.waited {
			t.Errorf("the pair waited for in vain is not marked so (%+v): every pass would wait for it again", in)
		}
		settleFiles(t, e)
		if res, err := b.scanner.RunOnce(t.Context()); err != nil || res.Queued != 1 {
			t.Fatalf("settled: RunOnce() = %+v, %v; want 1 queued", res, err)
		}
		// The next sweep is due processorCheckInTime after this one.
		if d := b.scanner.delay(); d > checkIn || d < checkIn-time.Minute {
			t.Errorf("delay after the pair was queued = %v, want just under %v", d, checkIn)
		}
	})

	t.Run("AlreadyQueuedIdIsNotQueuedAgain", func(t *testing.T) {
		t.Parallel()
		b := setup(t, crashstore.LayoutDaily)
		procs := b.processors(t, 0)
		es := b.put(t, 3)
		// As after a crash between the commit and the link removal.
		testkit.Jobs(t, b.pool, testkit.Succeeded, procs[0], es[1].ID)
		res, err := b.scanner.RunOnce(t.Context())
		if err != nil || res.Queued != 2 || res.Existing != 1 {
			t.Fatalf("RunOnce() = %+v, %v; want 2 queued, 1 existing", res, err)
		}
		if n := len(b.jobs(t)); n != 3 {
			t.Errorf("%d jobs, want 3", n)
		}
		if linkExists(es[1].DateLink) {
			t.Error("the already-queued pair is still in the inbox")
		}
	})

	t.Run("NoLiveProcessorLosesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, crashstore.LayoutDaily)
		stale := b.processors(t, checkIn+time.Minute) // stale: gets no work
		es := b.put(t, 10)
		res, err := b.scanner.RunOnce(t.Context())
		if err != nil || !res.Waiting || res.Queued != 0 {
			t.Fatalf("RunOnce() = %+v, %v; want waiting, nothing queued", res, err)
		}
		if d := b.scanner.delay(); d != DefaultWaitForProcessor {
			t.Errorf("delay while waiting = %v, want %v", d, DefaultWaitForProcessor)
		}
		for _, e := range es {
			if !linkExists(e.DateLink) {
				t.Fatalf("%s left the inbox without a job", e.ID)
			}
		}
		live := b.processors(t, 0)
		res, err = b.scanner.RunOnce(t.Context())
		if err != nil || res.Queued != 10 {
			t.Fatalf("after a processor came alive: RunOnce() = %+v, %v; want 10 queued", res, err)
		}
		for _, j := range b.jobs(t) {
			if j.Owner != live[0] || j.Owner == stale[0] {
				t.Errorf("job %s owned by %d, want the live %d", j.UUID, j.Owner, live[0])
			}
		}
	})

	t.Run("ReapsDeadProcessorsEachPass", func(t *testing.T) {
		t.Parallel()
		b := setup(t, crashstore.LayoutDaily)
		procs := b.processors(t, 0, 3*checkIn)
		testkit.Jobs(t, b.pool, testkit.Started, procs[1], "0bba929f-8721-460c-dead-a43c20071025")
		res, err := b.scanner.RunOnce(t.Context())
		if err != nil || !slices.Equal(res.Reaped.Dead, []int64{procs[1]}) {
			t.Fatalf("RunOnce() = %+v, %v; want processor %d reaped", res, err, procs[1])
		}
		if jobs := b.jobs(t); len(jobs) != 1 || jobs[0].Owner != procs[0] {
			t.Errorf("jobs after reaping = %+v, want one owned by %d", jobs, procs[0])
		}
	})

	t.Run("FirstPassDone", func(t *testing.T) {
		t.Parallel()
		b := setup(t, crashstore.LayoutDaily)
		select {
		case <-b.scanner.FirstPassDone():
			t.Fatal("FirstPassDone closed before any pass")
		default:
		}
		if _, err := b.scanner.RunOnce(t.Context()); err != nil {
			t.Fatal(err)
		}
		select {
		case <-b.scanner.FirstPassDone():
		default:
			t.Fatal("FirstPassDone still open after a pass")
		}
		if _, err := b.scanner.RunOnce(t.Context()); err != nil { // closes nothing twice
			t.Fatal(err)
		}
	})

	t.Run("DeadProcessorWithoutLiveOneRetriesSoon", func(t *testing.T) {
		t.Parallel()
		b := setup(t, crashstore.LayoutDaily)
		b.processors(t, 3*checkIn)
		res, err := b.scanner.RunOnce(t.Context())
		if err != nil || !res.Reaped.NoLiveProcessor {
			t.Fatalf("RunOnce() = %+v, %v; want a dead processor and no live one", res, err)
		}
		// Its jobs go out within seconds of a processor checking in, not
		// at the next regular pass.
		if d := b.scanner.delay(); d != DefaultWaitForProcessor {
			t.Errorf("delay = %v, want %v", d, DefaultWaitForProcessor)
		}
	})

	t.Run("MalformedTreeDoesNotStopThePass", func(t *testing.T) {
		t.Parallel()
		b := setup(t, crashstore.LayoutDaily)
		b.processors(t, 0)
		es := b.put(t, 4)
		leaf := filepath.Dir(es[0].DateLink)
		for _, bad := range []struct{ name, target string }{
			{"not-a-crash-id", "../../../../name/00/00"},
			{"4dd21cc0-49d9-46ae-a42b-fadb42090928", "../../../../name/no/where"},
			{"5dd21cc0-49d9-46ae-a42b-fadb42090928", "/etc"},
		} {
			if err := os.Symlink(bad.target, filepath.Join(leaf, bad.name)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(b.crashes.Root(), "garbage.txt"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := b.scanner.RunOnce(t.Context())
		if err != nil || res.Queued != 4 {
			t.Fatalf("RunOnce() = %+v, %v; want the 4 valid pairs queued", res, err)
		}
	})
}

// TestRunWakesOnNewPair: with an hour between scans, a pair written while
// the scanner idles is queued within a second of being complete.
func TestRunWakesOnNewPair(t *testing.T) {
	t.Parallel()
	b := setup(t, crashstore.LayoutDaily)
	b.processors(t, 0)
	// The root exists (as in production); the daily, date, hour, minute and
	// webhead directories do not yet: this covers watching new directories.
	if err := os.MkdirAll(b.crashes.Root(), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.scanner.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	}()

	for i := range 3 {
		id := fmt.Sprintf("%08x-49d9-46ae-a42b-fadb42090928", i)
		testkit.WritePairs(t, b.crashes, &testkit.PairOpts{Fresh: true}, testkit.Pair{ID: id})
		complete := time.Now()
		testkit.Eventually(t, fmt.Sprintf("pair %d to be queued", i), func() bool { return len(b.jobs(t)) == i+1 })
		t.Logf("pair %d queued %v after it was written", i, time.Since(complete).Round(time.Millisecond))
	}
}
