package crashgen

import (
	"testing"
	"time"
)

// TestSpreadFor: a generation spread by SpreadFor puts about perLeaf pairs in
// each webhead directory of the minute slots it uses, and uses every slot.
func TestSpreadFor(t *testing.T) {
	t.Parallel()
	const count, webheads, perLeaf = 12_000, 8, 1.5
	spread := SpreadFor(count, webheads, perLeaf)
	if want := 1000 * time.Minute; spread != want {
		t.Fatalf("SpreadFor = %s, want %s", spread, want)
	}
	g, err := New(Options{Count: count, Webheads: WebheadNames(webheads), Spread: spread,
		Submitted: time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC), Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	type leaf struct {
		slot    time.Time
		webhead string
	}
	perDir := map[leaf]int{}
	slots := map[time.Time]bool{}
	for i := range count {
		slot := g.Submitted(i).Truncate(time.Minute)
		perDir[leaf{slot, g.Webhead(i)}]++
		slots[slot] = true
	}
	if len(slots) < 1000 {
		t.Errorf("%d minute slots used, want about 1000", len(slots))
	}
	small := 0
	for _, n := range perDir {
		if n <= 2 {
			small++
		}
	}
	if 10*small < 9*len(perDir) {
		t.Errorf("%d of %d webhead directories hold one or two pairs, want most", small, len(perDir))
	}
	for _, bad := range [][3]float64{{0, 8, 1}, {10, 0, 1}, {10, 8, 0}} {
		if s := SpreadFor(int(bad[0]), int(bad[1]), bad[2]); s != 0 {
			t.Errorf("SpreadFor%v = %s, want 0", bad, s)
		}
	}
}

func TestWebheadNames(t *testing.T) {
	t.Parallel()
	got := WebheadNames(3)
	if len(got) != 3 || got[0] != "webhead01" || got[2] != "webhead03" {
		t.Errorf("WebheadNames(3) = %v", got)
	}
	if _, err := New(Options{Count: 1, Webheads: WebheadNames(12)}); err != nil {
		t.Errorf("New with WebheadNames(12): %v", err)
	}
}
