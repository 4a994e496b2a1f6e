package procsim_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/procsim"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

// register registers a new processor session named name.
func register(t *testing.T, pool *pgxpool.Pool, name string) *procsim.Session {
	t.Helper()
	s := procsim.NewSession(pool)
	id, err := s.Register(t.Context(), name)
	if err != nil {
		t.Fatalf("Register(%q): %v", name, err)
	}
	if id == 0 || s.ID() != id {
		t.Fatalf("Register(%q) = %d, ID() = %d", name, id, s.ID())
	}
	return s
}

// claimUUIDs returns the uuids of a claim's jobs, in order.
func claimUUIDs(c procsim.Claim) []string {
	out := make([]string, len(c.Jobs))
	for i, j := range c.Jobs {
		out[i] = j.UUID
	}
	return out
}

func TestProcessorRegister(t *testing.T) {
	t.Parallel()

	t.Run("New", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		s := register(t, pool, "host_1")
		if n := testkit.QueryInt64(t, pool, `
SELECT count(*) FROM processors
WHERE id = $1 AND name = 'host_1' AND startdatetime = lastseendatetime
  AND lastseendatetime BETWEEN localtimestamp - interval '10 seconds' AND localtimestamp`, s.ID()); n != 1 {
			t.Errorf("no processors row %d named host_1 with startdatetime = lastseendatetime = now()", s.ID())
		}
		if !testkit.HasPriorityTable(t, pool, s.ID()) {
			t.Errorf("priority_jobs_%d was not created", s.ID())
		}
		if live := testkit.CountLive(t, pool, time.Minute); live != 1 {
			t.Errorf("live processors = %d; want 1", live)
		}
		other := register(t, pool, "host_2")
		if other.ID() == s.ID() {
			t.Errorf("two names got the same id %d", s.ID())
		}
	})

	t.Run("TakesOverItsRowAndResetsItsStartedJobs", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		old := testkit.Processor(t, pool, time.Hour)
		testkit.Exec(t, pool, `UPDATE processors SET name = 'host_7' WHERE id = $1`, old)
		other := testkit.Processor(t, pool, 0)
		testkit.PriorityTableWith(t, pool, old, "waiting")
		testkit.NumberedJobs(t, pool, old, "started", 3, testkit.Started)
		testkit.NumberedJobs(t, pool, old, "queued", 2, testkit.Queued)
		testkit.NumberedJobs(t, pool, old, "ok", 2, testkit.Succeeded)
		testkit.NumberedJobs(t, pool, old, "ko", 1, testkit.Failed)
		testkit.NumberedJobs(t, pool, other, "theirs", 2, testkit.Started)
		finished := testkit.SortedStrings(t, pool, `SELECT j::text FROM jobs j WHERE success IS NOT NULL`)

		s := register(t, pool, "host_7")
		if s.ID() != old {
			t.Fatalf("Register took id %d, want the existing row %d", s.ID(), old)
		}
		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM processors`); n != 2 {
			t.Errorf("%d processors rows, want 2", n)
		}
		if n := testkit.QueryInt64(t, pool, `
SELECT count(*) FROM processors WHERE id = $1 AND startdatetime >= localtimestamp - interval '10 seconds'
  AND lastseendatetime >= localtimestamp - interval '10 seconds'`, old); n != 1 {
			t.Errorf("the taken-over row's start and last-seen times are not now")
		}
		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs WHERE owner = $1 AND success IS NULL AND starteddatetime IS NOT NULL`, old); n != 0 {
			t.Errorf("%d of its unfinished jobs still started", n)
		}
		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs WHERE owner = $1 AND starteddatetime IS NOT NULL`, other); n != 2 {
			t.Errorf("another processor's started jobs were reset (%d of 2 still started)", n)
		}
		if got := testkit.SortedStrings(t, pool, `SELECT j::text FROM jobs j WHERE success IS NOT NULL`); !slices.Equal(got, finished) {
			t.Errorf("finished jobs changed: %v, want %v", got, finished)
		}
		if n := testkit.QueryInt64(t, pool, fmt.Sprintf(`SELECT count(*) FROM priority_jobs_%d`, old)); n != 1 {
			t.Errorf("the existing priority table lost its rows (%d left)", n)
		}
	})

	t.Run("SchemaMissing", func(t *testing.T) {
		t.Parallel()
		pool, _ := pgtest.EmptySchema(t)
		_, err := procsim.NewSession(pool).Register(t.Context(), "host")
		if !errors.Is(err, queue.ErrSchemaMissing) {
			t.Errorf("Register without schema = %v, want ErrSchemaMissing", err)
		}
	})
}

func TestProcessorHeartbeat(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	s := register(t, pool, "host")
	testkit.Exec(t, pool, `UPDATE processors SET lastseendatetime = localtimestamp - interval '1 hour' WHERE id = $1`, s.ID())
	if err := s.Heartbeat(t.Context()); err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM processors WHERE id = $1 AND lastseendatetime >= localtimestamp - interval '10 seconds'`, s.ID()); n != 1 {
		t.Errorf("Heartbeat did not set lastseendatetime to now()")
	}
	testkit.Exec(t, pool, `DELETE FROM processors WHERE id = $1`, s.ID())
	if err := s.Heartbeat(t.Context()); !errors.Is(err, procsim.ErrProcessorGone) {
		t.Errorf("Heartbeat of a deleted row = %v, want ErrProcessorGone", err)
	}
}

func TestProcessorClaimJobs(t *testing.T) {
	t.Parallel()

	t.Run("OwnJobsOldestQueuedFirst", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		s := register(t, pool, "me")
		other := testkit.Processor(t, pool, 0)
		// Ids in the opposite order of the queued times: the queued time
		// decides.
		testkit.Exec(t, pool, `
INSERT INTO jobs (uuid, owner, queueddatetime)
SELECT 'q' || g, $1, localtimestamp - make_interval(mins => g) FROM generate_series(1, 5) AS g`, s.ID())
		testkit.NumberedJobs(t, pool, s.ID(), "started", 2, testkit.Started)
		testkit.NumberedJobs(t, pool, s.ID(), "done", 2, testkit.Succeeded)
		testkit.NumberedJobs(t, pool, other, "theirs", 3, testkit.Queued)

		c, err := s.ClaimJobs(t.Context(), 3)
		if err != nil {
			t.Fatalf("ClaimJobs: %v", err)
		}
		if got, want := claimUUIDs(c), []string{"q5", "q4", "q3"}; !slices.Equal(got, want) {
			t.Errorf("first claim = %v, want %v", got, want)
		}
		for _, j := range c.Jobs {
			if j.Priority || j.ID == 0 || j.Queued.IsZero() {
				t.Errorf("claimed job %+v: want a normal job with id and queued time", j)
			}
		}
		c, err = s.ClaimJobs(t.Context(), 3)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := claimUUIDs(c), []string{"q2", "q1"}; !slices.Equal(got, want) {
			t.Errorf("second claim = %v, want %v", got, want)
		}
		c, err = s.ClaimJobs(t.Context(), 3)
		if err != nil || len(c.Jobs)+len(c.SkippedPriority) != 0 {
			t.Errorf("third claim = %+v, %v; want nothing", c, err)
		}
		if n := testkit.QueryInt64(t, pool, `
SELECT count(*) FROM jobs WHERE uuid LIKE 'q%' AND starteddatetime >= localtimestamp - interval '10 seconds'`); n != 5 {
			t.Errorf("%d of the 5 claimed jobs have starteddatetime = now()", n)
		}
		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs WHERE owner = $1 AND starteddatetime IS NOT NULL`, other); n != 0 {
			t.Errorf("%d jobs of another processor were claimed", n)
		}
	})

	t.Run("PriorityFirstDeletingWhatItReads", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		s := register(t, pool, "me")
		other := testkit.Processor(t, pool, 0)
		testkit.NumberedJobs(t, pool, s.ID(), "mine", 3, testkit.Queued)
		testkit.NumberedJobs(t, pool, s.ID(), "urgent", 1, testkit.Queued)
		testkit.NumberedJobs(t, pool, other, "moved", 1, testkit.Queued)
		testkit.NumberedJobs(t, pool, s.ID(), "running", 1, testkit.Started)
		testkit.NumberedJobs(t, pool, s.ID(), "finished", 1, testkit.Succeeded)
		testkit.Exec(t, pool, fmt.Sprintf(`INSERT INTO priority_jobs_%d (uuid) VALUES
('urgent-1'), ('moved-1'), ('running-1'), ('finished-1'), ('missing')`, s.ID()))

		c, err := s.ClaimJobs(t.Context(), 10)
		if err != nil {
			t.Fatalf("ClaimJobs: %v", err)
		}
		got := claimUUIDs(c)
		prio := got[:2]
		slices.Sort(prio)
		if want := []string{"moved-1", "urgent-1"}; !slices.Equal(prio, want) {
			t.Errorf("claim starts with %v, want the priority jobs %v", prio, want)
		}
		if want := []string{"mine-1", "mine-2", "mine-3"}; !slices.Equal(got[2:], want) {
			t.Errorf("claim continues with %v, want its own jobs %v", got[2:], want)
		}
		for i, j := range c.Jobs {
			if j.Priority != (i < 2) {
				t.Errorf("job %s: Priority = %v", j.UUID, j.Priority)
			}
		}
		skipped := slices.Sorted(slices.Values(c.SkippedPriority))
		if want := []string{"finished-1", "missing", "running-1"}; !slices.Equal(skipped, want) {
			t.Errorf("SkippedPriority = %v, want %v", skipped, want)
		}
		if n := testkit.QueryInt64(t, pool, fmt.Sprintf(`SELECT count(*) FROM priority_jobs_%d`, s.ID())); n != 0 {
			t.Errorf("%d priority rows left, want every row read deleted", n)
		}
		// A priority job owned by another processor keeps its owner.
		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs WHERE uuid = 'moved-1' AND owner = $1`, other); n != 1 {
			t.Errorf("the claimed priority job changed owner")
		}
	})

	t.Run("PriorityLimit", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		s := register(t, pool, "me")
		testkit.NumberedJobs(t, pool, s.ID(), "p", 5, testkit.Queued)
		testkit.Exec(t, pool, fmt.Sprintf(`INSERT INTO priority_jobs_%d (uuid) SELECT 'p-' || g FROM generate_series(1, 5) g`, s.ID()))
		c, err := s.ClaimJobs(t.Context(), 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Jobs) != 2 || !c.Jobs[0].Priority || !c.Jobs[1].Priority {
			t.Errorf("ClaimJobs(2) = %+v, want 2 priority jobs", c)
		}
		if n := testkit.QueryInt64(t, pool, fmt.Sprintf(`SELECT count(*) FROM priority_jobs_%d`, s.ID())); n != 3 {
			t.Errorf("%d priority rows left, want 3 (only the rows read are deleted)", n)
		}
	})

	t.Run("ConcurrentClaimsNeverShareAJob", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		s := register(t, pool, "me")
		testkit.NumberedJobs(t, pool, s.ID(), "j", 300, testkit.Queued)
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					c, err := s.ClaimJobs(t.Context(), 7)
					if err != nil {
						t.Error(err)
						return
					}
					if len(c.Jobs) == 0 {
						return
					}
					mu.Lock()
					for _, j := range c.Jobs {
						seen[j.UUID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(seen) != 300 {
			t.Errorf("%d distinct jobs claimed, want 300", len(seen))
		}
		for uuid, n := range seen {
			if n != 1 {
				t.Errorf("job %s claimed %d times", uuid, n)
			}
		}
	})
}

func TestProcessorFinishJobs(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	s := register(t, pool, "me")
	other := testkit.Processor(t, pool, 0)
	testkit.NumberedJobs(t, pool, s.ID(), "j", 4, testkit.Queued)
	testkit.NumberedJobs(t, pool, s.ID(), "old", 1, testkit.Failed)
	c, err := s.ClaimJobs(t.Context(), 4)
	if err != nil || len(c.Jobs) != 4 {
		t.Fatalf("ClaimJobs = %+v, %v", c, err)
	}
	// j-4 moves to another processor before it finishes (a reap).
	testkit.Exec(t, pool, `UPDATE jobs SET owner = $1, starteddatetime = NULL WHERE uuid = 'j-4'`, other)
	jobID := map[string]int64{}
	for _, j := range c.Jobs {
		jobID[j.UUID] = j.ID
	}
	oldID := testkit.QueryInt64(t, pool, `SELECT id FROM jobs WHERE uuid = 'old-1'`)

	done, err := s.FinishJobs(t.Context(), []procsim.JobResult{
		{ID: jobID["j-1"], Success: true},
		{ID: jobID["j-2"], Success: false, Message: "it's broken"},
		{ID: jobID["j-4"], Success: true},
		{ID: oldID, Success: true},
	})
	if err != nil {
		t.Fatalf("FinishJobs: %v", err)
	}
	slices.Sort(done)
	if want := []int64{jobID["j-1"], jobID["j-2"]}; !slices.Equal(done, want) {
		t.Errorf("FinishJobs recorded %v, want %v", done, want)
	}
	got := testkit.SortedStrings(t, pool, `
SELECT uuid || ' ' || coalesce(success::text, 'null') || ' ' || coalesce(message, 'NULL') || ' ' ||
       (completeddatetime IS NOT NULL AND completeddatetime >= localtimestamp - interval '10 seconds')
FROM jobs`)
	want := []string{
		"j-1 true NULL true",
		"j-2 false it's broken true",
		"j-3 null NULL false",
		"j-4 null NULL false",
		"old-1 false boom false",
	}
	if !slices.Equal(got, want) {
		t.Errorf("jobs after FinishJobs = %q, want %q", got, want)
	}
	if done, err := s.FinishJobs(t.Context(), nil); done != nil || err != nil {
		t.Errorf("FinishJobs(nil) = %v, %v", done, err)
	}
}

func TestProcessorCleanStopAndReap(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	store := queue.NewStore(pool)
	s := register(t, pool, "leaving")
	stays := register(t, pool, "staying")
	testkit.NumberedJobs(t, pool, s.ID(), "j", 3, testkit.Queued)
	if _, err := s.ClaimJobs(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	leaving := s.ID()

	if err := s.CleanStop(t.Context()); err != nil {
		t.Fatalf("CleanStop: %v", err)
	}
	if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM processors WHERE id = $1 AND lastseendatetime = '1999-01-01'`, leaving); n != 1 {
		t.Errorf("CleanStop did not set lastseendatetime to 1999-01-01")
	}
	if testkit.HasPriorityTable(t, pool, leaving) {
		t.Errorf("CleanStop left priority_jobs_%d", leaving)
	}
	// The monitor's next sweep reaps it and moves its jobs, unstarted.
	res, err := store.ReapDeadProcessors(t.Context(), time.Minute)
	if err != nil || !slices.Equal(res.Dead, []int64{leaving}) || res.MovedJobs != 3 {
		t.Fatalf("ReapDeadProcessors = %+v, %v; want processor %d reaped with 3 jobs", res, err, leaving)
	}
	c, err := stays.ClaimJobs(t.Context(), 10)
	if err != nil || len(c.Jobs) != 3 {
		t.Errorf("the live processor claimed %+v, %v; want the 3 moved jobs", c, err)
	}

	// The reaped session finds out, and registers again under a new id.
	if _, err := s.ClaimJobs(t.Context(), 1); !errors.Is(err, procsim.ErrProcessorGone) {
		t.Errorf("ClaimJobs after the reap = %v, want ErrProcessorGone", err)
	}
	if err := s.Heartbeat(t.Context()); !errors.Is(err, procsim.ErrProcessorGone) {
		t.Errorf("Heartbeat after the reap = %v, want ErrProcessorGone", err)
	}
	if err := s.CleanStop(t.Context()); err != nil {
		t.Errorf("CleanStop of a reaped processor: %v", err)
	}
	again, err := s.Register(t.Context(), "leaving")
	if err != nil || again == leaving || again == stays.ID() {
		t.Errorf("Register after the reap = %d, %v; want a new id", again, err)
	}
}
