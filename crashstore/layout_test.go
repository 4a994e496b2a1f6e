package crashstore

import (
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const workedID = "4dd21cc0-49d9-46ae-a42b-fadb42090928"

// TestNew is classic tests 31 and 44: defaults, suffixes, trailing slashes.
func TestNew(t *testing.T) {
	t.Parallel()
	s := New("/r/x///", Options{})
	if s.Root() != "/r/x" || s.Layout() != LayoutDaily {
		t.Errorf("Root, Layout = %q, %q", s.Root(), s.Layout())
	}
	if s.jsonSuffix != ".json" || s.dumpSuffix != ".dump" || s.dirPerm != 0o770 || s.filePerm != 0o660 ||
		s.gid != 0 || s.maxDirEntries != 1024 || s.slotLen != time.Minute {
		t.Errorf("defaults: %+v", s)
	}
	s = New("r/", Options{Layout: LayoutFlat, JSONSuffix: "JS", DumpSuffix: ".DS", DirPerm: 0o707, FilePerm: 0o500, GID: -1, MaxDirEntries: 3})
	if s.Root() != "r" || s.jsonSuffix != ".JS" || s.dumpSuffix != ".DS" || s.dirPerm != 0o707 ||
		s.filePerm != 0o500 || s.maxDirEntries != 3 || s.slotLen != 5*time.Minute {
		t.Errorf("overrides: %+v", s)
	}
	defer func() {
		if recover() == nil {
			t.Error("New with an unknown layout did not panic")
		}
	}()
	New("/r", Options{Layout: "weekly"})
}

// TestNewEntryDailyWorkedExample is the worked example of socorro-classic 1.2.
func TestNewEntryDailyWorkedExample(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	day := b.root + "/20090928"
	want := checkWorkedEntry(t, b, time.Date(2009, 9, 28, 12, 5, 33, 0, time.UTC),
		day, day+"/date/12/05/web1_0", "../../../date/12/05/web1_0", "../../../../name/4d/d2")
	checkContent(t, want.JSONPath, "{}")
	checkContent(t, want.DumpPath, "dump")
}

// TestNewEntryFlatWorkedExample is the worked example of socorro-classic 1.3
// (and test 68: the date link's 7-level prefix).
func TestNewEntryFlatWorkedExample(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Layout: LayoutFlat})
	r := b.root
	checkWorkedEntry(t, b, time.Date(2009, 9, 28, 12, 7, 0, 0, time.UTC),
		r, r+"/date/2009/09/28/12/05/web1_0", "../../../date/2009/09/28/12/05/web1_0", "../../../../../../../name/4d/d2")
}

// checkWorkedEntry stores the worked example's crash (workedID from web1,
// submitted at) and checks the Entry NewEntry returns: its files and name
// link in the name directory 4d/d2 of the name branch under nameRoot, its
// date link in dateLeaf, slot 12:05; and that the name link points to the
// date leaf by nameTarget and the date link to the name directory by
// dateTarget. It returns the Entry.
func checkWorkedEntry(t *testing.T, b *bundle, at time.Time, nameRoot, dateLeaf, nameTarget, dateTarget string) Entry {
	t.Helper()
	e, err := b.s.NewEntry(workedID, "web1", at, []byte("dump"), []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	nameDir := nameRoot + "/name/4d/d2"
	want := Entry{
		ID:       workedID,
		DateLink: dateLeaf + "/" + workedID,
		NameDir:  nameDir,
		JSONPath: nameDir + "/" + workedID + ".json",
		DumpPath: nameDir + "/" + workedID + ".dump",
		NameLink: nameDir + "/" + workedID,
		Slot:     time.Date(2009, 9, 28, 12, 5, 0, 0, time.UTC),
	}
	if e != want {
		t.Errorf("NewEntry =\n%+v, want\n%+v", e, want)
	}
	checkLink(t, want.NameLink, nameTarget, dateLeaf)
	checkLink(t, want.DateLink, dateTarget, want.NameDir)
	return want
}

// TestNewEntryClassicPaths is classic tests 32, 35 and 68 over the 14
// fixtures: name directory by the id's depth, date leaf by submission time.
func TestNewEntryClassicPaths(t *testing.T) {
	t.Parallel()
	for _, layout := range []Layout{LayoutDaily, LayoutFlat} {
		t.Run(string(layout), func(t *testing.T) {
			t.Parallel()
			b := setup(t, Options{Layout: layout, JSONSuffix: "JS", DumpSuffix: ".DS"})
			for _, fx := range classic(t, "jsonFileData") {
				e := b.put(t, []fixture{fx})[fx.id]
				base, leaf := b.root, b.root+"/date/"+fx.flatSlot+"/"+fx.webhead+"_0"
				if layout == LayoutDaily {
					base = b.root + "/" + fx.at.Format("20060102")
					leaf = base + "/date/" + fx.at.Format("15/04") + "/" + fx.webhead + "_0"
				}
				if want := base + "/name/" + fx.radix; e.NameDir != want {
					t.Errorf("%s: NameDir = %q, want %q", fx.id, e.NameDir, want)
				}
				if e.JSONPath != e.NameDir+"/"+fx.id+".JS" || e.DumpPath != e.NameDir+"/"+fx.id+".DS" {
					t.Errorf("%s: files %q %q", fx.id, e.JSONPath, e.DumpPath)
				}
				if e.DateLink != leaf+"/"+fx.id {
					t.Errorf("%s: DateLink = %q, want in %q", fx.id, e.DateLink, leaf)
				}
				checkLink(t, e.DateLink, strings.Repeat("../", strings.Count(leaf[len(base):], "/"))+"name/"+fx.radix, e.NameDir)
				checkContent(t, e.JSONPath, "json test of "+fx.id+"\n")
			}
		})
	}
}

func TestCreateLinksWritesNoFile(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	e, err := b.s.CreateLinks(workedID, "web1", time.Time{}) // zero: now
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(e.DateLink, b.root+"/20090928/date/12/05/web1_0/") {
		t.Errorf("zero time did not use Options.Now: %q", e.DateLink)
	}
	if !exists(t, e.DateLink) || !exists(t, e.NameLink) || exists(t, e.JSONPath) || exists(t, e.DumpPath) {
		t.Errorf("CreateLinks: want both links and no file")
	}
	// A second time replaces the links (a retried submission).
	if _, err := b.s.CreateLinks(workedID, "web1", time.Time{}); err != nil {
		t.Fatal(err)
	}
}

func TestNewEntryRefusesBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	for _, id := range []string{"", "nothing", "../../../../../../../../etc/passwd0", workedID + "/x", strings.ToUpper(workedID)[:35]} {
		if _, err := b.s.NewEntry(id, "web1", testNow, nil, nil); !errors.Is(err, ErrInvalidID) {
			t.Errorf("NewEntry(%q) = %v, want ErrInvalidID", id, err)
		}
	}
	for _, w := range []string{"", "a/b", ".hidden", "..", "nul\x00"} {
		if _, err := b.s.NewEntry(workedID, w, testNow, nil, nil); err == nil {
			t.Errorf("NewEntry with webhead %q: no error", w)
		}
	}
	if exists(t, b.root) {
		t.Error("refused entries created the root")
	}
}

// TestCreateLinksFileInTheWay is classic tests 52, 53 and 66: a regular file
// occupying a path component is an error, never replaced.
func TestCreateLinksFileInTheWay(t *testing.T) {
	t.Parallel()
	for _, rel := range []string{"20090928", "20090928/date/12", "20090928/date/12/05/web1_0", "20090928/name/4d"} {
		b := setup(t, Options{})
		mustWrite(t, filepath.Join(b.root, rel))
		if _, err := b.s.NewEntry(workedID, "web1", testNow, nil, nil); err == nil {
			t.Errorf("file at %s: no error", rel)
		}
		if fi, err := os.Lstat(filepath.Join(b.root, rel)); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("file at %s was touched: %v", rel, err)
		}
	}
	b := setup(t, Options{})
	if err := os.WriteFile(filepath.Dir(b.root)+"/x", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(filepath.Dir(b.root)+"/x/root", Options{}).NewEntry(workedID, "web1", testNow, nil, nil); err == nil {
		t.Error("root under a file: no error")
	}
}

// TestNewEntryPermissions is classic test 56: exact modes whatever the umask
// (the test process runs with 022, which would clear the 002 bit of 0707).
func TestNewEntryPermissions(t *testing.T) {
	t.Parallel()
	for _, layout := range []Layout{LayoutDaily, LayoutFlat} {
		t.Run(string(layout), func(t *testing.T) {
			t.Parallel()
			b := setup(t, Options{Layout: layout, DirPerm: 0o707, FilePerm: 0o500})
			e, err := b.s.NewEntry(workedID, "web1", testNow, []byte("d"), []byte("j"))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{e.JSONPath, e.DumpPath} {
				checkMode(t, p, 0o500)
			}
			for _, d := range createdDirs(b.root, e) {
				checkMode(t, d, fs.ModeDir|0o707)
			}
		})
	}
}

// TestNewEntryGID is classic test 58: with a group set, both files and every
// directory of both branches get it; without one, nothing is chowned.
func TestNewEntryGID(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("chown to another group needs root")
	}
	gid := otherGroup(t)
	for _, layout := range []Layout{LayoutDaily, LayoutFlat} {
		t.Run(string(layout), func(t *testing.T) {
			t.Parallel()
			b := setup(t, Options{Layout: layout, GID: gid})
			e, err := b.s.NewEntry(workedID, "web1", testNow, []byte("d"), []byte("j"))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range append(createdDirs(b.root, e), e.JSONPath, e.DumpPath) {
				if g := fileGID(t, p); g != gid {
					t.Errorf("%s: gid %d, want %d", p, g, gid)
				}
			}
			b = setup(t, Options{Layout: layout, GID: -1})
			if e, err = b.s.NewEntry(workedID, "web1", testNow, nil, nil); err != nil {
				t.Fatal(err)
			}
			for _, p := range append(createdDirs(b.root, e), e.JSONPath, e.DumpPath) {
				if g := fileGID(t, p); g == gid {
					t.Errorf("%s: GID -1 chowned to %d", p, g)
				}
			}
		})
	}
}

// createdDirs lists the directories NewEntry made: every one from the root
// down to the name directory and to the date leaf.
func createdDirs(root string, e Entry) []string {
	dirs := []string{root}
	seen := map[string]bool{root: true}
	for _, leaf := range []string{e.NameDir, filepath.Dir(e.DateLink)} {
		for d := leaf; d != root; d = filepath.Dir(d) {
			if !seen[d] {
				seen[d] = true
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

// otherGroup returns a gid other than the process's own.
func otherGroup(t *testing.T) int {
	for _, name := range []string{"nogroup", "postgres", "daemon", "bin"} {
		if g, err := user.LookupGroup(name); err == nil {
			if n, err := strconv.Atoi(g.Gid); err == nil && n != os.Getegid() {
				return n
			}
		}
	}
	return 4242 // root may give any gid
}

func fileGID(t *testing.T, p string) int {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Gid)
}

func checkMode(t *testing.T, p string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != want {
		t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
	}
}

// checkLink checks a link's exact text and that it resolves to dir.
func checkLink(t *testing.T, link, text, dir string) {
	t.Helper()
	got, err := os.Readlink(link)
	if err != nil {
		t.Fatal(err)
	}
	if got != text {
		t.Errorf("readlink %s = %q, want %q", link, got, text)
	}
	a, err := os.Stat(link)
	if err != nil {
		t.Fatalf("link %s does not resolve: %v", link, err)
	}
	b, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(a, b) {
		t.Errorf("link %s does not resolve to %s", link, dir)
	}
}

func checkContent(t *testing.T, p, want string) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s = %q, want %q", p, got, want)
	}
}
