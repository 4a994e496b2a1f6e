package crashgen

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
)

func TestIDs(t *testing.T) {
	t.Parallel()
	date := time.Date(2009, 9, 28, 0, 0, 0, 0, time.UTC)
	g, err := New(Options{Count: 20000, CrashDate: date, Seed: 42, Depth: 3})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]int, 20000)
	for i := range 20000 {
		id := g.ID(i)
		if !crashstore.ValidID(id) {
			t.Fatalf("ID(%d) = %q, not a valid crash id", i, id)
		}
		if j, dup := seen[id]; dup {
			t.Fatalf("ID(%d) = ID(%d) = %q", i, j, id)
		}
		seen[id] = i
		if got, ok := crashstore.IDDate(id); !ok || !got.Equal(date) {
			t.Fatalf("IDDate(%q) = %v, %v; want %v", id, got, ok, date)
		}
		if d := crashstore.IDDepth(id); d != 3 {
			t.Fatalf("IDDepth(%q) = %d, want 3", id, d)
		}
	}
	// The ids spread over the name branch: the first two characters (the
	// top radix level) take most of their 256 values.
	tops := map[string]bool{}
	for id := range seen {
		tops[id[:2]] = true
	}
	if len(tops) < 250 {
		t.Errorf("ids use %d top-level name directories of 256; want them spread", len(tops))
	}

	again, err := New(Options{Count: 20000, CrashDate: date, Seed: 42, Depth: 3})
	if err != nil {
		t.Fatal(err)
	}
	other, err := New(Options{Count: 20000, CrashDate: date, Seed: 43, Depth: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 19999} {
		if g.ID(i) != again.ID(i) {
			t.Errorf("same seed: ID(%d) = %q and %q", i, g.ID(i), again.ID(i))
		}
		if _, dup := seen[other.ID(i)]; dup {
			t.Errorf("seed 43 ID(%d) = %q is also an id of seed 42", i, other.ID(i))
		}
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]Options{
		"NegativeCount":    {Count: -1},
		"NegativeDumpSize": {DumpSize: -1},
		"NegativeSpread":   {Spread: -time.Second},
		"Depth5":           {Depth: 5},
		"HiddenWebhead":    {Webheads: []string{".web"}},
		"SlashWebhead":     {Webheads: []string{"a/b"}},
		"EmptyWebhead":     {Webheads: []string{"web1", ""}},
		"Year1999":         {CrashDate: time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC)},
		"Submitted1999":    {Submitted: time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC)},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("%s: New(%+v) succeeded, want an error", name, opts)
		}
	}
}

func TestSubmitted(t *testing.T) {
	t.Parallel()
	end := time.Date(2009, 9, 28, 12, 0, 0, 0, time.UTC)
	g, err := New(Options{Count: 5, Submitted: end, Spread: 4 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		want := end.Add(time.Duration(i-4) * time.Minute)
		if got := g.Submitted(i); !got.Equal(want) {
			t.Errorf("Submitted(%d) = %v, want %v", i, got, want)
		}
		// Without a CrashDate the id carries the submission date.
		if got := g.ID(i)[29:]; got != "2090928" {
			t.Errorf("ID(%d) tail = %q, want depth 2 and 090928", i, got)
		}
	}
	single, err := New(Options{Count: 1, Submitted: end, Spread: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got := single.Submitted(0); !got.Equal(end) {
		t.Errorf("one pair: Submitted(0) = %v, want %v", got, end)
	}
}

func TestWrite(t *testing.T) {
	t.Parallel()
	for _, layout := range []crashstore.Layout{crashstore.LayoutDaily, crashstore.LayoutFlat} {
		t.Run(string(layout), func(t *testing.T) {
			t.Parallel()
			// Across midnight: two daily directories in the daily layout.
			end := time.Date(2009, 9, 28, 0, 3, 0, 0, time.UTC)
			store := crashstore.New(filepath.Join(t.TempDir(), "toBeProcessed"), crashstore.Options{
				Layout: layout, GID: -1, MaxDirEntries: 40,
			})
			g, err := New(Options{
				Count: 500, DumpSize: 100, Submitted: end, Spread: 9 * time.Minute,
				Webheads: []string{"web1", "web2", "web3"}, Seed: 7, Workers: 8,
			})
			if err != nil {
				t.Fatal(err)
			}
			res, err := g.Write(t.Context(), store)
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			if res.Written != 500 || res.Elapsed <= 0 || res.PairsPerSecond() <= 0 {
				t.Errorf("Write = %+v (%.0f pairs/s), want 500 written", res, res.PairsPerSecond())
			}

			want := map[string]int{}
			for i := range 500 {
				want[g.ID(i)] = i
			}
			var entries []crashstore.Entry
			if err := store.Walk(t.Context(), func(e crashstore.Entry) error {
				entries = append(entries, e)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(entries) != 500 {
				t.Fatalf("the inbox holds %d entries, want 500", len(entries))
			}
			for k, e := range entries {
				i, ok := want[e.ID]
				if !ok {
					t.Fatalf("inbox entry %s is not a generated id", e.ID)
				}
				delete(want, e.ID)
				checkPair(t, store, e, g, i)
				// Submission order: the walk meets the slots in order,
				// and each pair sits in its own submission slot.
				slot := g.Submitted(i).Truncate(slotLen(layout))
				if !e.Slot.Equal(slot) {
					t.Errorf("pair %d is in slot %v, want %v", i, e.Slot, slot)
				}
				if k > 0 && e.Slot.Before(entries[k-1].Slot) {
					t.Errorf("walk order: slot %v after %v", e.Slot, entries[k-1].Slot)
				}
			}
			if layout == crashstore.LayoutDaily {
				days, err := filepath.Glob(filepath.Join(store.Root(), "2009092*"))
				if err != nil {
					t.Fatal(err)
				}
				if got := names(days); !slices.Equal(got, []string{"20090927", "20090928"}) {
					t.Errorf("daily directories = %v, want 20090927 and 20090928", got)
				}
			} else {
				// 100 pairs per webhead and five-minute slot at most:
				// overflow directories appear past 40.
				if _, err := os.Stat(filepath.Join(store.Root(), "date/2009/09/27/23/55/web1_1")); err != nil {
					t.Errorf("no overflow directory: %v", err)
				}
			}
		})
	}
}

// checkPair checks that pair i is complete, written in the collector's
// order, and holds what the generator wrote.
func checkPair(t *testing.T, store *crashstore.Store, e crashstore.Entry, g *Generator, i int) {
	t.Helper()
	if ok, err := store.Complete(e, 0); !ok || err != nil {
		t.Errorf("pair %d (%s) complete = %v, %v; want true", i, e.ID, ok, err)
	}
	found, err := store.Lookup(context.Background(), e.ID)
	if err != nil || found.JSONPath != e.JSONPath {
		t.Errorf("Lookup(%s) = %+v, %v; want the walked entry", e.ID, found, err)
	}
	dump, err := os.ReadFile(e.DumpPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(dump) != 100 || !bytes.HasPrefix(dump, []byte(e.ID)) {
		t.Errorf("dump of %s: %d bytes starting %q; want 100 starting with the id", e.ID, len(dump), dump[:min(len(dump), 40)])
	}
	meta, err := os.ReadFile(e.JSONPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(meta), `"uuid":"`+e.ID+`"`) || !strings.Contains(string(meta), `"webhead":"`+g.Webhead(i)+`"`) {
		t.Errorf("json of %s = %s", e.ID, meta)
	}
	// Links first, then the dump, then the json.
	link, dumpInfo, jsonInfo := lstat(t, e.DateLink), lstat(t, e.DumpPath), lstat(t, e.JSONPath)
	if dumpInfo.ModTime().Before(link.ModTime()) || jsonInfo.ModTime().Before(dumpInfo.ModTime()) {
		t.Errorf("pair %s: link %v, dump %v, json %v; want them written in that order",
			e.ID, link.ModTime(), dumpInfo.ModTime(), jsonInfo.ModTime())
	}
}

func TestWriteZeroSizedAndEmpty(t *testing.T) {
	t.Parallel()
	store := crashstore.New(t.TempDir(), crashstore.Options{GID: -1})
	g, err := New(Options{Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := g.Write(t.Context(), store); err != nil || res.Written != 3 {
		t.Fatalf("Write = %+v, %v; want 3 written", res, err)
	}
	e, err := store.Lookup(t.Context(), g.ID(2))
	if err != nil {
		t.Fatal(err)
	}
	if fi := lstat(t, e.DumpPath); fi.Size() != 0 {
		t.Errorf("dump size %d, want 0", fi.Size())
	}
	if ok, err := store.Complete(e, 0); !ok || err != nil {
		t.Errorf("zero-byte dump: complete = %v, %v; want true", ok, err)
	}

	none, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := none.Write(t.Context(), store); err != nil || res.Written != 0 {
		t.Errorf("Write of nothing = %+v, %v", res, err)
	}
}

func TestWriteStops(t *testing.T) {
	t.Parallel()
	t.Run("Cancelled", func(t *testing.T) {
		t.Parallel()
		store := crashstore.New(t.TempDir(), crashstore.Options{GID: -1})
		g, err := New(Options{Count: 100000})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		res, err := g.Write(ctx, store)
		if !errors.Is(err, context.Canceled) || res.Written == 100000 {
			t.Errorf("Write after cancel = %+v, %v; want context.Canceled", res, err)
		}
	})
	t.Run("FileInTheWay", func(t *testing.T) {
		t.Parallel()
		root := filepath.Join(t.TempDir(), "root")
		if err := os.WriteFile(root, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		g, err := New(Options{Count: 1000})
		if err != nil {
			t.Fatal(err)
		}
		res, err := g.Write(t.Context(), crashstore.New(root, crashstore.Options{GID: -1}))
		if err == nil || res.Written != 0 {
			t.Errorf("Write under a file = %+v, %v; want an error", res, err)
		}
	})
}

func slotLen(layout crashstore.Layout) time.Duration {
	if layout == crashstore.LayoutFlat {
		return 5 * time.Minute
	}
	return time.Minute
}

func lstat(t *testing.T, p string) os.FileInfo {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func names(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

func TestWriteLive(t *testing.T) {
	t.Parallel()
	store := crashstore.New(t.TempDir(), crashstore.Options{GID: -1})
	before := time.Now().UTC().Truncate(time.Minute)
	g, err := New(Options{Count: 100})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Write(t.Context(), store); err != nil {
		t.Fatal(err)
	}
	after := time.Now().UTC()
	n := 0
	if err := store.Walk(t.Context(), func(e crashstore.Entry) error {
		n++
		// Each pair is submitted when written: in a slot of the run.
		if e.Slot.Before(before) || e.Slot.After(after) {
			t.Errorf("pair %s in slot %v, want between %v and %v", e.ID, e.Slot, before, after)
		}
		if !strings.HasSuffix(e.ID, g.Submitted(0).Format("060102")) {
			t.Errorf("id %s does not carry the date of the run", e.ID)
		}
		meta, err := os.ReadFile(e.JSONPath)
		if err != nil {
			return err
		}
		if !strings.Contains(string(meta), `"submitted_timestamp":"`+e.Slot.Format("2006-01-02T15:04")) {
			t.Errorf("json of %s = %s; want the submission time of its slot %v", e.ID, meta, e.Slot)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 100 {
		t.Errorf("%d pairs in the inbox, want 100", n)
	}
}
