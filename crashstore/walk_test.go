package crashstore

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWalkClassic is classic test 38 in its fixed form: the 14 fixtures come
// out exactly once each, in submission order, as NewEntry described them, and
// the walk itself removes nothing.
func TestWalkClassic(t *testing.T) {
	t.Parallel()
	for _, layout := range []Layout{LayoutDaily, LayoutFlat} {
		t.Run(string(layout), func(t *testing.T) {
			t.Parallel()
			b := setup(t, Options{Layout: layout})
			fxs, made := b.putClassic(t, "jsonFileData")
			got := walkAll(t, b.s)
			if !slices.Equal(ids(got), fixtureIDs(fxs)) {
				t.Fatalf("Walk ids = %v\nwant %v", ids(got), fixtureIDs(fxs))
			}
			checkChronological(t, got)
			for _, e := range got {
				if e != made[e.ID] {
					t.Errorf("Walk entry\n%+v, NewEntry made\n%+v", e, made[e.ID])
				}
				if !exists(t, e.DateLink) || !exists(t, e.NameLink) {
					t.Errorf("%s: the walk removed a link", e.ID)
				}
			}
			if len(b.problems) != 0 {
				t.Errorf("problems: %v", b.problems)
			}
		})
	}
}

// checkChronological checks the walk order: by slot, then webhead directory.
func checkChronological(t *testing.T, es []Entry) {
	t.Helper()
	for i := 1; i < len(es); i++ {
		a, b := es[i-1], es[i]
		if c := a.Slot.Compare(b.Slot); c > 0 || c == 0 && filepath.Dir(a.DateLink) > filepath.Dir(b.DateLink) {
			t.Errorf("out of order: %s (%v, %s) before %s (%v, %s)", a.ID, a.Slot, a.DateLink, b.ID, b.Slot, b.DateLink)
		}
	}
}

// TestWalkOrder checks the order across days, hours, minutes and webhead
// directories, with overflow numbers compared as numbers.
func TestWalkOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	ids := []string{
		"00000001-0000-4000-8000-000002090927",
		"00000002-0000-4000-8000-000002090928",
		"00000003-0000-4000-8000-000002090928",
		"00000004-0000-4000-8000-000002090928",
		"00000005-0000-4000-8000-000002090928",
		"00000006-0000-4000-8000-000002090928",
		"00000007-0000-4000-8000-000002090928",
	}
	ats := []time.Time{
		time.Date(2009, 9, 27, 23, 59, 0, 0, time.UTC),
		time.Date(2009, 9, 28, 9, 0, 0, 0, time.UTC),
		time.Date(2009, 9, 28, 10, 1, 0, 0, time.UTC),
		time.Date(2009, 9, 28, 10, 2, 0, 0, time.UTC),
		time.Date(2009, 9, 28, 10, 2, 0, 0, time.UTC),
		time.Date(2009, 9, 28, 10, 2, 0, 0, time.UTC),
		time.Date(2009, 9, 28, 10, 2, 0, 0, time.UTC),
	}
	webheads := []string{"z", "z", "z", "a", "b", "b", "b"}
	// Create them backwards, so that directory order is no help.
	for i := len(ids) - 1; i >= 0; i-- {
		if _, err := b.s.NewEntry(ids[i], webheads[i], ats[i], nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	// The last three share a slot and webhead: spread them over b_2, b_10.
	leaf := b.root + "/20090928/date/10/02"
	for i, n := range map[int]string{5: "2", 6: "10"} {
		if err := os.Mkdir(leaf+"/b_"+n, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(leaf+"/b_0/"+ids[i], leaf+"/b_"+n+"/"+ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, e := range walkAll(t, b.s) {
		got = append(got, e.ID)
	}
	if !slices.Equal(got, ids) {
		t.Errorf("Walk order\n%v\nwant\n%v", got, ids)
	}
}

// TestWalkFindsEntriesStoredOnAnotherDay is the fix of socorro-classic 7.1
// #11: the name directory comes from the link, not from the id, so a plain
// uuid stored on another day than "today" and an ooid stored on another day
// than its date are found (the classic walk never yielded them).
func TestWalkFindsEntriesStoredOnAnotherDay(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	plain := "6f1a3c2e-1d2b-4c5d-8e9f-0a1b2c3d4e5f" // "today" is 2009-09-28
	dated := "0b781b88-ecbe-4cc4-dead-6bbb20081225"
	made := map[string]Entry{}
	for id, at := range map[string]time.Time{
		plain: time.Date(2009, 9, 26, 1, 2, 0, 0, time.UTC),
		dated: time.Date(2009, 9, 27, 3, 4, 0, 0, time.UTC),
	} {
		e, err := b.s.NewEntry(id, "web1", at, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		made[id] = e
	}
	got := walkAll(t, b.s)
	if len(got) != 2 || got[0] != made[plain] || got[1] != made[dated] {
		t.Fatalf("Walk = %+v\nwant %+v", got, made)
	}
	if !strings.Contains(got[0].NameDir, "/20090926/name/6f/1a/3c/2e") {
		t.Errorf("NameDir = %q", got[0].NameDir)
	}
	for _, e := range got {
		settle(t, e)
		if ok, err := b.s.Complete(e, time.Second); !ok || err != nil {
			t.Errorf("Complete(%s) = %v, %v", e.ID, ok, err)
		}
	}
}

// TestWalkMalformed: every kind of debris is reported once through Problem
// and skipped, and the valid entries still come out.
func TestWalkMalformed(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	const (
		a        = "aaaaaaaa-0000-4000-8000-000002090928"
		c        = "cccccccc-0000-4000-8000-000002090928"
		escape   = "e0000000-0000-4000-8000-000002090928"
		absolute = "e1000000-0000-4000-8000-000002090928"
		loop     = "e2000000-0000-4000-8000-000002090928"
		intoDate = "e3000000-0000-4000-8000-000002090928"
		dangling = "e4000000-0000-4000-8000-000002090928"
	)
	ea, err := b.s.NewEntry(a, "web1", time.Date(2009, 9, 28, 12, 1, 0, 0, time.UTC), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := b.s.NewEntry(c, "web1", time.Date(2009, 9, 28, 12, 2, 0, 0, time.UTC), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := b.root
	day := r + "/20090928"
	leaf := filepath.Dir(ea.DateLink)
	var want []string
	bad := func(p string) string { want = append(want, p); return p }

	mustSymlink(t, "../../../../name/aa/aa", bad(leaf+"/not-a-crash-id"))
	mustWrite(t, bad(leaf+"/README"))
	mustMkdir(t, bad(leaf+"/subdir"))
	mustSymlink(t, "../../../../../../../../../outside", bad(leaf+"/"+escape))
	mustSymlink(t, "/nonexistent/dir", bad(leaf+"/"+absolute))
	mustSymlink(t, loop, bad(leaf+"/"+loop))
	mustSymlink(t, "../../../../date/12/01", bad(leaf+"/"+intoDate))
	mustWrite(t, leaf+"/.nfs0000000000001") // hidden: ignored
	mustWrite(t, bad(day+"/date/13"))
	mustMkdir(t, bad(day+"/date/12/xx"))
	mustMkdir(t, bad(day+"/date/12/60"))
	mustSymlink(t, "01", bad(day+"/date/12/03"))
	mustSymlink(t, "../../../../name/aa/aa", bad(day+"/date/12/"+a))
	mustWrite(t, bad(r+"/junk"))
	mustMkdir(t, bad(r+"/notaday"))
	mustMkdir(t, bad(r+"/20090231"))
	mustMkdir(t, r+"/.snapshot") // hidden: ignored
	mustWrite(t, bad(r+"/20090927/date"))
	mustMkdir(t, r+"/20090926/name") // a day without a date branch: nothing to do
	// A well-formed link whose pair directory is gone: Walk cannot tell
	// without a stat; Complete does.
	mustSymlink(t, "../../../../name/ff/ff", leaf+"/"+dangling)

	got := walkAll(t, b.s)
	if gotIDs, wantIDs := ids(got), []string{a, c, dangling}; !slices.Equal(gotIDs, wantIDs) {
		t.Errorf("Walk ids = %v, want %v", gotIDs, wantIDs)
	}
	slices.Sort(want)
	if got := b.problemPaths(); !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, p := range b.problems {
		if !errors.Is(p.err, ErrMalformed) {
			t.Errorf("problem %s: %v is not ErrMalformed", p.path, p.err)
		}
	}
	for _, e := range got {
		switch e.ID {
		case dangling:
			if ok, err := b.s.Complete(e, 0); ok || !errors.Is(err, ErrMalformed) {
				t.Errorf("Complete(dangling) = %v, %v; want ErrMalformed", ok, err)
			}
		case c:
			if e != ec {
				t.Errorf("entry %+v, want %+v", e, ec)
			}
		}
	}
}

// TestWalkUnreadableDirectory needs a user that permissions stop.
func TestWalkUnreadableDirectory(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("root reads every directory")
	}
	b := setup(t, Options{})
	e1, _ := b.s.NewEntry("aaaaaaaa-0000-4000-8000-000002090928", "web1", testNow.Add(-time.Hour), nil, nil)
	e2, _ := b.s.NewEntry("bbbbbbbb-0000-4000-8000-000002090928", "web1", testNow, nil, nil)
	hour := filepath.Dir(filepath.Dir(filepath.Dir(e1.DateLink)))
	if err := os.Chmod(hour, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(hour, 0o755) })
	got := walkAll(t, b.s)
	if len(got) != 1 || got[0] != e2 {
		t.Errorf("Walk = %+v, want only %s", got, e2.ID)
	}
	if ps := b.problemPaths(); !slices.Equal(ps, []string{hour}) {
		t.Errorf("problems %v, want %s", ps, hour)
	}
}

func TestWalkStops(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	b.put(t, classic(t, "jsonFileData"))

	t.Run("CanceledBefore", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := b.s.Walk(ctx, func(Entry) error { t.Error("fn called"); return nil })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Walk = %v, want context.Canceled", err)
		}
	})
	t.Run("CanceledDuring", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		n := 0
		err := b.s.Walk(ctx, func(Entry) error { n++; cancel(); return nil })
		if !errors.Is(err, context.Canceled) || n != 1 {
			t.Errorf("Walk = %v after %d entries, want context.Canceled after 1", err, n)
		}
	})
	t.Run("FnError", func(t *testing.T) {
		stop := errors.New("stop")
		n := 0
		err := b.s.Walk(t.Context(), func(Entry) error {
			if n++; n == 3 {
				return stop
			}
			return nil
		})
		if err != stop || n != 3 {
			t.Errorf("Walk = %v after %d entries, want stop after 3", err, n)
		}
	})
}

func TestWalkEmptyTrees(t *testing.T) {
	t.Parallel()
	for _, layout := range []Layout{LayoutDaily, LayoutFlat} {
		t.Run(string(layout), func(t *testing.T) {
			t.Parallel()
			b := setup(t, Options{Layout: layout})
			if got := walkAll(t, b.s); len(got) != 0 { // no root
				t.Errorf("missing root: %v", got)
			}
			mustMkdir(t, b.root+"/name")
			if got := walkAll(t, b.s); len(got) != 0 || len(b.problems) != 0 && layout == LayoutFlat {
				t.Errorf("no date branch: %v %v", got, b.problems)
			}
			if n, err := b.s.PruneDateDirs(t.Context()); n != 0 || err != nil {
				t.Errorf("PruneDateDirs = %d, %v", n, err)
			}
		})
	}
}

func TestWalkRootIsAFile(t *testing.T) {
	t.Parallel()
	for _, layout := range []Layout{LayoutDaily, LayoutFlat} {
		b := setup(t, Options{Layout: layout})
		mustWrite(t, b.root)
		if err := b.s.Walk(t.Context(), func(Entry) error { return nil }); err == nil {
			t.Errorf("%s: Walk of a file root: no error", layout)
		}
	}
}

// TestWalkLargeLeaf walks a webhead directory of 20,000 links: read in
// chunks, each link exactly once.
func TestWalkLargeLeaf(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("20,000 links")
	}
	b := setup(t, Options{})
	e, err := b.s.NewEntry(workedID, "web1", testNow, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf := filepath.Dir(e.DateLink)
	const n = 20000
	for i := range n {
		id := "00000000-0000-4000-8000-" + strconv.FormatInt(1e11+int64(i), 10)
		if err := os.Symlink("../../../../name/4d/d2", leaf+"/"+id); err != nil {
			t.Fatal(err)
		}
	}
	seen := make(map[string]bool, n+1)
	if err := b.s.Walk(t.Context(), func(e Entry) error {
		if seen[e.ID] {
			t.Errorf("%s twice", e.ID)
		}
		seen[e.ID] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != n+1 || len(b.problems) != 0 {
		t.Errorf("walked %d of %d; %d problems", len(seen), n+1, len(b.problems))
	}
}

// TestFlatOverflow is classic test 67: with maxDirectoryEntries 3, a slot
// spreads over webhead01_0.._N, none holding more than 3 links; a fresh
// store (no memory of the previous one) continues where the tree says.
func TestFlatOverflow(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Layout: LayoutFlat})
	b.put(t, classic(t, "jsonFileData")) // 3 links in 2008/12/25/05/00/webhead01_0
	slot := b.root + "/date/2008/12/25/05/00"
	small := setup(t, Options{Layout: LayoutFlat, MaxDirEntries: 3})
	small.s = New(b.root, Options{Layout: LayoutFlat, MaxDirEntries: 3, Now: small.s.now})
	small.put(t, classic(t, "jsonTooMany"))
	checkOverflow(t, slot, 3)
	fresh := New(b.root, Options{Layout: LayoutFlat, MaxDirEntries: 3})
	for _, fx := range classic(t, "jsonMoreData") {
		if _, err := fresh.NewEntry(fx.id, fx.webhead, fx.at, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	checkOverflow(t, slot, 4)
	got := walkAll(t, b.s)
	if len(got) != 14+5+2 {
		t.Errorf("walked %d entries, want 21", len(got))
	}
	checkChronological(t, got)
}

func checkOverflow(t *testing.T, slot string, wantDirs int) {
	t.Helper()
	des, err := os.ReadDir(slot)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
		links, err := os.ReadDir(slot + "/" + de.Name())
		if err != nil {
			t.Fatal(err)
		}
		if len(links) > 3 {
			t.Errorf("%s holds %d links", de.Name(), len(links))
		}
	}
	if len(names) != wantDirs {
		t.Errorf("slot holds %v, want %d webhead directories", names, wantDirs)
	}
}

func TestEntryAt(t *testing.T) {
	t.Parallel()
	for _, layout := range []Layout{LayoutDaily, LayoutFlat} {
		t.Run(string(layout), func(t *testing.T) {
			t.Parallel()
			b := setup(t, Options{Layout: layout})
			e, err := b.s.NewEntry(workedID, "web1", testNow, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := b.s.EntryAt(e.DateLink); err != nil || got != e {
				t.Errorf("EntryAt = %+v, %v; want %+v", got, err, e)
			}
			if got, err := b.s.EntryAt(e.DateLink + "/"); err != nil || got != e {
				t.Errorf("EntryAt(trailing slash) = %+v, %v", got, err)
			}
			for _, p := range []string{e.NameLink, e.JSONPath, filepath.Dir(e.DateLink), "/elsewhere/" + workedID, ""} {
				if _, err := b.s.EntryAt(p); !errors.Is(err, ErrMalformed) {
					t.Errorf("EntryAt(%q) = %v, want ErrMalformed", p, err)
				}
			}
			if err := b.s.RemoveLinks(e); err != nil {
				t.Fatal(err)
			}
			if _, err := b.s.EntryAt(e.DateLink); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("EntryAt(removed) = %v, want fs.ErrNotExist", err)
			}
		})
	}
}

func TestDirKind(t *testing.T) {
	t.Parallel()
	daily := New("/r", Options{})
	flat := New("/r", Options{Layout: LayoutFlat})
	tests := []struct {
		s    *Store
		path string
		want Kind // 0: not a date-branch path
	}{
		{daily, "/r", KindRoot},
		{daily, "/r/", KindRoot},
		{daily, "/r/20090928", KindDay},
		{daily, "/r/20090928/date", KindDateDir},
		{daily, "/r/20090928/date/12", KindDateDir},
		{daily, "/r/20090928/date/12/05", KindDateDir},
		{daily, "/r/20090928/date/12/05/web1_0", KindLeaf},
		{daily, "/r/20090928/date/12/05/web1_12", KindLeaf},
		{daily, "/r/20090928/date/12/05/web1_0/" + workedID, KindLink},
		{daily, "/r/20090928/date/12/05/web1_0/" + workedID + "/x", 0},
		{daily, "/r/20090928/date/12/05/web1_0/not-an-id", 0},
		{daily, "/r/20090928/date/12/05/web1", 0},
		{daily, "/r/20090928/date/12/05/.nfs_0", 0},
		{daily, "/r/20090928/date/24", 0},
		{daily, "/r/20090928/date/12/60", 0},
		{daily, "/r/20090928/date/1", 0},
		{daily, "/r/20090928/name", 0},
		{daily, "/r/20090928/name/4d/d2/" + workedID, 0},
		{daily, "/r/20090931", 0},
		{daily, "/r/date", 0},
		{daily, "/r2/20090928", 0},
		{daily, "/", 0},
		{daily, "r/20090928", 0},
		{daily, "/r/../r/20090928", KindDay},
		{flat, "/r", KindRoot},
		{flat, "/r/date", KindDateDir},
		{flat, "/r/date/2009/09/28/12/05", KindDateDir},
		{flat, "/r/date/2009/09/28/12/05/web1_3", KindLeaf},
		{flat, "/r/date/2009/09/28/12/05/web1_3/" + workedID, KindLink},
		{flat, "/r/date/2009/02/29", 0},
		{flat, "/r/date/2009/13", 0},
		{flat, "/r/name/4d", 0},
		{flat, "/r/20090928", 0},
	}
	for _, tt := range tests {
		got, ok := tt.s.DirKind(tt.path)
		if tt.want == 0 && ok || tt.want != 0 && (!ok || got != tt.want) {
			t.Errorf("%s DirKind(%q) = %v, %v; want %v", tt.s.layout, tt.path, got, ok, tt.want)
		}
	}
	if KindLeaf.String() != "leaf" || Kind(99).String() != "Kind(99)" {
		t.Error("Kind.String")
	}
}
