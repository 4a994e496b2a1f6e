package crashstore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestComplete(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	const settleFor = 2 * time.Second
	complete := func(e Entry) bool {
		t.Helper()
		ok, err := b.s.Complete(e, settleFor)
		if err != nil {
			t.Fatalf("Complete(%s): %v", e.ID, err)
		}
		return ok
	}
	fxs := classic(t, "jsonFileData")

	t.Run("Settled", func(t *testing.T) {
		e := b.put(t, fxs[0:1])[fxs[0].id]
		settle(t, e)
		if !complete(e) {
			t.Error("settled pair not complete")
		}
		setMtime(t, testNow.Add(-settleFor), e.JSONPath) // exactly settle ago
		if !complete(e) {
			t.Error("pair modified exactly settle ago not complete")
		}
	})
	t.Run("FreshlyWritten", func(t *testing.T) {
		e := b.put(t, fxs[1:2])[fxs[1].id]
		settle(t, e)
		setMtime(t, testNow.Add(-time.Second), e.JSONPath)
		if complete(e) {
			t.Error("json written 1s ago: complete")
		}
		settle(t, e)
		setMtime(t, testNow.Add(-time.Second), e.DumpPath)
		if complete(e) {
			t.Error("dump written 1s ago: complete")
		}
		setMtime(t, testNow.Add(time.Minute), e.DumpPath) // a collector clock ahead
		if complete(e) {
			t.Error("dump written in the future: complete")
		}
	})
	t.Run("ZeroBytes", func(t *testing.T) {
		e, err := b.s.NewEntry(fxs[2].id, fxs[2].webhead, fxs[2].at, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		settle(t, e)
		if !complete(e) {
			t.Error("settled zero-byte pair not complete")
		}
	})
	t.Run("MissingJSON", func(t *testing.T) {
		e := b.put(t, fxs[3:4])[fxs[3].id]
		settle(t, e)
		os.Remove(e.JSONPath)
		if complete(e) {
			t.Error("pair without json complete")
		}
	})
	t.Run("MissingDump", func(t *testing.T) {
		e := b.put(t, fxs[4:5])[fxs[4].id]
		settle(t, e)
		os.Remove(e.DumpPath)
		if complete(e) {
			t.Error("pair without dump complete")
		}
	})
	t.Run("LinksOnly", func(t *testing.T) {
		e, err := b.s.CreateLinks(fxs[5].id, fxs[5].webhead, fxs[5].at)
		if err != nil {
			t.Fatal(err)
		}
		if complete(e) {
			t.Error("links without files complete")
		}
	})
	t.Run("NeverComplete", func(t *testing.T) {
		e := b.put(t, fxs[6:7])[fxs[6].id]
		os.Remove(e.JSONPath)
		mustMkdir(t, e.JSONPath)
		if ok, err := b.s.Complete(e, 0); ok || !errors.Is(err, ErrMalformed) {
			t.Errorf("json is a directory: %v, %v; want ErrMalformed", ok, err)
		}
		if err := os.RemoveAll(e.NameDir); err != nil {
			t.Fatal(err)
		}
		if ok, err := b.s.Complete(e, 0); ok || !errors.Is(err, ErrMalformed) {
			t.Errorf("pair directory gone: %v, %v; want ErrMalformed", ok, err)
		}
		mustWrite(t, e.NameDir)
		if ok, err := b.s.Complete(e, 0); ok || !errors.Is(err, ErrMalformed) {
			t.Errorf("pair directory is a file: %v, %v; want ErrMalformed", ok, err)
		}
	})
}

// TestRemoveLinks is classic test 37 (markAsSeen).
func TestRemoveLinks(t *testing.T) {
	t.Parallel()
	for _, layout := range []Layout{LayoutDaily, LayoutFlat} {
		t.Run(string(layout), func(t *testing.T) {
			t.Parallel()
			b := setup(t, Options{Layout: layout})
			for _, e := range b.put(t, classic(t, "jsonFileData")) {
				if !exists(t, e.DateLink) || !exists(t, e.NameLink) {
					t.Fatalf("%s: links missing before", e.ID)
				}
				for range 2 { // repeating is fine
					if err := b.s.RemoveLinks(e); err != nil {
						t.Fatal(err)
					}
				}
				if exists(t, e.DateLink) || exists(t, e.NameLink) {
					t.Errorf("%s: links left", e.ID)
				}
				checkContent(t, e.JSONPath, "json test of "+e.ID+"\n")
				checkContent(t, e.DumpPath, "dump test of "+e.ID+"\n")
			}
			if got := walkAll(t, b.s); len(got) != 0 {
				t.Errorf("inbox not empty: %v", ids(got))
			}
		})
	}
}

// TestRemoveRefusesForeignEntries: an Entry that does not describe this
// tree removes nothing.
func TestRemoveRefusesForeignEntries(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	e, err := b.s.NewEntry(workedID, "web1", testNow, []byte("d"), []byte("j"))
	if err != nil {
		t.Fatal(err)
	}
	other := "0b781b88-ecbe-4cc4-dead-6bbb20081225"
	outside := filepath.Dir(b.root) + "/victim"
	mustWrite(t, outside)
	bad := map[string]Entry{
		"Zero":            {},
		"InvalidID":       {ID: "../../x", DateLink: e.DateLink},
		"DateLinkIsAFile": {ID: workedID, DateLink: e.JSONPath},
		"DateLinkOfOther": {ID: other, DateLink: e.DateLink},
		"JSONIsNameLink":  {ID: workedID, NameDir: e.NameDir, NameLink: e.NameLink, JSONPath: e.NameLink, DumpPath: e.DumpPath},
		"NameDirOutside":  {ID: "victim", NameDir: filepath.Dir(outside), NameLink: outside},
		"NameDirInDate":   {ID: workedID, NameDir: filepath.Dir(e.DateLink), NameLink: e.DateLink, JSONPath: e.DateLink + ".json", DumpPath: e.DateLink + ".dump"},
		"NoNameDir":       {ID: workedID, JSONPath: e.JSONPath},
	}
	for name, be := range bad {
		for op, f := range map[string]func(Entry) error{"RemoveLinks": b.s.RemoveLinks, "RemovePair": b.s.RemovePair} {
			err := f(be)
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalidID) {
				t.Errorf("%s(%s) = %v, want ErrMalformed or ErrInvalidID", op, name, err)
			}
		}
	}
	for _, p := range []string{e.DateLink, e.NameLink, e.JSONPath, e.DumpPath, outside} {
		if !exists(t, p) {
			t.Errorf("%s was removed", p)
		}
	}
}

func TestPruneDateDirsDaily(t *testing.T) {
	t.Parallel()
	now := time.Date(2009, 9, 28, 12, 5, 30, 0, time.UTC)
	b := setup(t, Options{Now: func() time.Time { return now }})
	at := func(d, h, m int) time.Time { return time.Date(2009, 9, d, h, m, 0, 0, time.UTC) }
	wedged := "dddddddd-0000-4000-8000-000002090928"
	made := b.put(t, []fixture{
		{id: "aaaaaaaa-0000-4000-8000-000002090927", webhead: "web1", at: at(27, 23, 59)},
		{id: "bbbbbbbb-0000-4000-8000-000002090928", webhead: "web1", at: at(28, 11, 59)},
		{id: "cccccccc-0000-4000-8000-000002090928", webhead: "web1", at: at(28, 12, 3)},
		{id: wedged, webhead: "web1", at: at(28, 12, 1)},
		{id: "eeeeeeee-0000-4000-8000-000002090928", webhead: "web1", at: at(28, 12, 5)}, // current slot
		{id: "ffffffff-0000-4000-8000-000002090928", webhead: "web1", at: at(28, 12, 7)}, // a clock ahead
	})
	for id, e := range made {
		if id != wedged {
			if err := b.s.RemoveLinks(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := b.root
	n, err := b.s.PruneDateDirs(t.Context())
	if err != nil || n != 8 {
		t.Errorf("PruneDateDirs = %d, %v; want 8", n, err)
	}
	gone := []string{
		r + "/20090927/date/23/59/web1_0", r + "/20090927/date/23/59", r + "/20090927/date/23",
		r + "/20090928/date/11/59/web1_0", r + "/20090928/date/11/59", r + "/20090928/date/11",
		r + "/20090928/date/12/03/web1_0", r + "/20090928/date/12/03",
	}
	kept := []string{
		r + "/20090927", r + "/20090927/date", r + "/20090927/name",
		r + "/20090928/date/12", r + "/20090928/date/12/01/web1_0", r + "/20090928/date/12/05/web1_0",
		r + "/20090928/date/12/07/web1_0",
	}
	checkTree(t, gone, kept)
	if n, err := b.s.PruneDateDirs(t.Context()); n != 0 || err != nil {
		t.Errorf("second PruneDateDirs = %d, %v; want 0", n, err)
	}

	if err := b.s.RemoveLinks(made[wedged]); err != nil {
		t.Fatal(err)
	}
	now = time.Date(2009, 9, 28, 13, 0, 0, 0, time.UTC)
	if n, err := b.s.PruneDateDirs(t.Context()); n != 7 || err != nil {
		t.Errorf("PruneDateDirs at 13:00 = %d, %v; want 7", n, err)
	}
	checkTree(t, []string{r + "/20090928/date/12"}, []string{r + "/20090928", r + "/20090928/date", r + "/20090928/name"})
	if len(b.problems) != 0 {
		t.Errorf("problems: %v", b.problems)
	}
}

func TestPruneDateDirsFlat(t *testing.T) {
	t.Parallel()
	now := time.Date(2009, 9, 28, 12, 7, 30, 0, time.UTC)
	b := setup(t, Options{Layout: LayoutFlat, Now: func() time.Time { return now }})
	made := b.put(t, []fixture{
		{id: "aaaaaaaa-0000-4000-8000-000002090928", webhead: "web1", at: time.Date(2009, 9, 28, 12, 1, 0, 0, time.UTC)},
		{id: "bbbbbbbb-0000-4000-8000-000002090928", webhead: "web1", at: time.Date(2009, 9, 28, 12, 7, 0, 0, time.UTC)},
	})
	for _, e := range made {
		if err := b.s.RemoveLinks(e); err != nil {
			t.Fatal(err)
		}
	}
	d := b.root + "/date/2009/09/28/12"
	if n, err := b.s.PruneDateDirs(t.Context()); n != 2 || err != nil {
		t.Errorf("PruneDateDirs = %d, %v; want 2", n, err)
	}
	checkTree(t, []string{d + "/00/web1_0", d + "/00"}, []string{d, d + "/05/web1_0"})
	now = time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
	if n, err := b.s.PruneDateDirs(t.Context()); n != 6 || err != nil {
		t.Errorf("PruneDateDirs in 2010 = %d, %v; want 6", n, err)
	}
	checkTree(t, []string{b.root + "/date/2009"}, []string{b.root + "/date"})
}

func checkTree(t *testing.T, gone, kept []string) {
	t.Helper()
	for _, p := range gone {
		if exists(t, p) {
			t.Errorf("%s not removed", p)
		}
	}
	for _, p := range kept {
		if !exists(t, p) {
			t.Errorf("%s removed", p)
		}
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{}) // today is 2009-09-28
	on := func(day int) time.Time { return time.Date(2009, 9, day, 10, 0, 0, 0, time.UTC) }
	const (
		plain     = "6f1a3c2e-1d2b-4c5d-8e9f-0a1b2c3d4e5f" // no date: today
		neighbour = "6f1a3c2e-0000-4000-8000-000000000000" // same radix dirs, no date
		cousin    = "6f1a3c2e-1111-4000-8000-000000000000"
	)
	made := b.put(t, []fixture{
		{id: workedID, webhead: "web1", at: on(28)},
		{id: plain, webhead: "web1", at: on(26)},
		// Decoys: the radix directory of plain exists under the computed
		// day and under a newer day, without plain's files.
		{id: cousin, webhead: "web1", at: on(28)},
		{id: neighbour, webhead: "web1", at: on(27)},
	})

	t.Run("ComputedPath", func(t *testing.T) {
		if e, err := b.s.Lookup(t.Context(), workedID); err != nil || e != made[workedID] {
			t.Errorf("Lookup = %+v, %v; want %+v", e, err, made[workedID])
		}
	})
	t.Run("OtherDayWhereTheFileIs", func(t *testing.T) {
		e, err := b.s.Lookup(t.Context(), plain)
		if err != nil || e != made[plain] {
			t.Errorf("Lookup = %+v, %v; want %+v", e, err, made[plain])
		}
		if !strings.Contains(e.NameDir, "/20090926/") {
			t.Errorf("NameDir = %q, want under 20090926", e.NameDir)
		}
	})
	t.Run("LinksGone", func(t *testing.T) {
		e := made[neighbour]
		if err := b.s.RemoveLinks(e); err != nil {
			t.Fatal(err)
		}
		e.DateLink, e.Slot = "", time.Time{}
		if got, err := b.s.Lookup(t.Context(), neighbour); err != nil || got != e {
			t.Errorf("Lookup = %+v, %v; want %+v", got, err, e)
		}
	})
	t.Run("OnlyDump", func(t *testing.T) {
		os.Remove(made[cousin].JSONPath)
		if got, err := b.s.Lookup(t.Context(), cousin); err != nil || got != made[cousin] {
			t.Errorf("Lookup = %+v, %v", got, err)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		for _, id := range []string{"66666666-6666-6666-6666-666620081225", "0bad0bad-0bad-6666-9999-0bad20001025"} {
			if _, err := b.s.Lookup(t.Context(), id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Lookup(%s) = %v, want ErrNotFound", id, err)
			}
		}
		empty := New(b.root+"/missing", Options{})
		if _, err := empty.Lookup(t.Context(), workedID); !errors.Is(err, ErrNotFound) {
			t.Errorf("Lookup in a missing root = %v, want ErrNotFound", err)
		}
	})
	t.Run("InvalidID", func(t *testing.T) {
		// A store whose every touch of the disk would fail loudly.
		s := New(b.root, Options{
			Now:     func() time.Time { t.Error("clock read for an invalid id"); return testNow },
			Problem: func(p string, err error) { t.Errorf("problem %s: %v", p, err) },
		})
		for _, id := range []string{"", "nothing", "../20090928/name/4d/d2/" + workedID, workedID + "/../../..", "6f1a3c2e-1d2b-4c5d-8e9f-0a1b2c3d4e5"} {
			if _, err := s.Lookup(t.Context(), id); !errors.Is(err, ErrInvalidID) {
				t.Errorf("Lookup(%q) = %v, want ErrInvalidID", id, err)
			}
		}
	})
	if len(b.problems) != 0 {
		t.Errorf("problems: %v", b.problems)
	}
}

func TestLookupFlat(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Layout: LayoutFlat})
	made := b.put(t, classic(t, "jsonFileData"))
	for id, want := range made {
		if got, err := b.s.Lookup(t.Context(), id); err != nil || got != want {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v", id, got, err, want)
		}
	}
	if _, err := b.s.Lookup(t.Context(), "66666666-6666-6666-6666-666620081225"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup(bad) = %v, want ErrNotFound", err)
	}
}

// TestRemovePair is classic tests 40-42 in spirit: whatever part of a pair
// is already gone, RemovePair removes the rest and the name directories it
// emptied, never the name branch itself.
func TestRemovePair(t *testing.T) {
	t.Parallel()
	for _, layout := range []Layout{LayoutDaily, LayoutFlat} {
		t.Run(string(layout), func(t *testing.T) {
			t.Parallel()
			b := setup(t, Options{Layout: layout})
			fxs, made := b.putClassic(t, "jsonFileData")
			for i, fx := range fxs {
				e := made[fx.id]
				switch i % 4 {
				case 1:
					if err := b.s.RemoveLinks(e); err != nil {
						t.Fatal(err)
					}
				case 2:
					os.Remove(e.JSONPath)
				case 3:
					os.Remove(e.DumpPath)
				}
				if i%5 == 4 {
					os.Remove(e.JSONPath)
					os.Remove(e.DumpPath) // Lookup finds nothing: use what we have
				} else if e, err := b.s.Lookup(t.Context(), fx.id); err != nil {
					t.Fatal(err)
				} else {
					made[fx.id] = e
				}
				for range 2 {
					if err := b.s.RemovePair(made[fx.id]); err != nil {
						t.Errorf("RemovePair(%s): %v", fx.id, err)
					}
				}
				if _, err := b.s.Lookup(t.Context(), fx.id); !errors.Is(err, ErrNotFound) {
					t.Errorf("Lookup after RemovePair = %v", err)
				}
				if layout == LayoutDaily && fx.id == "0bae7049-bbff-49f2-dead-7e9fe2081125" {
					// 0b/ae is gone, 0b still holds 0b/af (and 0b/a3, 0b/ad).
					checkTree(t, []string{e.NameDir}, []string{filepath.Dir(e.NameDir)})
				}
			}
			var left, dirs []string
			if err := filepath.WalkDir(b.root, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				switch {
				case !d.IsDir():
					left = append(left, p)
				case strings.Contains(p, "/name/"):
					dirs = append(dirs, p)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(left) != 0 || len(dirs) != 0 {
				t.Errorf("left behind: files/links %v, name dirs %v", left, dirs)
			}
			tops := []string{b.root + "/name"}
			if layout == LayoutDaily {
				tops = []string{b.root + "/20071025/name", b.root + "/20081125/name", b.root + "/20081225/name", b.root + "/20081226/name"}
			}
			checkTree(t, nil, tops)
			// Once pruned, only the branch tops remain.
			now := New(b.root, Options{Layout: layout, Now: func() time.Time { return time.Now() }})
			if _, err := now.PruneDateDirs(t.Context()); err != nil {
				t.Fatal(err)
			}
			_ = filepath.WalkDir(b.root, func(p string, d fs.DirEntry, err error) error {
				if k, _ := now.DirKind(p); err == nil && d.IsDir() && k == KindLeaf {
					t.Errorf("date leaf %s left after pruning", p)
				}
				return nil
			})
		})
	}
}
