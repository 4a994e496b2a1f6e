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

// walkLog walks s with WalkPass, reading ahead from the start or not, and
// returns what each callback heard, in order.
func walkLog(t *testing.T, b *bundle, atOnce bool, fn func(Entry) error) ([]string, error) {
	t.Helper()
	var log []string
	b.problems = nil
	b.s.readAheadAtOnce = atOnce
	err := b.s.WalkPass(t.Context(), func(e Entry) error {
		log = append(log, "entry "+e.ID+" "+e.DateLink+" "+e.NameDir)
		if fn != nil {
			return fn(e)
		}
		return nil
	}, func(p string, err error) {
		log = append(log, "unreadable "+p)
	}, func(dir string) {
		log = append(log, "past "+dir)
	})
	for _, p := range b.problems {
		log = append(log, "problem "+p.path)
	}
	return log, err
}

// TestWalkAheadSameAsInline: reading webhead directories ahead hands out
// the same links, problems and past directories in the same order as
// reading them one at a time, with leaves of more than a chunk, malformed
// entries, and more leaves than the window.
func TestWalkAheadSameAsInline(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	b.putClassic(t, "")
	// Many leaves: 3 webheads in each of 40 past minutes and the current one.
	for i := range 41 {
		at := testNow.Add(-time.Duration(40-i) * time.Minute)
		for w := range 3 {
			id := fmt.Sprintf("%08x-0000-4000-8000-%06d090928", i*3+w, w)
			if _, err := b.s.NewEntry(id, "web"+strconv.Itoa(w), at, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A leaf of more than two chunks, with malformed entries among them.
	e, err := b.s.NewEntry(workedID, "big", testNow.Add(-2*time.Hour), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf := filepath.Dir(e.DateLink)
	for i := range 2*readChunk + 17 {
		id := "00000000-0000-4000-8000-" + strconv.FormatInt(1e11+int64(i), 10)
		if err := os.Symlink("../../../../name/4d/d2", leaf+"/"+id); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite(t, leaf+"/README")
	mustSymlink(t, "../../../../name/aa/aa", leaf+"/not-a-crash-id")
	mustSymlink(t, "/nonexistent/dir", leaf+"/e1000000-0000-4000-8000-000002090928")

	inline, err := walkLog(t, b, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	ahead, err := walkLog(t, b, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(inline) < 2*readChunk+200 {
		t.Fatalf("the inline walk heard only %d things", len(inline))
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

// TestWalkAheadStops: a walk reading ahead stops at fn's error or ctx's
// end, returning it, with its reads over (the race detector and the open
// descriptors tell).
func TestWalkAheadStops(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	for i := range 60 {
		at := testNow.Add(-time.Duration(60-i) * time.Minute)
		if _, err := b.s.NewEntry(fmt.Sprintf("%08x-0000-4000-8000-000000090928", i), "web1", at, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	stop := errors.New("stop")
	n := 0
	log, err := walkLog(t, b, true, func(Entry) error {
		if n++; n == 20 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 20 {
		t.Errorf("WalkPass = %v after %d links; want stop after 20 (%d heard)", err, n, len(log))
	}
	ctx, cancel := context.WithCancel(t.Context())
	n = 0
	b.s.readAheadAtOnce = true
	err = b.s.WalkPass(ctx, func(Entry) error {
		if n++; n == 5 {
			cancel()
		}
		return nil
	}, nil, nil)
	if !errors.Is(err, context.Canceled) || n != 5 {
		t.Errorf("WalkPass = %v after %d links; want context.Canceled after 5", err, n)
	}
}
