package queue_test

import (
	"errors"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

func TestStatus(t *testing.T) {
	t.Parallel()

	const checkIn = 5 * time.Minute

	t.Run("ProcessorsJobsAndRequests", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		// Times relative to the database clock, as processors write them.
		testkit.Exec(t, pool, `
INSERT INTO processors (id, name, startdatetime, lastseendatetime) VALUES
    (1, 'live', localtimestamp - interval '1 hour', localtimestamp - interval '1 minute'),
    (2, 'stale', localtimestamp - interval '1 hour', localtimestamp - interval '7 minutes'),
    (3, 'dead', localtimestamp - interval '1 hour', localtimestamp - interval '11 minutes'),
    (4, 'stopped', localtimestamp - interval '1 hour', '1999-01-01'),
    (5, 'never', localtimestamp - interval '1 hour', NULL);
INSERT INTO jobs (uuid, owner, queueddatetime, starteddatetime, completeddatetime, success) VALUES
    ('q1', 1, localtimestamp - interval '30 minutes', NULL, NULL, NULL),
    ('q2', 1, localtimestamp - interval '10 minutes', NULL, NULL, NULL),
    ('s1', 1, localtimestamp - interval '2 hours', localtimestamp, NULL, NULL),
    ('ok', 1, localtimestamp - interval '3 hours', localtimestamp, localtimestamp, true),
    ('ko', 3, localtimestamp - interval '3 hours', localtimestamp, localtimestamp, false),
    ('q3', 2, localtimestamp - interval '5 minutes', NULL, NULL, NULL),
    ('s2', 3, localtimestamp - interval '4 hours', localtimestamp, NULL, NULL);
INSERT INTO priorityjobs (uuid) VALUES ('p1'), ('p2');`)

		st, err := queue.NewStore(pool).Status(t.Context(), checkIn)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}

		want := []struct {
			id       int64
			name     string
			state    string
			lastSeen bool
			pending  int64
		}{
			{1, "live", queue.ProcessorLive, true, 3},
			{2, "stale", queue.ProcessorStale, true, 1},
			{3, "dead", queue.ProcessorDead, true, 1},
			{4, "stopped", queue.ProcessorDead, true, 0},
			{5, "never", queue.ProcessorDead, false, 0},
		}
		if len(st.Processors) != len(want) {
			t.Fatalf("got %d processors, want %d: %+v", len(st.Processors), len(want), st.Processors)
		}
		for i, w := range want {
			p := st.Processors[i]
			if p.ID != w.id || p.Name != w.name || p.State != w.state || (p.LastSeen != nil) != w.lastSeen || p.Pending != w.pending {
				t.Errorf("processor %d = {%d %q %q lastSeen:%v pending:%d}, want {%d %q %q lastSeen:%v pending:%d}",
					i, p.ID, p.Name, p.State, p.LastSeen != nil, p.Pending, w.id, w.name, w.state, w.lastSeen, w.pending)
			}
		}
		if st.Processors[3].LastSeen != nil && !st.Processors[3].LastSeen.Equal(time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("stopped processor LastSeen = %v, want 1999-01-01 00:00:00", st.Processors[3].LastSeen)
		}

		if st.Queued != 3 || st.Started != 2 || st.Succeeded != 1 || st.Failed != 1 {
			t.Errorf("jobs = %d queued, %d started, %d succeeded, %d failed; want 3, 2, 1, 1",
				st.Queued, st.Started, st.Succeeded, st.Failed)
		}
		if st.PriorityRequests != 2 {
			t.Errorf("PriorityRequests = %d, want 2", st.PriorityRequests)
		}
		// q1 waits 30 minutes; started jobs, although older, do not count.
		if st.OldestQueuedAge == nil {
			t.Fatal("OldestQueuedAge = nil, want about 30m")
		}
		if age := *st.OldestQueuedAge; age < 30*time.Minute || age > 31*time.Minute {
			t.Errorf("OldestQueuedAge = %v, want 30m (plus the time between the two statements)", age)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)

		st, err := queue.NewStore(pool).Status(t.Context(), checkIn)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if len(st.Processors) != 0 || st.Queued != 0 || st.Started != 0 || st.Succeeded != 0 ||
			st.Failed != 0 || st.PriorityRequests != 0 || st.OldestQueuedAge != nil ||
			st.CleanupFailing != 0 || len(st.CleanupFailures) != 0 {
			t.Errorf("Status of an empty queue = %+v, want zero", st)
		}
	})

	t.Run("NoSchema", func(t *testing.T) {
		t.Parallel()
		pool, _ := pgtest.EmptySchema(t)

		_, err := queue.NewStore(pool).Status(t.Context(), checkIn)
		if !errors.Is(err, queue.ErrSchemaMissing) {
			t.Errorf("Status without tables: err = %v, want ErrSchemaMissing", err)
		}
	})
}
