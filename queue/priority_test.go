package queue_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

func TestRequestPriority(t *testing.T) {
	t.Parallel()

	const (
		id1 = "0bba61c5-dfc3-43e7-87e6-8afda3100501"
		id2 = "0bba929f-8721-460c-8e70-a43c92100501"
		id3 = "0bc9f1bd-6a2e-4a1c-9b1e-55a4b2100501"
	)

	t.Run("InsertsNewIDsOnce", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		store := queue.NewStore(pool)

		n, err := store.RequestPriority(t.Context(), []string{id1, id2, id1})
		if err != nil {
			t.Fatalf("RequestPriority: %v", err)
		}
		if n != 2 {
			t.Errorf("RequestPriority(id1, id2, id1) = %d, want 2", n)
		}
		n, err = store.RequestPriority(t.Context(), []string{id2, id3})
		if err != nil {
			t.Fatalf("RequestPriority: %v", err)
		}
		if n != 1 {
			t.Errorf("RequestPriority(id2, id3) after id2 = %d, want 1", n)
		}
		got := testkit.SortedStrings(t, pool, `SELECT uuid FROM priorityjobs`)
		if want := []string{id1, id2, id3}; !slices.Equal(got, want) {
			t.Errorf("priorityjobs = %v, want %v", got, want)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)

		for _, ids := range [][]string{nil, {}} {
			n, err := queue.NewStore(pool).RequestPriority(t.Context(), ids)
			if n != 0 || err != nil {
				t.Errorf("RequestPriority(%#v) = %d, %v; want 0, nil", ids, n, err)
			}
		}
	})

	t.Run("NoSchema", func(t *testing.T) {
		t.Parallel()
		pool, _ := pgtest.EmptySchema(t)

		_, err := queue.NewStore(pool).RequestPriority(t.Context(), []string{id1})
		if !errors.Is(err, queue.ErrSchemaMissing) {
			t.Errorf("RequestPriority without tables: err = %v, want ErrSchemaMissing", err)
		}
	})
}
