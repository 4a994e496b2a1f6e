package bench_test

import (
	"testing"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/bench"
	"github.com/crashmonitor/monitor/internal/crashgen"
)

// TestWalkUnlink: every pair's two links go, its files stay, and the inbox
// is empty afterwards.
func TestWalkUnlink(t *testing.T) {
	t.Parallel()
	store := crashstore.New(t.TempDir(), crashstore.Options{GID: -1})
	const n = 300
	g, err := crashgen.New(crashgen.Options{Count: n, DumpSize: 16, Webheads: crashgen.WebheadNames(3),
		Spread: crashgen.SpreadFor(n, 3, 1.5), Submitted: time.Now().Add(-time.Minute), Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Write(t.Context(), store); err != nil {
		t.Fatal(err)
	}
	removed, err := bench.WalkUnlink(t.Context(), store)
	if err != nil || removed != n {
		t.Fatalf("WalkUnlink = %d, %v; want %d", removed, err, n)
	}
	left := 0
	if err := store.Walk(t.Context(), func(crashstore.Entry) error { left++; return nil }); err != nil || left != 0 {
		t.Errorf("%d links left after WalkUnlink (%v)", left, err)
	}
	if _, err := store.Lookup(t.Context(), g.ID(7)); err != nil {
		t.Errorf("pair 7's files after WalkUnlink: %v", err)
	}
}
