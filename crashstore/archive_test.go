package crashstore

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// archiveGroup returns a group ArchivePair can give files: another group
// when running as root (who may give any), else a supplementary group of the
// process other than its own, else 0 (no group test).
func archiveGroup(t *testing.T) int {
	t.Helper()
	if os.Geteuid() == 0 {
		return otherGroup(t)
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if g > 0 && g != os.Getegid() {
			return g
		}
	}
	return 0
}

// newArchive returns an archive store in a fresh directory of the test
// (created by ArchivePair's first move: its parent exists).
func newArchive(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return testNow }
	}
	return New(filepath.Join(dir, "archive"), opts)
}

// archivedPath is where an archive keeps a file of a fixture (daily layout).
func archivedPath(a *Store, fx fixture, suffix string) string {
	day, ok := IDDate(fx.id)
	if !ok {
		day = testNow
	}
	return a.Root() + "/" + day.Format("20060102") + "/name/" + fx.radix + "/" + fx.id + suffix
}

// contents reads a file, failing the test when it cannot.
func contents(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// archiveOne archives an entry and fails the test on error.
func archiveOne(t *testing.T, s *Store, e Entry, a *Store) ArchiveResult {
	t.Helper()
	res, err := s.ArchivePair(t.Context(), e, a)
	if err != nil {
		t.Fatalf("ArchivePair(%s): %v", e.ID, err)
	}
	return res
}

// filesUnder lists every non-directory below root, relative to it.
func filesUnder(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			r, _ := filepath.Rel(root, p)
			out = append(out, r)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestArchivePairMoves archives every classic fixture within one file
// system: renamed to the archive's daily directory of the crash id's date,
// byte for byte, with the archive's modes and group on the files and on
// every directory it made; nothing of the pair stays in the source tree
// except the daily and name directories.
func TestArchivePairMoves(t *testing.T) {
	t.Parallel()
	for _, layout := range []Layout{LayoutDaily, LayoutFlat} {
		t.Run(string(layout), func(t *testing.T) {
			t.Parallel()
			b := setup(t, Options{Layout: layout, GID: -1})
			fxs, entries := b.putClassic(t, "jsonFileData")
			gid := archiveGroup(t)
			a := newArchive(t, "", Options{Layout: layout, FilePerm: 0o640, DirPerm: 0o750, GID: gid})

			for i, fx := range fxs {
				e := entries[fx.id]
				if i%2 == 0 {
					// The scanner took half of them out of the inbox.
					if err := b.s.RemoveLinks(e); err != nil {
						t.Fatal(err)
					}
				}
				// Lookup, as the cleanup does.
				found, err := b.s.Lookup(t.Context(), fx.id)
				if err != nil {
					t.Fatal(err)
				}
				res := archiveOne(t, b.s, found, a)
				if res.JSON != FileMoved || res.Dump != FileMoved || !res.Complete() {
					t.Errorf("%s: outcome json %v dump %v, want moved", fx.id, res.JSON, res.Dump)
				}
				wantJSON := archivedPath(a, fx, ".json")
				if layout == LayoutFlat {
					wantJSON = a.Root() + "/name/" + fx.radix + "/" + fx.id + ".json"
				}
				if res.Target.JSONPath != wantJSON {
					t.Errorf("%s: archived json at %s, want %s", fx.id, res.Target.JSONPath, wantJSON)
				}
				checkContent(t, res.Target.JSONPath, "json test of "+fx.id+"\n")
				checkContent(t, res.Target.DumpPath, "dump test of "+fx.id+"\n")
				for _, p := range []string{res.Target.JSONPath, res.Target.DumpPath} {
					checkMode(t, p, 0o640)
					if gid > 0 && fileGID(t, p) != gid {
						t.Errorf("%s: gid %d, want %d", p, fileGID(t, p), gid)
					}
				}
				for d := res.Target.NameDir; d != filepath.Dir(a.Root()); d = filepath.Dir(d) {
					checkMode(t, d, fs.ModeDir|0o750)
					if gid > 0 && fileGID(t, d) != gid {
						t.Errorf("%s: gid %d, want %d", d, fileGID(t, d), gid)
					}
				}
				for _, p := range []string{e.JSONPath, e.DumpPath, e.NameLink, e.DateLink} {
					if exists(t, p) {
						t.Errorf("%s still in the source tree", p)
					}
				}
			}
			// Only the links' date directories and the name branch tops stay.
			if files := filesUnder(t, b.root); len(files) != 0 {
				t.Errorf("files left in the source tree: %v", files)
			}
			var names []string
			if layout == LayoutDaily {
				names, _ = filepath.Glob(b.root + "/*/name/*")
			} else {
				names, _ = filepath.Glob(b.root + "/name/*")
			}
			if len(names) != 0 {
				t.Errorf("emptied name directories left: %v", names)
			}
			if n := len(filesUnder(t, a.Root())); n != 2*len(fxs) {
				t.Errorf("%d files in the archive, want %d", n, 2*len(fxs))
			}
		})
	}
}

// crossDevice returns a directory on another file system than the test's
// temporary directories (/dev/shm, a tmpfs), or "" when there is none.
func crossDevice(t *testing.T) string {
	t.Helper()
	dev := func(p string) (uint64, bool) {
		fi, err := os.Stat(p)
		if err != nil {
			return 0, false
		}
		return uint64(fi.Sys().(*syscall.Stat_t).Dev), true
	}
	tmp := t.TempDir()
	shm, ok1 := dev("/dev/shm")
	here, ok2 := dev(tmp)
	if !ok1 || !ok2 || shm == here {
		return ""
	}
	dir, err := os.MkdirTemp("/dev/shm", "crashstore-test-")
	if err != nil {
		return ""
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestArchivePairCopies archives across file systems (/dev/shm) and with
// AlwaysCopy: the files are copied byte for byte through temporary files
// that do not stay, keep their modification time, get the archive's mode,
// and leave the source.
func TestArchivePairCopies(t *testing.T) {
	t.Parallel()
	if dir := crossDevice(t); dir != "" {
		t.Run("CrossDevice", func(t *testing.T) { testCopies(t, dir, Options{FilePerm: 0o604}) })
	} else {
		t.Log("no /dev/shm on another file system: only the forced copy path is tested")
	}
	t.Run("AlwaysCopy", func(t *testing.T) { testCopies(t, "", Options{AlwaysCopy: true, FilePerm: 0o604}) })
}

func testCopies(t *testing.T, dir string, opts Options) {
	t.Parallel()
	b := setup(t, Options{GID: -1})
	fxs, entries := b.putClassic(t, "jsonFileData")
	mtime := time.Date(2008, 12, 25, 5, 1, 2, 0, time.UTC)
	gid := archiveGroup(t)
	opts.GID = gid
	a := newArchive(t, dir, opts)
	for _, fx := range fxs {
		e := entries[fx.id]
		setMtime(t, mtime, e.JSONPath, e.DumpPath)
		res := archiveOne(t, b.s, e, a)
		if res.JSON != FileCopied || res.Dump != FileCopied {
			t.Errorf("%s: outcome json %v dump %v, want copied", fx.id, res.JSON, res.Dump)
		}
		checkContent(t, archivedPath(a, fx, ".json"), "json test of "+fx.id+"\n")
		checkContent(t, archivedPath(a, fx, ".dump"), "dump test of "+fx.id+"\n")
		for _, p := range []string{res.Target.JSONPath, res.Target.DumpPath} {
			checkMode(t, p, 0o604)
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.ModTime().Equal(mtime) {
				t.Errorf("%s: mtime %v, want %v", p, fi.ModTime(), mtime)
			}
			if gid > 0 && fileGID(t, p) != gid {
				t.Errorf("%s: gid %d, want %d", p, fileGID(t, p), gid)
			}
		}
	}
	if files := filesUnder(t, b.root); len(files) != 0 {
		t.Errorf("files left in the source tree: %v", files)
	}
	files := filesUnder(t, a.Root())
	if len(files) != 2*len(fxs) {
		t.Errorf("archive holds %d files, want %d: %v", len(files), 2*len(fxs), files)
	}
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), ".") {
			t.Errorf("temporary file left in the archive: %s", f)
		}
	}
}

// TestArchivePairResumes puts a pair in each state a kill can leave it in
// and checks that ArchivePair finishes the job: each file once in the
// archive, byte for byte, none in the source.
func TestArchivePairResumes(t *testing.T) {
	t.Parallel()
	fx := classic(t, "jsonFileData")[5]
	const json, dump = "json test", "dump test"

	type state struct {
		name string
		opts Options
		// prepare changes the tree after the pair is written (links
		// removed) and before ArchivePair runs; src is the source entry,
		// dst its place in the archive.
		prepare  func(t *testing.T, src, dst Entry)
		wantJSON FileOutcome
		wantDump FileOutcome
	}
	moveTo := func(t *testing.T, from, to string) {
		t.Helper()
		mustMkdir(t, filepath.Dir(to))
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
	}
	write := func(t *testing.T, p, s string, mode fs.FileMode) {
		t.Helper()
		mustMkdir(t, filepath.Dir(p))
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	states := []state{
		{
			name:     "DumpMovedJSONNot",
			prepare:  func(t *testing.T, src, dst Entry) { moveTo(t, src.DumpPath, dst.DumpPath) },
			wantJSON: FileMoved, wantDump: FileArchived,
		},
		{
			name: "BothMovedBeforeChmod",
			prepare: func(t *testing.T, src, dst Entry) {
				moveTo(t, src.DumpPath, dst.DumpPath)
				moveTo(t, src.JSONPath, dst.JSONPath)
				os.Chmod(dst.JSONPath, 0o666) // the mode the archive must fix
			},
			wantJSON: FileArchived, wantDump: FileArchived,
		},
		{
			name: "CopiedNotRemoved",
			opts: Options{AlwaysCopy: true},
			prepare: func(t *testing.T, src, dst Entry) {
				write(t, dst.DumpPath, dump, 0o640)
				write(t, dst.JSONPath, json, 0o640)
			},
			wantJSON: FileCopied, wantDump: FileCopied,
		},
		{
			name: "CopyInterrupted",
			opts: Options{AlwaysCopy: true},
			prepare: func(t *testing.T, src, dst Entry) {
				write(t, filepath.Join(dst.NameDir, "."+fx.id+".dump.tmp"), "partial", 0o640)
			},
			wantJSON: FileCopied, wantDump: FileCopied,
		},
		{
			name: "TargetGarbageSourceThere",
			prepare: func(t *testing.T, src, dst Entry) {
				write(t, dst.DumpPath, "garbage from somewhere", 0o600)
			},
			wantJSON: FileMoved, wantDump: FileMoved,
		},
		{
			name: "AlreadyDone",
			prepare: func(t *testing.T, src, dst Entry) {
				moveTo(t, src.DumpPath, dst.DumpPath)
				moveTo(t, src.JSONPath, dst.JSONPath)
			},
			wantJSON: FileArchived, wantDump: FileArchived,
		},
	}
	for _, st := range states {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, Options{GID: -1})
			e, err := b.s.NewEntry(fx.id, fx.webhead, fx.at, []byte(dump), []byte(json))
			if err != nil {
				t.Fatal(err)
			}
			if err := b.s.RemoveLinks(e); err != nil {
				t.Fatal(err)
			}
			st.opts.FilePerm = 0o640
			a := newArchive(t, "", st.opts)
			dst, err := a.archiveTarget(t.Context(), Entry{ID: fx.id})
			if err != nil {
				t.Fatal(err)
			}
			st.prepare(t, e, dst)

			// The cleanup looks the pair up again after a restart: it may
			// be found (a file left) or not (only the id).
			found, err := b.s.Lookup(t.Context(), fx.id)
			if errors.Is(err, ErrNotFound) {
				found, err = Entry{ID: fx.id}, nil
			}
			if err != nil {
				t.Fatal(err)
			}
			res := archiveOne(t, b.s, found, a)
			if res.JSON != st.wantJSON || res.Dump != st.wantDump {
				t.Errorf("outcome json %v dump %v, want %v %v", res.JSON, res.Dump, st.wantJSON, st.wantDump)
			}
			checkContent(t, dst.JSONPath, json)
			checkContent(t, dst.DumpPath, dump)
			checkMode(t, dst.JSONPath, 0o640)
			checkMode(t, dst.DumpPath, 0o640)
			if files := filesUnder(t, a.Root()); len(files) != 2 {
				t.Errorf("archive holds %v, want the pair alone", files)
			}
			if files := filesUnder(t, b.root); len(files) != 0 {
				t.Errorf("source tree holds %v", files)
			}

			// Once more, as after a kill between the disk work and the
			// row's removal.
			res = archiveOne(t, b.s, Entry{ID: fx.id}, a)
			if res.JSON != FileArchived || res.Dump != FileArchived {
				t.Errorf("repeat: outcome json %v dump %v, want already archived", res.JSON, res.Dump)
			}
		})
	}
}

// TestArchivePairMissingFiles: a pair with a file missing is archived as far
// as it exists; a crash found nowhere reports both missing.
func TestArchivePairMissingFiles(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{GID: -1})
	fxs := classic(t, "jsonFileData")
	entries := b.put(t, fxs[:3])
	a := newArchive(t, "", Options{})

	os.Remove(entries[fxs[0].id].JSONPath)
	os.Remove(entries[fxs[1].id].DumpPath)
	for i, fx := range fxs[:2] {
		found, err := b.s.Lookup(t.Context(), fx.id)
		if err != nil {
			t.Fatal(err)
		}
		res := archiveOne(t, b.s, found, a)
		wantJSON, wantDump := FileMissing, FileMoved
		if i == 1 {
			wantJSON, wantDump = FileMoved, FileMissing
		}
		if res.JSON != wantJSON || res.Dump != wantDump || res.Complete() || !res.Found() {
			t.Errorf("%s: outcome json %v dump %v, want %v %v", fx.id, res.JSON, res.Dump, wantJSON, wantDump)
		}
	}
	res := archiveOne(t, b.s, Entry{ID: "0bad0bad-0bad-6666-9999-0bad20001025"}, a)
	if res.Found() {
		t.Errorf("unknown crash: outcome json %v dump %v, want missing", res.JSON, res.Dump)
	}
	kept := entries[fxs[2].id]
	want := []string{kept.DateLink, kept.NameLink, kept.DumpPath, kept.JSONPath}
	for i := range want {
		want[i] = strings.TrimPrefix(want[i], b.root+"/")
	}
	slices.Sort(want)
	if files := filesUnder(t, b.root); !slices.Equal(files, want) {
		t.Errorf("source tree holds %v, want only the untouched pair %v", files, want)
	}
}

// TestArchivePairErrors: a file where an archive directory must go, and a
// directory where a source file belongs, fail that pair with a clear error
// and leave its files where they were; once the file in the way is gone, the
// same call succeeds.
func TestArchivePairErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{GID: -1})
	fxs := classic(t, "jsonFileData")
	entries := b.put(t, fxs[:2])
	a := newArchive(t, "", Options{})

	fx := fxs[0]
	day, _ := IDDate(fx.id)
	inTheWay := a.Root() + "/" + day.Format("20060102") + "/name"
	mustWrite(t, inTheWay)
	e := entries[fx.id]
	_, err := b.s.ArchivePair(t.Context(), e, a)
	if err == nil || !strings.Contains(err.Error(), inTheWay) {
		t.Errorf("ArchivePair with a file in the way: err = %v, want one naming %s", err, inTheWay)
	}
	if !exists(t, e.JSONPath) || !exists(t, e.DumpPath) {
		t.Error("source files gone after a failed archive")
	}
	if err := os.Remove(inTheWay); err != nil {
		t.Fatal(err)
	}
	if res := archiveOne(t, b.s, e, a); !res.Complete() {
		t.Errorf("after the fix: outcome json %v dump %v", res.JSON, res.Dump)
	}

	e = entries[fxs[1].id]
	os.Remove(e.DumpPath)
	mustMkdir(t, e.DumpPath)
	if _, err := b.s.ArchivePair(t.Context(), e, a); !errors.Is(err, ErrMalformed) {
		t.Errorf("directory as the dump: err = %v, want ErrMalformed", err)
	}

	// An Entry of another tree is refused before anything is touched.
	other := setup(t, Options{GID: -1})
	if _, err := other.s.ArchivePair(t.Context(), entries[fxs[1].id], a); !errors.Is(err, ErrMalformed) {
		t.Errorf("entry of another tree: err = %v, want ErrMalformed", err)
	}
}

// TestArchivePairUndatedID: an id without a date goes to today's daily
// directory of the archive, and a pair an earlier attempt half archived on
// another day is completed there, not split.
func TestArchivePairUndatedID(t *testing.T) {
	t.Parallel()
	const id = "6ba1c0de-1234-4abc-9def-0123456789ab"
	b := setup(t, Options{GID: -1})
	a := newArchive(t, "", Options{})
	e, err := b.s.NewEntry(id, "web1", testNow, []byte("d"), []byte("j"))
	if err != nil {
		t.Fatal(err)
	}
	res := archiveOne(t, b.s, e, a)
	if want := a.Root() + "/" + testNow.Format("20060102") + "/name/6b/a1/c0/de/" + id + ".json"; res.Target.JSONPath != want {
		t.Errorf("archived at %s, want %s", res.Target.JSONPath, want)
	}

	// Half archived on an earlier day.
	const id2 = "7ba1c0de-1234-4abc-9def-0123456789ab"
	e, err = b.s.NewEntry(id2, "web1", testNow, []byte("d2"), []byte("j2"))
	if err != nil {
		t.Fatal(err)
	}
	earlier := a.Root() + "/20090927/name/7b/a1/c0/de/"
	mustMkdir(t, earlier)
	if err := os.Rename(e.JSONPath, earlier+id2+".json"); err != nil {
		t.Fatal(err)
	}
	found, err := b.s.Lookup(t.Context(), id2)
	if err != nil {
		t.Fatal(err)
	}
	res = archiveOne(t, b.s, found, a)
	if res.JSON != FileArchived || res.Dump != FileMoved || res.Target.NameDir != filepath.Clean(earlier) {
		t.Errorf("outcome json %v dump %v in %s, want the earlier day's directory", res.JSON, res.Dump, res.Target.NameDir)
	}
	checkContent(t, earlier+id2+".dump", "d2")
}

// TestArchivePairConcurrent: two attempts at the same pair at once (the
// monitor that has just lost its lease and the one that took over, each with
// stores of its own) both succeed, and leave the pair archived once, whole,
// with nothing behind: by renames, and by copies through temporary files.
func TestArchivePairConcurrent(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]Options{"Rename": {}, "Copy": {AlwaysCopy: true}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const pairs = 200
			dir := t.TempDir()
			open := func(root string, o Options) *Store {
				o.GID, o.FilePerm, o.Now = -1, 0o640, func() time.Time { return testNow }
				return New(filepath.Join(dir, root), o)
			}
			sources := [2]*Store{open("root", Options{}), open("root", Options{})}
			archives := [2]*Store{open("archive", opts), open("archive", opts)}
			entries := make([]Entry, pairs)
			for i := range entries {
				id := fmt.Sprintf("%08x-4b1d-4e1f-9a5c-0000%02d%s", i, 2, testNow.Format("060102"))
				dump := bytes.Repeat([]byte(id), 1+i%50) // up to 1.8 kB, so that copies take a moment
				e, err := sources[0].NewEntry(id, "web1", testNow, dump, []byte(id))
				if err != nil {
					t.Fatal(err)
				}
				entries[i] = e
			}
			for _, e := range entries {
				var wg sync.WaitGroup
				start := make(chan struct{})
				var errs [2]error
				var res [2]ArchiveResult
				for k := range 2 {
					wg.Go(func() {
						<-start
						res[k], errs[k] = sources[k].ArchivePair(t.Context(), e, archives[k])
					})
				}
				close(start)
				wg.Wait()
				for k := range 2 {
					if errs[k] != nil || !res[k].Complete() {
						t.Errorf("%s: attempt %d: %+v, %v", e.ID, k, res[k], errs[k])
					}
				}
			}
			got := filesUnder(t, archives[0].Root())
			if len(got) != 2*pairs {
				t.Errorf("the archive holds %d files, want %d (each pair once, no temporary file)", len(got), 2*pairs)
			}
			for _, f := range got {
				if strings.HasSuffix(f, ".tmp") {
					t.Errorf("temporary file left: %s", f)
				}
			}
			for i, e := range entries {
				dst, err := archives[0].archiveTarget(t.Context(), Entry{ID: e.ID})
				if err != nil {
					t.Fatal(err)
				}
				checkContent(t, dst.DumpPath, strings.Repeat(e.ID, 1+i%50))
				checkContent(t, dst.JSONPath, e.ID)
			}
			if left := filesUnder(t, sources[0].Root()); len(left) != 0 {
				t.Errorf("the source tree holds %v", left)
			}
		})
	}
}
