package crashstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// walkLogger is a store whose Problem callback writes into log, so that
// problems are logged in sequence with what the walk's callbacks hear.
type walkLogger struct {
	*bundle
	log []string
}

func newWalkLogger(t *testing.T) *walkLogger {
	t.Helper()
	w := &walkLogger{}
	w.bundle = setup(t, Options{Problem: func(p string, err error) {
		w.log = append(w.log, "problem "+p)
	}})
	return w
}

// walk walks the tree with WalkPass in mode and returns what was heard, in
// order.
func (w *walkLogger) walk(t *testing.T, mode aheadMode, fn func(Entry) error) ([]string, error) {
	t.Helper()
	w.log = nil
	w.s.walkAhead = mode
	err := w.s.WalkPass(t.Context(), func(e Entry) error {
		w.log = append(w.log, "entry "+e.ID+" "+e.DateLink+" "+e.NameDir)
		if fn != nil {
			return fn(e)
		}
		return nil
	}, func(p string, err error) {
		w.log = append(w.log, "unreadable "+p)
	}, func(dir string) {
		w.log = append(w.log, "past "+dir)
	})
	return w.log, err
}

// bigLeaf stores a pair in a webhead directory of its own and adds links
// beside it, so that the leaf holds more than two chunks; it returns the
// leaf.
func bigLeaf(t *testing.T, s *Store, id, webhead string, at time.Time) string {
	t.Helper()
	e, err := s.NewEntry(id, webhead, at, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf := filepath.Dir(e.DateLink)
	for i := range 2*readChunk + 17 {
		link := fmt.Sprintf("00000000-0000-4000-8000-%s%06d", id[:6], i)
		if err := os.Symlink("../../../../name/4d/d2", leaf+"/"+link); err != nil {
			t.Fatal(err)
		}
	}
	return leaf
}

// TestWalkAheadSameAsInline: reading webhead directories ahead hands out
// the same links, problems (of leaves and of the directories above them),
// unreadable paths and past directories, in the same order, as reading them
// one at a time, with leaves of more than a chunk and more leaves than the
// window.
func TestWalkAheadSameAsInline(t *testing.T) {
	t.Parallel()
	w := newWalkLogger(t)
	w.putClassic(t, "")
	// Many leaves: 3 webheads in each of 40 past minutes and the current one.
	for i := range 41 {
		at := testNow.Add(-time.Duration(40-i) * time.Minute)
		for wh := range 3 {
			id := fmt.Sprintf("%08x-0000-4000-8000-%06d090928", i*3+wh, wh)
			if _, err := w.s.NewEntry(id, "web"+strconv.Itoa(wh), at, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		if i%7 == 3 {
			// A stray file in a minute directory, after the leaves of the
			// minutes before it.
			mustWrite(t, filepath.Join(w.root, "20090928", "date", at.Format("15"), at.Format("04"), "stray-file"))
		}
	}
	leaf := bigLeaf(t, w.s, workedID, "big", testNow.Add(-2*time.Hour))
	mustWrite(t, leaf+"/README")
	mustSymlink(t, "../../../../name/aa/aa", leaf+"/not-a-crash-id")
	mustSymlink(t, "/nonexistent/dir", leaf+"/e1000000-0000-4000-8000-000002090928")

	inline, err := w.walk(t, aheadNever, nil)
	if err != nil {
		t.Fatal(err)
	}
	ahead, err := w.walk(t, aheadAlways, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(inline) < 2*readChunk+200 || !slices.ContainsFunc(inline, func(l string) bool { return filepath.Base(l) == "stray-file" }) {
		t.Fatalf("the inline walk heard only %d things, or no stray file", len(inline))
	}
	if !slices.Equal(inline, ahead) {
		for i := range min(len(inline), len(ahead)) {
			if inline[i] != ahead[i] {
				t.Fatalf("reading ahead differs at %d of %d/%d: %q, inline %q", i, len(ahead), len(inline), ahead[i], inline[i])
			}
		}
		t.Fatalf("reading ahead heard %d things, inline %d", len(ahead), len(inline))
	}
}

// openFiles counts the process's open descriptors.
func openFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// TestWalkAheadStops: a walk reading ahead stops at fn's error or ctx's
// end, returning it, with its reads over and every directory it opened
// closed, also those of leaves of more than a chunk. (Not parallel: it
// counts the process's open descriptors.)
func TestWalkAheadStops(t *testing.T) {
	w := newWalkLogger(t)
	for i := range 40 {
		at := testNow.Add(-time.Duration(40-i) * time.Minute)
		bigLeaf(t, w.s, fmt.Sprintf("%08x-0000-4000-8000-000000090928", i), "web1", at)
	}
	before := openFiles(t)
	stop := errors.New("stop")
	for _, at := range []int{1, 600, 3000} {
		n := 0
		_, err := w.walk(t, aheadAlways, func(Entry) error {
			if n++; n == at {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || n != at {
			t.Errorf("WalkPass = %v after %d links; want stop after %d", err, n, at)
		}
		ctx, cancel := context.WithCancel(t.Context())
		n = 0
		err = w.s.WalkPass(ctx, func(Entry) error {
			if n++; n == at {
				cancel()
			}
			return nil
		}, nil, nil)
		cancel()
		if !errors.Is(err, context.Canceled) || n != at {
			t.Errorf("WalkPass = %v after %d links; want context.Canceled after %d", err, n, at)
		}
		if after := openFiles(t); after != before {
			t.Errorf("stopped after %d links: %d descriptors open, %d before", at, after, before)
		}
	}
}
