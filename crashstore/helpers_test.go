package crashstore

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/internal/crashfixture"
)

// testNow is the clock of most tests: the worked example's submission time.
var testNow = time.Date(2009, 9, 28, 12, 5, 33, 0, time.UTC)

// fixture is one line of testdata/crashes/classic.txt.
type fixture struct {
	set, id, webhead, radix, flatSlot string
	at                                time.Time
}

// classic returns the classic fixtures of the named set ("" for all).
func classic(t testing.TB, set string) []fixture {
	t.Helper()
	var out []fixture
	for _, fx := range crashfixture.Classic(t, set) {
		out = append(out, fixture{set: fx.Set, id: fx.ID, at: fx.At, webhead: fx.Webhead, radix: fx.Radix, flatSlot: fx.FlatSlot})
	}
	return out
}

// problem is one Options.Problem call.
type problem struct {
	path string
	err  error
}

// bundle is a Store on a fresh tree plus what its Problem callback heard.
type bundle struct {
	s        *Store
	root     string
	problems []problem
}

// setup returns a store rooted in a fresh temporary directory (not created
// yet), with testNow as its clock unless opts sets one.
func setup(t testing.TB, opts Options) *bundle {
	t.Helper()
	b := &bundle{root: filepath.Join(t.TempDir(), "root")}
	if opts.Now == nil {
		opts.Now = func() time.Time { return testNow }
	}
	if opts.Problem == nil {
		opts.Problem = func(path string, err error) {
			b.problems = append(b.problems, problem{path, err})
		}
	}
	b.s = New(b.root, opts)
	return b
}

// put stores fixtures as createTestSet did: a one-line json (not valid
// JSON) and a one-line dump each.
func (b *bundle) put(t testing.TB, fxs []fixture) map[string]Entry {
	t.Helper()
	out := make(map[string]Entry, len(fxs))
	for _, fx := range fxs {
		e, err := b.s.NewEntry(fx.id, fx.webhead, fx.at, []byte("dump test of "+fx.id+"\n"), []byte("json test of "+fx.id+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		out[fx.id] = e
	}
	return out
}

// putClassic stores the classic fixtures of set as put does, and returns
// them with their entries by id.
func (b *bundle) putClassic(t testing.TB, set string) ([]fixture, map[string]Entry) {
	t.Helper()
	fxs := classic(t, set)
	return fxs, b.put(t, fxs)
}

// problemPaths returns the sorted paths reported so far.
func (b *bundle) problemPaths() []string {
	var ps []string
	for _, p := range b.problems {
		ps = append(ps, p.path)
	}
	slices.Sort(ps)
	return ps
}

// walkAll walks the whole tree and returns what it yielded.
func walkAll(t testing.TB, s *Store) []Entry {
	t.Helper()
	var out []Entry
	if err := s.Walk(t.Context(), func(e Entry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return out
}

// ids returns the ids of entries, sorted.
func ids(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ID)
	}
	slices.Sort(out)
	return out
}

// fixtureIDs returns the ids of fixtures, sorted.
func fixtureIDs(fxs []fixture) []string {
	var out []string
	for _, fx := range fxs {
		out = append(out, fx.id)
	}
	slices.Sort(out)
	return out
}

// setMtime sets the modification time of files.
func setMtime(t testing.TB, mtime time.Time, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

// settle ages a pair's files to an hour before testNow.
func settle(t testing.TB, e Entry) {
	t.Helper()
	setMtime(t, testNow.Add(-time.Hour), e.JSONPath, e.DumpPath)
}

// exists reports whether a path exists (links are not followed).
func exists(t testing.TB, p string) bool {
	t.Helper()
	_, err := os.Lstat(p)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return err == nil
}

// mustSymlink creates a symbolic link.
func mustSymlink(t testing.TB, target, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

// mustWrite creates a regular file (and its directory).
func mustWrite(t testing.TB, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// mustMkdir creates a directory and its parents.
func mustMkdir(t testing.TB, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}
