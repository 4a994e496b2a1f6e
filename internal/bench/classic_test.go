package bench

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"
)

// fakeLoads is a loadsSource that counts its queries.
type fakeLoads struct {
	loads   []ClassicLoad
	queries int
}

func (f *fakeLoads) ClassicLoads(context.Context, time.Duration) ([]ClassicLoad, error) {
	f.queries++
	return slices.Clone(f.loads), nil
}

// TestClassicScheduler is socorro-classic 3.5's example: counts 1..5 and 15
// requests leave every processor at 6, from one snapshot.
func TestClassicScheduler(t *testing.T) {
	t.Parallel()
	src := &fakeLoads{loads: []ClassicLoad{{ID: 1, Count: 1}, {ID: 2, Count: 2}, {ID: 3, Count: 3}, {ID: 4, Count: 4}, {ID: 5, Count: 5}}}
	var s classicScheduler
	got := map[int64]int{}
	for range 15 {
		id, err := s.next(t.Context(), src, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		got[id]++
	}
	if want := map[int64]int{1: 5, 2: 4, 3: 3, 4: 2, 5: 1}; !maps.Equal(got, want) {
		t.Errorf("assignments = %v, want %v", got, want)
	}
	if src.queries != 1 {
		t.Errorf("%d snapshot queries, want 1 per pass", src.queries)
	}
	// Equal loads: the first round in row order; the in-place stable sort
	// then keeps each tie in the list's current order, as classic's did.
	src = &fakeLoads{loads: []ClassicLoad{{ID: 7}, {ID: 3}, {ID: 9}}}
	s = classicScheduler{}
	var order []int64
	for range 6 {
		id, _ := s.next(t.Context(), src, time.Hour)
		order = append(order, id)
	}
	if want := []int64{7, 3, 9, 9, 3, 7}; !slices.Equal(order, want) {
		t.Errorf("order = %v, want %v", order, want)
	}
	if _, err := (&classicScheduler{}).next(t.Context(), &fakeLoads{}, time.Hour); err == nil {
		t.Error("no processors: no error")
	}
}
