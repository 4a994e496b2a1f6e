package crashstore_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/testkit"
)

// The tests of faults of whole trees: how an error is told from a problem of
// one crash, and how a tree whose file system vanished is told from an empty
// one. The real faults (a full, read-only, immutable, unmounted or dead file
// system) need root; see testkit.RequireRoot.

var faultDay = time.Date(2009, 9, 28, 12, 5, 0, 0, time.UTC)

// faultID is the i-th crash id of faultDay.
func faultID(i int) string { return testkit.CrashID(i, faultDay) }

// newPair writes a complete pair of id into s as a collector does, in the
// minute slot minute of faultDay's noon hour.
func newPair(t *testing.T, s *crashstore.Store, id string, minute int) crashstore.Entry {
	t.Helper()
	e, err := s.NewEntry(id, "web1", faultDay.Add(time.Duration(minute)*time.Minute), []byte("dump "+id), []byte("json "+id))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// wantFault fails the test unless err holds a TreeFault of kind for root.
func wantFault(t *testing.T, what string, err error, kind crashstore.FaultKind, root string) *crashstore.TreeFault {
	t.Helper()
	f := crashstore.AsTreeFault(err)
	if f == nil || f.Kind != kind || f.Root != root {
		t.Fatalf("%s: %v (%#v), want a %v TreeFault of %s", what, err, f, kind, root)
	}
	return f
}

// walkIDs walks s and returns the ids met, sorted.
func walkIDs(t *testing.T, s *crashstore.Store) ([]string, error) {
	t.Helper()
	var ids []string
	err := s.Walk(t.Context(), func(e crashstore.Entry) error { ids = append(ids, e.ID); return nil })
	slices.Sort(ids)
	return ids, err
}

// TestCheckRoot: a root that never held a tree is an empty tree; once it
// held one, a root gone or emptied of its tree is a vanished tree, which
// Lookup and Walk report instead of "not found" and "nothing"; a tree made
// again is back.
func TestCheckRoot(t *testing.T) {
	t.Parallel()
	for _, layout := range []crashstore.Layout{crashstore.LayoutDaily, crashstore.LayoutFlat} {
		t.Run(string(layout), func(t *testing.T) {
			t.Parallel()
			root := filepath.Join(t.TempDir(), "root")
			s := crashstore.New(root, crashstore.Options{Layout: layout})
			id := faultID(1)
			if held, err := s.CheckRoot(); held || err != nil {
				t.Errorf("missing root: CheckRoot = %v, %v; want an empty tree", held, err)
			}
			if _, err := s.Lookup(t.Context(), id); !errors.Is(err, crashstore.ErrNotFound) {
				t.Errorf("missing root: Lookup = %v, want ErrNotFound", err)
			}
			wantFault(t, "ExpectTree of a missing root", s.ExpectTree(), crashstore.FaultVanished, root)
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			if held, err := s.CheckRoot(); held || err != nil {
				t.Errorf("empty root: CheckRoot = %v, %v", held, err)
			}

			newPair(t, s, id, 0)
			if held, err := s.CheckRoot(); !held || err != nil {
				t.Errorf("root with a tree: CheckRoot = %v, %v", held, err)
			}

			// Emptied, as an unmounted file system's mount point shows.
			ents, _ := os.ReadDir(root)
			for _, e := range ents {
				if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
					t.Fatal(err)
				}
			}
			_, err := s.CheckRoot()
			wantFault(t, "emptied root", err, crashstore.FaultVanished, root)
			_, err = s.Lookup(t.Context(), id)
			if errors.Is(err, crashstore.ErrNotFound) {
				t.Errorf("Lookup in a vanished tree = %v, want no ErrNotFound", err)
			}
			wantFault(t, "Lookup in an emptied root", err, crashstore.FaultVanished, root)
			_, err = walkIDs(t, s)
			wantFault(t, "Walk of an emptied root", err, crashstore.FaultVanished, root)

			if err := os.Remove(root); err != nil {
				t.Fatal(err)
			}
			_, err = s.CheckRoot()
			wantFault(t, "removed root", err, crashstore.FaultVanished, root)

			// Back (restored from a copy, say).
			newPair(t, s, id, 0)
			if held, err := s.CheckRoot(); !held || err != nil {
				t.Errorf("tree back: CheckRoot = %v, %v", held, err)
			}
			if _, err := s.Lookup(t.Context(), id); err != nil {
				t.Errorf("tree back: Lookup = %v", err)
			}
		})
	}
}

// TestCheckRootUnmounted: the tree is a file system of its own mounted on
// the root. Unmounted under the monitor, the root shows the directory under
// the mount, even one holding a stale tree of its own: vanished, since the
// root is no longer on the file system it was. Mounted again (a new tmpfs
// with the tree copied back, so another device), it is back. A bind mount of
// a directory of the same file system, unbound, leaves an empty directory:
// vanished too, until it is bound again.
func TestCheckRootUnmounted(t *testing.T) {
	testkit.RequireRoot(t)
	t.Parallel()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")

	t.Run("Tmpfs", func(t *testing.T) {
		stale := crashstore.New(root, crashstore.Options{})
		newPair(t, stale, faultID(1), 0) // under the mount point
		testkit.MountTmpfs(t, root, "size=4m")
		s := crashstore.New(root, crashstore.Options{})
		e := newPair(t, s, faultID(2), 0)
		if held, err := s.CheckRoot(); !held || err != nil {
			t.Fatalf("mounted: CheckRoot = %v, %v", held, err)
		}
		testkit.Unmount(t, root)
		_, err := s.CheckRoot()
		f := wantFault(t, "unmounted", err, crashstore.FaultVanished, root)
		if !strings.Contains(f.Error(), "no longer on the file system mounted at "+root) {
			t.Errorf("the fault says %q", f.Error())
		}
		_, err = s.Lookup(t.Context(), e.ID)
		wantFault(t, "Lookup while unmounted", err, crashstore.FaultVanished, root)
		if ids, err := walkIDs(t, s); err == nil {
			t.Errorf("Walk while unmounted met %v, want the fault", ids)
		}

		testkit.MountTmpfs(t, root, "size=4m")
		newPair(t, s, e.ID, 0) // the tree copied back
		if held, err := s.CheckRoot(); !held || err != nil {
			t.Errorf("mounted again: CheckRoot = %v, %v", held, err)
		}
		if ids, err := walkIDs(t, s); err != nil || !slices.Equal(ids, []string{e.ID}) {
			t.Errorf("mounted again: Walk = %v, %v", ids, err)
		}
	})

	t.Run("Bind", func(t *testing.T) {
		src, bound := filepath.Join(dir, "src"), filepath.Join(dir, "bound")
		if err := os.Mkdir(src, 0o755); err != nil {
			t.Fatal(err)
		}
		testkit.BindMount(t, src, bound)
		s := crashstore.New(bound, crashstore.Options{})
		e := newPair(t, s, faultID(3), 0)
		if held, err := s.CheckRoot(); !held || err != nil {
			t.Fatalf("bound: CheckRoot = %v, %v", held, err)
		}
		testkit.Unmount(t, bound)
		_, err := s.Lookup(t.Context(), e.ID)
		wantFault(t, "Lookup while unbound", err, crashstore.FaultVanished, bound)
		testkit.BindMount(t, src, bound)
		if _, err := s.Lookup(t.Context(), e.ID); err != nil {
			t.Errorf("bound again: Lookup = %v", err)
		}
	})
}

// TestTreeFaults: the errors of a full, read-only and immutable archive, a
// read-only source tree and a dead mount are TreeFaults of the tree at
// fault, and leave the pair where it was; a file in the way is a problem of
// one crash.
func TestTreeFaults(t *testing.T) {
	testkit.RequireRoot(t)
	t.Parallel()
	dir := t.TempDir()
	stdRoot, archRoot := filepath.Join(dir, "std"), filepath.Join(dir, "archive")
	testkit.MountTmpfs(t, stdRoot, "size=4m")
	testkit.MountTmpfs(t, archRoot, "size=1m,nr_inodes=200")
	std := crashstore.New(stdRoot, crashstore.Options{})
	archive := crashstore.New(archRoot, crashstore.Options{})
	n := 0
	pair := func() crashstore.Entry {
		n++
		return newPair(t, std, testkit.CrashID(n, faultDay.AddDate(0, 0, n)), 0)
	}
	archiveFault := func(what string, kind crashstore.FaultKind) {
		t.Helper()
		e := pair()
		_, err := std.ArchivePair(t.Context(), e, archive)
		f := wantFault(t, what, err, kind, archRoot)
		if !f.Write {
			t.Errorf("%s: the fault is not one of a write", what)
		}
		if on := std.Present(e); !on.JSON || !on.Dump {
			t.Errorf("%s: the pair left the source: %+v", what, on)
		}
		for _, p := range testkit.Files(t, archRoot) {
			if strings.HasPrefix(filepath.Base(p), ".") {
				t.Errorf("%s: temporary file %s left", what, p)
			}
		}
		if _, err := std.ArchivePair(t.Context(), e, archive); kind != crashstore.FaultDenied && err == nil {
			t.Errorf("%s: a second try worked", what)
		}
	}
	archived := func(what string) {
		t.Helper()
		if _, err := std.ArchivePair(t.Context(), pair(), archive); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}

	archived("before any fault")
	testkit.Fill(t, archRoot, "filler")
	archiveFault("full archive", crashstore.FaultFull)
	testkit.Remount(t, archRoot, "size=64m")
	archived("grown archive")

	testkit.Remount(t, archRoot, "ro")
	archiveFault("read-only archive", crashstore.FaultReadOnly)
	testkit.Remount(t, archRoot, "rw")
	archived("writable archive")

	testkit.Immutable(t, archRoot, true)
	archiveFault("immutable archive root", crashstore.FaultDenied)
	testkit.Immutable(t, archRoot, false)
	archived("mutable archive root")

	// A file where one crash's daily directory belongs: that crash's
	// problem only.
	e := pair()
	day, _ := crashstore.IDDate(e.ID)
	if err := os.WriteFile(filepath.Join(archRoot, day.Format("20060102")), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := std.ArchivePair(t.Context(), e, archive); err == nil || crashstore.AsTreeFault(err) != nil {
		t.Errorf("a file in the way: %v, want an error that is no TreeFault", err)
	}

	testkit.Remount(t, stdRoot, "ro")
	e = newPairBefore(t, std, stdRoot)
	f := wantFault(t, "RemoveLinks in a read-only tree", std.RemoveLinks(e), crashstore.FaultReadOnly, stdRoot)
	if !errors.Is(f, syscall.EROFS) {
		t.Errorf("the fault does not wrap EROFS: %v", f)
	}
	testkit.Remount(t, stdRoot, "rw")
	if err := std.RemoveLinks(e); err != nil {
		t.Errorf("RemoveLinks once writable: %v", err)
	}

	dead := filepath.Join(dir, "dead")
	testkit.DeadMount(t, dead)
	gone := crashstore.New(dead, crashstore.Options{})
	_, err := gone.CheckRoot()
	wantFault(t, "a dead mount", err, crashstore.FaultIO, dead)
	_, err = walkIDs(t, gone)
	wantFault(t, "Walk of a dead mount", err, crashstore.FaultIO, dead)
}

// newPairBefore writes a pair into s before its root was made read-only:
// it makes it writable for the time of the write.
func newPairBefore(t *testing.T, s *crashstore.Store, root string) crashstore.Entry {
	t.Helper()
	testkit.Remount(t, root, "rw")
	defer testkit.Remount(t, root, "ro")
	return newPair(t, s, faultID(99), 0)
}

// TestWalkInboxUnreadable: an inbox directory that cannot be read (a dead
// mount over a minute slot) is handed to the unreadable callback once and
// skipped, not reported as malformed; the rest of the inbox is walked; once
// it can be read again its crashes are met.
func TestWalkInboxUnreadable(t *testing.T) {
	testkit.RequireRoot(t)
	t.Parallel()
	var problems []string
	s := crashstore.New(filepath.Join(t.TempDir(), "root"), crashstore.Options{
		Problem: func(p string, err error) { problems = append(problems, p+": "+err.Error()) },
	})
	var all []string
	var hidden crashstore.Entry
	for i := range 6 {
		e := newPair(t, s, faultID(i), i/2)
		all = append(all, e.ID)
		if i/2 == 1 {
			hidden = e
		}
	}
	slices.Sort(all)
	slot := filepath.Dir(filepath.Dir(hidden.DateLink)) // the minute directory
	testkit.DeadMount(t, slot)

	var met []string
	unreadable := map[string]error{}
	err := s.WalkInbox(t.Context(), func(e crashstore.Entry) error { met = append(met, e.ID); return nil },
		func(p string, err error) { unreadable[p] = err })
	if err != nil {
		t.Fatal(err)
	}
	if len(met) != 4 || slices.Contains(met, hidden.ID) {
		t.Errorf("met %v, want the 4 crashes outside %s", met, slot)
	}
	if len(unreadable) != 1 || !errors.Is(unreadable[slot], syscall.ENOTCONN) {
		t.Errorf("unreadable = %v, want %s: ENOTCONN", unreadable, slot)
	}
	if len(problems) != 0 {
		t.Errorf("reported as malformed: %q", problems)
	}

	testkit.Unmount(t, slot)
	if ids, err := walkIDs(t, s); err != nil || !slices.Equal(ids, all) {
		t.Errorf("readable again: Walk = %v, %v; want %v", ids, err, all)
	}
}

// TestLookupRemembersTheTree: a Store that has only found crashes (as the
// priority loop's does) knows the tree was there, so a lookup after it went
// is a vanished tree, not "not found".
func TestLookupRemembersTheTree(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	writer := crashstore.New(root, crashstore.Options{})
	a, b := newPair(t, writer, faultID(1), 0), newPair(t, writer, faultID(2), 1)
	s := crashstore.New(root, crashstore.Options{})
	if _, err := s.Lookup(t.Context(), a.ID); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(root, 0o755); err != nil { // the mount point, empty
		t.Fatal(err)
	}
	_, err := s.Lookup(t.Context(), b.ID)
	wantFault(t, "Lookup after the tree went", err, crashstore.FaultVanished, root)
}
