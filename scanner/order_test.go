package scanner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/testkit"
)

// TestSettlingPairKeepsItsPlace: a pair written just before a pass (inside
// its settle time) is queued before the pairs submitted after it (the jobs'
// ids are the submission order, CONTRACT section 5), while a pair really
// incomplete (its json missing) holds up nobody.
func TestSettlingPairKeepsItsPlace(t *testing.T) {
	t.Parallel()
	b := setup(t, crashstore.LayoutDaily)
	b.processors(t, 0)
	at := func(minutesAgo int) time.Time { return b.now.Add(-time.Duration(minutesAgo) * time.Minute) }
	id := func(i int) string { return fmt.Sprintf("%08x-49d9-46ae-a42b-fadb42090928", i) }

	// The oldest slot: a pair whose json never comes.
	stuck, err := b.crashes.CreateLinks(id(0), "web1", at(5))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stuck.DumpPath, []byte("dump"), 0o660); err != nil {
		t.Fatal(err)
	}
	// Then the settling pair, then two later submissions, settled.
	fresh := testkit.WritePairs(t, b.crashes, &testkit.PairOpts{Fresh: true}, testkit.Pair{ID: id(1), At: at(4)})
	later := testkit.WritePairs(t, b.crashes, nil,
		testkit.Pair{ID: id(2), At: at(3)}, testkit.Pair{ID: id(3), Webhead: "web2", At: at(3)})

	began := time.Now()
	res, err := b.scanner.RunOnce(t.Context())
	if err != nil || res.Queued != 3 || res.Incomplete != 1 {
		t.Fatalf("RunOnce() = %+v, %v; want 3 queued, 1 incomplete", res, err)
	}
	var got []string
	for _, j := range b.jobs(t) { // by id: the order of the commits
		got = append(got, j.UUID)
	}
	if want := []string{fresh[0].ID, later[0].ID, later[1].ID}; !slices.Equal(got, want) {
		t.Errorf("jobs in order %v, want %v (submission order)", got, want)
	}
	// The wait is bounded by the settle time (generously, for a busy machine).
	if took := time.Since(began); took > 10*DefaultSettle+5*time.Second {
		t.Errorf("the pass took %v", took)
	}
	if !linkExists(stuck.DateLink) {
		t.Error("the incomplete pair left the inbox")
	}
}

// startRun runs the scanner's loop until the test ends.
func startRun(t *testing.T, b *testBundle) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.scanner.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	})
	testkit.Eventually(t, "the first pass", func() bool {
		select {
		case <-b.scanner.FirstPassDone():
			return true
		default:
			return false
		}
	})
}

// TestWatchOnlyCurrentSlots: a tree of many old slots costs no watch; only
// the root and the directories of the current slots (and their webhead
// directories) are watched, and a pair arriving in a new slot is queued.
func TestWatchOnlyCurrentSlots(t *testing.T) {
	t.Parallel()
	b := setup(t, crashstore.LayoutDaily)
	procs := b.processors(t, 0)
	// Old days, queued long ago: their date directories stay (a daily
	// directory keeps its date directory), and so do these slots, where a
	// crash is waiting for nothing (its pair is already queued).
	old := make([]testkit.Pair, 50)
	for i := range old {
		old[i] = testkit.Pair{ID: fmt.Sprintf("%08x-0000-4000-8000-000002090928", i), Webhead: fmt.Sprintf("web%d", i%3),
			At: b.now.Add(-time.Duration(i+2) * 7 * time.Hour)}
	}
	es := testkit.WritePairs(t, b.crashes, nil, old...)
	for _, e := range es {
		testkit.Jobs(t, b.pool, testkit.Succeeded, procs[0], e.ID)
	}
	startRun(t, b)
	w := b.scanner.watch
	if w == nil {
		t.Fatal("no watcher")
	}
	testkit.Eventually(t, "the root watched", func() bool {
		dirs, _ := w.watched()
		return slices.Contains(dirs, b.crashes.Root())
	})
	now := time.Now()
	allowed := map[string]bool{}
	for _, at := range []time.Time{now.Add(-2 * time.Minute), now.Add(-time.Minute), now, now.Add(time.Minute)} {
		for _, d := range b.crashes.SlotDirs(at) {
			allowed[d] = true
		}
	}
	dirs, names := w.watched()
	for _, d := range dirs {
		if !allowed[d] && !allowed[filepath.Dir(d)] {
			t.Errorf("watching %s, not a directory of the current slots", d)
		}
	}
	if names != 0 {
		t.Errorf("%d name directories watched, want none", names)
	}

	e := testkit.WritePairs(t, b.crashes, &testkit.PairOpts{Fresh: true}, testkit.Pair{ID: "aaaaaaaa-49d9-46ae-a42b-fadb42090928"})[0]
	testkit.Eventually(t, "the new pair queued", func() bool { return !linkExists(e.DateLink) })
	dirs, _ = w.watched()
	if !slices.Contains(dirs, filepath.Dir(e.DateLink)) {
		t.Errorf("the new webhead directory %s is not watched (watching %q)", filepath.Dir(e.DateLink), dirs)
	}
}

// TestCloseWriteCompletesAtOnce: with a settle time of a minute, a pair
// whose files the watcher saw closed after writing is queued at once.
func TestCloseWriteCompletesAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, crashstore.LayoutDaily)
	b.scanner.cfg.Settle = time.Minute
	b.processors(t, 0)
	if err := os.MkdirAll(b.crashes.Root(), 0o755); err != nil {
		t.Fatal(err)
	}
	startRun(t, b)
	// The watches are in place once the current slot's webhead directory
	// is: make it, as a first collector would, with a pair.
	first := testkit.WritePairs(t, b.crashes, nil, testkit.Pair{ID: "00000000-49d9-46ae-a42b-fadb42090928"})[0]
	testkit.Eventually(t, "the leaf watched", func() bool {
		dirs, _ := b.scanner.watch.watched()
		return slices.Contains(dirs, filepath.Dir(first.DateLink)) && !linkExists(first.DateLink)
	})
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("%08x-49d9-46ae-a42b-fadb42090928", i)
		// As a collector: the links, then the files. (Files closed before
		// the watcher met the link fall back on the settle time: the test
		// writes them once it has.)
		e, err := b.crashes.CreateLinks(id, "web1", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, "the pair watched", func() bool { return b.scanner.watch.watching(id) })
		began := time.Now()
		for _, p := range []string{e.DumpPath, e.JSONPath} {
			if err := os.WriteFile(p, []byte("x"), 0o660); err != nil {
				t.Fatal(err)
			}
		}
		// Well before the settle time, however busy the machine.
		testkit.EventuallyWithin(t, 30*time.Second, "the pair queued", func() bool { return !linkExists(e.DateLink) })
		t.Logf("pair %d queued %v after it was written", i, time.Since(began).Round(time.Millisecond))
	}
	// As fast a collector as can be: the files may be closed before the
	// watcher meets the link; it then sees that no one writes them.
	for i := 4; i <= 6; i++ {
		id := fmt.Sprintf("%08x-49d9-46ae-a42b-fadb42090928", i)
		began := time.Now()
		e, err := b.crashes.NewEntry(id, "web1", time.Time{}, []byte("dump"), []byte("json"))
		if err != nil {
			t.Fatal(err)
		}
		testkit.EventuallyWithin(t, 30*time.Second, "the pair queued", func() bool { return !linkExists(e.DateLink) })
		t.Logf("pair %d queued %v after it was written", i, time.Since(began).Round(time.Millisecond))
	}
}

// TestNoEvents: with inboxEvents off nothing is watched, and a new pair is
// queued by the periodic walk.
func TestNoEvents(t *testing.T) {
	t.Parallel()
	b := setup(t, crashstore.LayoutDaily)
	b.scanner.cfg.NoEvents = true
	b.scanner.cfg.DelayFunc = func() time.Duration { return 100 * time.Millisecond }
	b.processors(t, 0)
	startRun(t, b)
	if b.scanner.watch != nil {
		t.Fatal("a watcher with inboxEvents off")
	}
	e := b.put(t, 1)[0]
	testkit.Eventually(t, "the new pair queued by a periodic pass", func() bool {
		return slices.Contains(b.queued(t), e.ID)
	})
}

// TestRunPrunesBesideThePasses: under Run, the emptied directories of past
// slots go once their pairs are queued, removed by the pruner beside the
// passes.
func TestRunPrunesBesideThePasses(t *testing.T) {
	t.Parallel()
	b := setup(t, crashstore.LayoutDaily)
	b.processors(t, 0)
	pairs := make([]testkit.Pair, 5)
	for i := range pairs {
		pairs[i] = testkit.Pair{ID: fmt.Sprintf("%08x-0000-4000-8000-000002090928", i), Webhead: "web1",
			At: b.now.Add(-time.Duration(i+2) * time.Hour)}
	}
	es := testkit.WritePairs(t, b.crashes, nil, pairs...)
	startRun(t, b)
	for _, e := range es {
		slot := filepath.Dir(filepath.Dir(e.DateLink)) // the minute slot
		testkit.Eventually(t, "the emptied slot "+slot+" pruned", func() bool {
			_, err := os.Lstat(slot)
			return errors.Is(err, fs.ErrNotExist)
		})
	}
	if got := b.queued(t); len(got) != len(es) {
		t.Errorf("queued %v, want the %d pairs", got, len(es))
	}
}

// TestReadAheadKeepsOrder: a pass reading the pairs' states readAhead at a
// time, in parallel, still queues them in submission order, leaves a really
// incomplete pair (and its directory) where it is, and prunes every other
// emptied slot.
func TestReadAheadKeepsOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, crashstore.LayoutDaily)
	b.processors(t, 0)
	n := 2*readAhead + 37
	es := b.put(t, n)
	broken := es[readAhead+3] // its dump is missing: it waits, and holds nothing up
	if err := os.Remove(broken.DumpPath); err != nil {
		t.Fatal(err)
	}
	res, err := b.scanner.RunOnce(t.Context())
	if err != nil || res.Queued != n-1 || res.Incomplete != 1 {
		t.Fatalf("RunOnce() = %+v, %v; want %d queued, 1 incomplete", res, err, n-1)
	}
	var want []string
	for _, e := range es {
		if e.ID != broken.ID {
			want = append(want, e.ID) // put submits them in this order, a minute apart
		}
	}
	var got []string
	for _, j := range b.jobs(t) {
		got = append(got, j.UUID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("jobs not in submission order:\n got %v\nwant %v", got, want)
	}
	if !linkExists(broken.DateLink) {
		t.Errorf("the incomplete pair's inbox link %s was removed", broken.DateLink)
	}
	for _, e := range es {
		slot := filepath.Dir(filepath.Dir(e.DateLink))
		if e.ID != broken.ID && slot != filepath.Dir(filepath.Dir(broken.DateLink)) && linkExists(slot) {
			t.Errorf("the emptied slot %s was not pruned", slot)
		}
	}
}

// TestPairStillWrittenNotQueued: a pair whose files were read ahead while
// still being written is judged by what they are when it is visited, not
// by that early read: while the walk waits for an earlier pair to settle,
// the early read ages, and would make a pair written all along look
// settled.
func TestPairStillWrittenNotQueued(t *testing.T) {
	t.Parallel()
	b := setup(t, crashstore.LayoutDaily)
	b.processors(t, 0)
	at := func(minutesAgo int) time.Time { return b.now.Add(-time.Duration(minutesAgo) * time.Minute) }
	writing := testkit.WritePairs(t, b.crashes, &testkit.PairOpts{Fresh: true},
		testkit.Pair{ID: "0000000b-49d9-46ae-a42b-fadb42090928", At: at(3)})[0]
	settling := testkit.WritePairs(t, b.crashes, &testkit.PairOpts{Fresh: true},
		testkit.Pair{ID: "0000000a-49d9-46ae-a42b-fadb42090928", At: at(4)})[0]

	// The writer of the later pair goes on writing its dump until the pass
	// is over.
	stop := make(chan struct{})
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				if err := os.Chtimes(writing.DumpPath, now, now); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	res, err := b.scanner.RunOnce(t.Context())
	close(stop)
	<-wrote
	if err != nil || res.Queued != 1 || res.Incomplete != 1 {
		t.Fatalf("RunOnce() = %+v, %v; want 1 queued (the settled pair), 1 incomplete (the one being written)", res, err)
	}
	if got := b.queued(t); !slices.Equal(got, []string{settling.ID}) {
		t.Errorf("queued %v, want only %s", got, settling.ID)
	}
	if !linkExists(writing.DateLink) {
		t.Error("the pair being written left the inbox")
	}
}
