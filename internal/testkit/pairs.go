package testkit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/crashfixture"
	"github.com/crashmonitor/monitor/internal/crashgen"
)

// Pair is a crash pair for WritePairs.
type Pair struct {
	ID      string
	Webhead string    // "" is web1
	At      time.Time // the submission time; zero is now
	Dump    []byte    // nil is "dump"
	JSON    []byte    // nil is "{}"
}

// PairOpts says how WritePairs leaves the pairs; nil is settled and in the
// inbox, as the scanner finds a pair a collector has finished.
type PairOpts struct {
	Fresh  bool // leave the files' times as written: not settled yet
	Queued bool // remove the inbox links, as the scanner does once it queued the pair
}

// parallelFrom is the number of pairs from which WritePairs uses several
// writers; smaller sets are written in order.
const parallelFrom = 1000

// WritePairs writes pairs into s as a collector does (Store.NewEntry), ages
// their files past the scanner's settle time, and returns their entries in
// the order of pairs. Large sets are written by four goroutines.
func WritePairs(t testing.TB, s *crashstore.Store, opts *PairOpts, pairs ...Pair) []crashstore.Entry {
	t.Helper()
	if opts == nil {
		opts = &PairOpts{}
	}
	entries := make([]crashstore.Entry, len(pairs))
	old := time.Now().Add(-time.Hour)
	write := func(i int) error {
		p := pairs[i]
		webhead, at, dump, json := p.Webhead, p.At, p.Dump, p.JSON
		if webhead == "" {
			webhead = "web1"
		}
		if at.IsZero() {
			at = time.Now().UTC()
		}
		if dump == nil {
			dump = []byte("dump")
		}
		if json == nil {
			json = []byte("{}")
		}
		e, err := s.NewEntry(p.ID, webhead, at, dump, json)
		if err == nil && !opts.Fresh {
			err = errors.Join(os.Chtimes(e.JSONPath, old, old), os.Chtimes(e.DumpPath, old, old))
		}
		if err == nil && opts.Queued {
			err = s.RemoveLinks(e)
		}
		entries[i] = e
		return err
	}
	workers := 1
	if len(pairs) >= parallelFrom {
		workers = 4
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(pairs) && errs[w] == nil; i += workers {
				errs[w] = write(i)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return entries
}

// Settle sets the modification time of paths an hour back, past the
// scanner's settle time.
func Settle(t testing.TB, paths ...string) {
	t.Helper()
	old := time.Now().Add(-time.Hour)
	for _, p := range paths {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
}

// ClassicPairs is the classic fixtures of set (testdata/crashes/classic.txt)
// as pairs, with the default contents.
func ClassicPairs(t testing.TB, set string) []Pair {
	t.Helper()
	var out []Pair
	for _, fx := range crashfixture.Classic(t, set) {
		out = append(out, Pair{ID: fx.ID, Webhead: fx.Webhead, At: fx.At})
	}
	return out
}

// CrashID is the i-th test crash id of day: depth 2, distinct for distinct
// i (below 2^32), and spread over the name branch as real ids are.
func CrashID(i int, day time.Time) string {
	h := uint32(i) * 2654435761 // a bijection of uint32: distinct ids
	return fmt.Sprintf("%08x-%04x-4%03x-8000-00000%01d%s", h, i&0xffff, (i>>16)&0xfff, 2, day.Format("060102"))
}

// Files lists the files (not links, not directories) under root, relative
// to it. A root that does not exist holds none, and directories that go
// away during the walk (a running monitor moving or pruning them) are
// passed over.
func Files(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Type()&fs.ModeSymlink == 0 {
			r, _ := filepath.Rel(root, p)
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Generate writes the crashes of opts into s with crashgen, as collectors
// would, and returns the generator: its ID(i) names the i-th crash.
func Generate(t testing.TB, s *crashstore.Store, opts crashgen.Options) *crashgen.Generator {
	t.Helper()
	g, err := crashgen.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Write(withoutCancel(t), s); err != nil {
		t.Fatal(err)
	}
	return g
}
