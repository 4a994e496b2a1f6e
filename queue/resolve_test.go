package queue_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/dispatch"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

const priorityCheckIn = 5 * time.Minute

// resolve runs ResolvePriority and fails the test on error.
func resolve(t *testing.T, pool *pgxpool.Pool, b queue.PriorityBatch) []queue.PriorityOutcome {
	t.Helper()
	outs, err := queue.NewStore(pool).ResolvePriority(t.Context(), b, priorityCheckIn, nil)
	if err != nil {
		t.Fatalf("ResolvePriority(%+v): %v", b, err)
	}
	return outs
}

// byID indexes outcomes by request.
func byID(outs []queue.PriorityOutcome) map[string]queue.PriorityOutcome {
	m := make(map[string]queue.PriorityOutcome, len(outs))
	for _, o := range outs {
		m[o.ID] = o
	}
	return m
}

// requests returns the ids in priorityjobs, sorted.
func requests(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	return testkit.SortedStrings(t, pool, `SELECT uuid FROM priorityjobs`)
}

// request inserts ids into priorityjobs as the reporter does.
func request(t *testing.T, pool *pgxpool.Pool, ids ...string) {
	t.Helper()
	if _, err := queue.NewStore(pool).RequestPriority(t.Context(), ids); err != nil {
		t.Fatal(err)
	}
}

// pending returns the ids in priority_jobs_<id>, sorted.
func pending(t *testing.T, pool *pgxpool.Pool, id int64) []string {
	t.Helper()
	return testkit.SortedStrings(t, pool, fmt.Sprintf(`SELECT uuid FROM priority_jobs_%d`, id))
}

// jobRow is the part of a jobs row priority resolution changes.
type jobRow struct {
	owner    int64
	priority int64
	started  bool
}

func job(t *testing.T, pool *pgxpool.Pool, id string) jobRow {
	t.Helper()
	var j jobRow
	err := pool.QueryRow(t.Context(),
		`SELECT coalesce(owner, 0), coalesce(priority, 0), starteddatetime IS NOT NULL FROM jobs WHERE uuid = $1`, id).
		Scan(&j.owner, &j.priority, &j.started)
	if err != nil {
		t.Fatalf("job %s: %v", id, err)
	}
	return j
}

// TestClassic26_PriorityRequests: the requests are read whole, in pages,
// each telling whether it is queued; hostile strings come back as stored,
// the empty string too (it sorts first, where the first page starts).
func TestClassic26_PriorityRequests(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	store := queue.NewStore(pool)

	got, err := store.PriorityRequests(t.Context(), "", 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("PriorityRequests on an empty table = %v, %v; want none", got, err)
	}

	ids := testkit.CrashIDs("req", 10)
	testkit.Processor(t, pool, 0)
	if _, err := store.Enqueue(t.Context(), ids[:3], 0, priorityCheckIn, nil); err != nil {
		t.Fatal(err)
	}
	hostile := []string{`'; DROP TABLE jobs; --`, "../../etc/passwd", strings.Repeat("x", 255), "Ünïcödé ☃", " ", ""}
	request(t, pool, slices.Concat(ids, hostile)...)

	var all []queue.PriorityRequest
	after := ""
	for {
		page, err := store.PriorityRequests(t.Context(), after, 4)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 4 {
			t.Fatalf("page of %d, want at most 4", len(page))
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].ID
	}
	if len(all) != 16 {
		t.Fatalf("read %d requests in pages, want 16: %v", len(all), all)
	}
	seen := map[string]bool{}
	for _, r := range all {
		if seen[r.ID] {
			t.Errorf("request %q read twice", r.ID)
		}
		seen[r.ID] = true
		if want := slices.Contains(ids[:3], r.ID); r.HasJob != want {
			t.Errorf("request %q: Queued = %v, want %v", r.ID, r.HasJob, want)
		}
	}
	for _, h := range hostile {
		if !seen[h] {
			t.Errorf("hostile request %q not read back as stored", h)
		}
	}
}

// TestClassic25_FoundQueuedWithPriority: crashes found on disk are queued
// with priority 1, spread over the least-loaded live processors, each
// owner told; requests are deleted (classic queuePriorityJob, one
// transaction instead of two).
func TestClassic25_FoundQueuedWithPriority(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	procs := testkit.ProcessorsSeen(t, pool, 4, 0)
	for _, p := range procs {
		testkit.PriorityTableWith(t, pool, p)
	}
	ids := testkit.CrashIDs("found", 10)
	request(t, pool, ids[:5]...)

	outs := resolve(t, pool, queue.PriorityBatch{Found: ids})
	if len(outs) != 10 {
		t.Fatalf("%d outcomes, want 10: %+v", len(outs), outs)
	}
	perOwner := map[int64]int{}
	for _, o := range outs {
		if o.Status != dispatch.PriorityQueued || !o.Told || !o.Resolved() || o.TellErr != nil {
			t.Errorf("outcome %+v, want queued and told", o)
		}
		perOwner[o.Owner]++
		if j := job(t, pool, o.ID); j.owner != o.Owner || j.priority != 1 {
			t.Errorf("job %s = %+v, want owner %d, priority 1", o.ID, j, o.Owner)
		}
	}
	for _, p := range procs {
		if got := len(pending(t, pool, p)); got != perOwner[p] {
			t.Errorf("priority_jobs_%d holds %d ids, want %d (the jobs it owns)", p, got, perOwner[p])
		}
		if perOwner[p] < 2 || perOwner[p] > 3 {
			t.Errorf("processor %d got %d jobs, want 2 or 3 of 10 over 4", p, perOwner[p])
		}
	}
	if r := requests(t, pool); len(r) != 0 {
		t.Errorf("requests left: %v", r)
	}
}

// TestClassic27_AlreadyQueued: requested ids already queued end up once in
// their owner's table and nowhere else, with priority at least 1; ids only
// queued are left alone; asking again is not an error (classic raised a
// unique violation, 7.3 #20).
func TestClassic27_AlreadyQueued(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	procs := testkit.ProcessorsSeen(t, pool, 5, 0)
	for _, p := range procs {
		testkit.PriorityTableWith(t, pool, p)
	}
	store := queue.NewStore(pool)
	ids := testkit.CrashIDs("classic27", 12)
	var queued, requested, nowhere []string
	for i, id := range ids {
		switch i % 3 {
		case 0:
			queued, requested = append(queued, id), append(requested, id)
		case 1:
			queued = append(queued, id)
		case 2:
			nowhere = append(nowhere, id)
		}
	}
	if _, err := store.Enqueue(t.Context(), queued, 0, priorityCheckIn, nil); err != nil {
		t.Fatal(err)
	}
	request(t, pool, requested...)
	request(t, pool, nowhere...)

	for round := range 2 {
		outs := byID(resolve(t, pool, queue.PriorityBatch{Existing: requested, Drop: nowhere}))
		for _, id := range requested {
			o := outs[id]
			if o.Status != dispatch.PriorityRaised || !o.Told || !o.Resolved() {
				t.Errorf("round %d: %s: %+v, want raised and told", round, id, o)
			}
		}
		for _, id := range nowhere {
			if o := outs[id]; o.Status != dispatch.PriorityDropped || !o.Resolved() {
				t.Errorf("round %d: %s: %+v, want dropped", round, id, o)
			}
		}
		if r := requests(t, pool); len(r) != 0 {
			t.Errorf("round %d: requests left: %v", round, r)
		}
		for _, id := range queued {
			j := job(t, pool, id)
			inOwner := slices.Contains(pending(t, pool, j.owner), id)
			if want := slices.Contains(requested, id); inOwner != want || (j.priority >= 1) != want {
				t.Errorf("round %d: %s (requested %v): in owner's table %v, priority %d", round, id, want, inOwner, j.priority)
			}
			for _, p := range procs {
				if p != j.owner && slices.Contains(pending(t, pool, p), id) {
					t.Errorf("round %d: %s is in priority_jobs_%d, not its owner's (%d)", round, id, p, j.owner)
				}
			}
		}
		request(t, pool, requested...) // the reporter asks again
	}
}

func TestResolvePriority(t *testing.T) {
	t.Parallel()

	t.Run("AlreadyPendingInOwnersTable", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		p := testkit.Processor(t, pool, 0)
		testkit.NumberedJobs(t, pool, p, "pend", 1, testkit.Queued)
		testkit.PriorityTableWith(t, pool, p, "pend-1")
		request(t, pool, "pend-1")

		o := resolve(t, pool, queue.PriorityBatch{Existing: []string{"pend-1"}})[0]
		if o.Status != dispatch.PriorityRaised || !o.Told || o.Owner != p {
			t.Errorf("outcome %+v, want raised and told %d", o, p)
		}
		if got := pending(t, pool, p); !slices.Equal(got, []string{"pend-1"}) {
			t.Errorf("priority_jobs_%d = %v, want the id once", p, got)
		}
		if r := requests(t, pool); len(r) != 0 {
			t.Errorf("requests left: %v", r)
		}
	})

	t.Run("DeadOwnerMoved", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		dead := testkit.Processor(t, pool, time.Hour)
		testkit.PriorityTableWith(t, pool, dead)
		busy := testkit.Processor(t, pool, 0)
		idle := testkit.Processor(t, pool, 0)
		for _, p := range []int64{busy, idle} {
			testkit.PriorityTableWith(t, pool, p)
		}
		testkit.NumberedJobs(t, pool, busy, "load", 3, testkit.Queued)
		testkit.NumberedJobs(t, pool, dead, "dead", 2, testkit.Started)
		testkit.Exec(t, pool, `INSERT INTO jobs (uuid, owner, priority, queueddatetime) VALUES ('orphan-1', NULL, 0, localtimestamp)`)
		ids := []string{"dead-1", "orphan-1"}
		request(t, pool, ids...)

		outs := byID(resolve(t, pool, queue.PriorityBatch{Existing: ids}))
		for id, from := range map[string]int64{"dead-1": dead, "orphan-1": 0} {
			o := outs[id]
			if o.Status != dispatch.PriorityMoved || o.From != from || o.Owner != idle || !o.Told {
				t.Errorf("%s: %+v, want moved from %d to %d (least loaded) and told", id, o, from, idle)
			}
			if j := job(t, pool, id); j.owner != idle || j.priority != 1 || j.started {
				t.Errorf("job %s = %+v, want owner %d, priority 1, unstarted", id, j, idle)
			}
		}
		if got := pending(t, pool, idle); !slices.Equal(got, ids) {
			t.Errorf("priority_jobs_%d = %v, want %v", idle, got, ids)
		}
		if j := job(t, pool, "dead-2"); j.owner != dead || !j.started {
			t.Errorf("unrequested job of the dead processor changed: %+v (the sweep moves it)", j)
		}
		if r := requests(t, pool); len(r) != 0 {
			t.Errorf("requests left: %v", r)
		}
	})

	t.Run("Finished", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		p := testkit.Processor(t, pool, 0)
		testkit.PriorityTableWith(t, pool, p)
		testkit.NumberedJobs(t, pool, p, "ok", 1, testkit.Succeeded)
		testkit.NumberedJobs(t, pool, p, "bad", 1, testkit.Failed)
		ids := []string{"bad-1", "ok-1", "gone-1"} // gone-1: cleaned up since it was read
		request(t, pool, ids...)
		before := job(t, pool, "ok-1")

		outs := resolve(t, pool, queue.PriorityBatch{Existing: ids})
		for _, o := range outs {
			if o.Status != dispatch.PriorityFinished || !o.Resolved() {
				t.Errorf("%+v, want finished", o)
			}
		}
		if got := pending(t, pool, p); len(got) != 0 {
			t.Errorf("finished jobs sent to the processor: %v", got)
		}
		if after := job(t, pool, "ok-1"); after != before {
			t.Errorf("finished job changed: %+v -> %+v", before, after)
		}
		if r := requests(t, pool); len(r) != 0 {
			t.Errorf("requests left: %v", r)
		}
	})

	t.Run("FoundButAlreadyQueued", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		p := testkit.Processor(t, pool, 0)
		testkit.PriorityTableWith(t, pool, p)
		testkit.NumberedJobs(t, pool, p, "scan", 1, testkit.Queued) // the scanner got there first
		request(t, pool, "scan-1")

		o := resolve(t, pool, queue.PriorityBatch{Found: []string{"scan-1"}})[0]
		if o.Status != dispatch.PriorityRaised || !o.Told || o.Owner != p {
			t.Errorf("outcome %+v, want raised and told", o)
		}
		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs`); n != 1 {
			t.Errorf("%d jobs, want 1", n)
		}
	})

	t.Run("NoLiveProcessor", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		dead := testkit.Processor(t, pool, time.Hour)
		stale := testkit.Processor(t, pool, 7*time.Minute) // not live, not dead: keeps its jobs
		testkit.PriorityTableWith(t, pool, dead)
		testkit.PriorityTableWith(t, pool, stale)
		testkit.NumberedJobs(t, pool, dead, "dead", 1, testkit.Queued)
		testkit.NumberedJobs(t, pool, stale, "stale", 1, testkit.Queued)
		request(t, pool, "dead-1", "stale-1", "disk-1")
		b := queue.PriorityBatch{Existing: []string{"dead-1", "stale-1"}, Found: []string{"disk-1"}}

		outs := byID(resolve(t, pool, b))
		for _, id := range []string{"dead-1", "disk-1"} {
			if o := outs[id]; o.Status != dispatch.PriorityWaiting || o.Resolved() {
				t.Errorf("%s: %+v, want waiting", id, o)
			}
		}
		if o := outs["stale-1"]; o.Status != dispatch.PriorityRaised || !o.Told || o.Owner != stale {
			t.Errorf("stale-1: %+v, want raised and told to its stale owner", o)
		}
		if r := requests(t, pool); !slices.Equal(r, []string{"dead-1", "disk-1"}) {
			t.Errorf("requests = %v, want the two waiting ones kept", r)
		}
		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs WHERE uuid = 'disk-1'`); n != 0 {
			t.Errorf("disk-1 queued with no live processor")
		}

		// A processor checks in: the same requests resolve.
		live := testkit.Processor(t, pool, 0)
		testkit.PriorityTableWith(t, pool, live)
		b.Existing = []string{"dead-1"}
		outs = byID(resolve(t, pool, b))
		if o := outs["dead-1"]; o.Status != dispatch.PriorityMoved || o.Owner != live || !o.Told {
			t.Errorf("dead-1 once a processor is live: %+v", o)
		}
		if o := outs["disk-1"]; o.Status != dispatch.PriorityQueued || o.Owner != live || !o.Told {
			t.Errorf("disk-1 once a processor is live: %+v", o)
		}
		if r := requests(t, pool); len(r) != 0 {
			t.Errorf("requests left: %v", r)
		}
	})

	t.Run("OwnerWithoutTable", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		p := testkit.Processor(t, pool, 0) // registered, table not created yet
		testkit.NumberedJobs(t, pool, p, "q", 1, testkit.Queued)
		request(t, pool, "q-1")

		o := resolve(t, pool, queue.PriorityBatch{Existing: []string{"q-1"}})[0]
		if o.Status != dispatch.PriorityRaised || o.Told || o.TellErr != nil || o.Resolved() {
			t.Errorf("outcome %+v, want raised, untold, kept", o)
		}
		if j := job(t, pool, "q-1"); j.priority != 1 || j.owner != p {
			t.Errorf("job = %+v, want priority raised, owner kept", j)
		}
		if r := requests(t, pool); len(r) != 1 {
			t.Errorf("requests = %v, want it kept until the owner can be told", r)
		}
		testkit.PriorityTableWith(t, pool, p)
		o = resolve(t, pool, queue.PriorityBatch{Existing: []string{"q-1"}})[0]
		if !o.Told || !o.Resolved() {
			t.Errorf("once the table exists: %+v, want told", o)
		}
	})

	t.Run("NewOwnerHasATable", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		bare := testkit.Processor(t, pool, 0) // least loaded, but cannot be told
		ready := testkit.Processor(t, pool, 0)
		testkit.PriorityTableWith(t, pool, ready)
		testkit.NumberedJobs(t, pool, ready, "load", 5, testkit.Queued)
		request(t, pool, "disk-1")

		o := resolve(t, pool, queue.PriorityBatch{Found: []string{"disk-1"}})[0]
		if o.Status != dispatch.PriorityQueued || o.Owner != ready || !o.Told {
			t.Errorf("outcome %+v, want queued to %d (has a table), not %d", o, ready, bare)
		}
	})

	t.Run("BrokenTableHoldsBackItsOwnOnly", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		broken := testkit.Processor(t, pool, 0)
		good := testkit.Processor(t, pool, 0)
		testkit.Exec(t, pool, fmt.Sprintf(`CREATE TABLE priority_jobs_%d (uuid varchar(50) PRIMARY KEY CHECK (false))`, broken))
		testkit.PriorityTableWith(t, pool, good)
		testkit.NumberedJobs(t, pool, broken, "b", 1, testkit.Queued)
		testkit.NumberedJobs(t, pool, good, "g", 1, testkit.Queued)
		request(t, pool, "b-1", "g-1", "junk")

		outs := byID(resolve(t, pool, queue.PriorityBatch{Existing: []string{"b-1", "g-1"}, Drop: []string{"junk"}}))
		if o := outs["b-1"]; o.Told || o.TellErr == nil || o.Resolved() {
			t.Errorf("b-1: %+v, want a tell error, kept", o)
		}
		if o := outs["g-1"]; !o.Told || !o.Resolved() {
			t.Errorf("g-1: %+v, want told", o)
		}
		if r := requests(t, pool); !slices.Equal(r, []string{"b-1"}) {
			t.Errorf("requests = %v, want b-1 only", r)
		}
		if got := pending(t, pool, good); !slices.Equal(got, []string{"g-1"}) {
			t.Errorf("priority_jobs_%d = %v", good, got)
		}
	})

	t.Run("HostileDropsAreExact", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		hostile := []string{`'; DROP TABLE jobs; --`, "../../etc/passwd", strings.Repeat("é", 127), "a\tb", `"quoted"`}
		request(t, pool, hostile...)
		request(t, pool, "keep-me")

		outs := resolve(t, pool, queue.PriorityBatch{Drop: hostile})
		if len(outs) != len(hostile) {
			t.Fatalf("%d outcomes, want %d", len(outs), len(hostile))
		}
		for _, o := range outs {
			if o.Status != dispatch.PriorityDropped || !o.Resolved() {
				t.Errorf("%+v, want dropped", o)
			}
		}
		if r := requests(t, pool); !slices.Equal(r, []string{"keep-me"}) {
			t.Errorf("requests = %v, want keep-me only", r)
		}
		if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs`); n != 0 {
			t.Errorf("jobs appeared: %d", n)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		pool, _ := pgtest.EmptySchema(t) // no tables: nothing may be queried
		outs, err := queue.NewStore(pool).ResolvePriority(t.Context(), queue.PriorityBatch{}, priorityCheckIn, nil)
		if outs != nil || err != nil {
			t.Errorf("ResolvePriority(empty) = %v, %v", outs, err)
		}
	})

	t.Run("NoSchema", func(t *testing.T) {
		t.Parallel()
		pool, _ := pgtest.EmptySchema(t)
		_, err := queue.NewStore(pool).ResolvePriority(t.Context(), queue.PriorityBatch{Drop: []string{"x"}}, priorityCheckIn, nil)
		if !errors.Is(err, queue.ErrSchemaMissing) {
			t.Errorf("err = %v, want ErrSchemaMissing", err)
		}
		_, err = queue.NewStore(pool).PriorityRequests(t.Context(), "", 1)
		if !errors.Is(err, queue.ErrSchemaMissing) {
			t.Errorf("PriorityRequests: err = %v, want ErrSchemaMissing", err)
		}
	})
}

// TestResolvePriorityRetriesConcurrentQueue: a crash the scanner queues
// while the transaction runs is not queued twice and its request is kept
// for the next pass, which finds it queued.
func TestResolvePriorityRetriesConcurrentQueue(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	p := testkit.Processor(t, pool, 0)
	testkit.PriorityTableWith(t, pool, p)
	request(t, pool, "race-1")

	// Another session inserts the job and holds its transaction open.
	conn, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(t.Context()))
	if _, err := tx.Exec(t.Context(), `INSERT INTO jobs (uuid, owner, priority, queueddatetime) VALUES ('race-1', $1, 0, localtimestamp)`, p); err != nil {
		t.Fatal(err)
	}
	done := make(chan []queue.PriorityOutcome, 1)
	go func() {
		outs, err := queue.NewStore(pool).ResolvePriority(t.Context(), queue.PriorityBatch{Found: []string{"race-1"}}, priorityCheckIn, nil)
		if err != nil {
			t.Error(err)
		}
		done <- outs
	}()
	waitBlockedBy(t, pool, conn.Conn().PgConn().PID(), done)
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	outs := <-done
	if len(outs) != 1 || outs[0].Status != dispatch.PriorityRetry || outs[0].Resolved() {
		t.Fatalf("outcomes %+v, want retry", outs)
	}
	if r := requests(t, pool); len(r) != 1 {
		t.Errorf("requests = %v, want kept", r)
	}
	o := resolve(t, pool, queue.PriorityBatch{Existing: []string{"race-1"}})[0]
	if o.Status != dispatch.PriorityRaised || !o.Told {
		t.Errorf("next pass: %+v, want raised and told", o)
	}
	if n := testkit.QueryInt64(t, pool, `SELECT count(*) FROM jobs`); n != 1 {
		t.Errorf("%d jobs, want 1", n)
	}
}

// TestListenPriority: an insert into priorityjobs wakes the listener; a
// timed-out wait leaves the connection usable; a killed connection is
// reported.
func TestListenPriority(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	store := queue.NewStore(pool)
	lis, err := store.ListenPriority(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close(context.WithoutCancel(t.Context()))

	var app string
	if err := pool.QueryRow(t.Context(), `SELECT application_name FROM pg_stat_activity WHERE pid = $1`, lis.PID()).Scan(&app); err != nil {
		t.Fatal(err)
	}
	want := cmp.Or(pool.Config().ConnConfig.RuntimeParams["application_name"], "monitor") + " priority listener"
	if app != want {
		t.Errorf("application_name = %q, want %q", app, want)
	}

	// Quiet: the wait times out (other tests' inserts may wake it first:
	// the channel is per database) and the connection still works.
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		err := lis.Wait(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
	}
	if err := lis.Ping(t.Context()); err != nil {
		t.Fatalf("Ping after a timed-out wait: %v", err)
	}

	request(t, pool, "notify-1")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := lis.Wait(ctx); err != nil {
		t.Fatalf("Wait after an insert: %v", err)
	}

	testkit.Exec(t, pool, `SELECT pg_terminate_backend($1)`, lis.PID())
	for {
		err := lis.Wait(ctx) // notifications that came before the kill first
		if err == nil {
			continue
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait on a terminated connection timed out, want a connection error")
		}
		break
	}
}

// TestListenPriorityWith: with settings of its own (a direct connection
// when the pool goes through a pooler), the listener connects with them,
// not with the pool's, and leaves them unchanged.
func TestListenPriorityWith(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	session := pool.Config().ConnConfig
	session.RuntimeParams["application_name"] = "direct"
	lis, err := queue.ListenPriorityWith(t.Context(), session)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close(context.WithoutCancel(t.Context()))
	var app string
	if err := pool.QueryRow(t.Context(), `SELECT application_name FROM pg_stat_activity WHERE pid = $1`, lis.PID()).Scan(&app); err != nil {
		t.Fatal(err)
	}
	if app != "direct priority listener" || session.RuntimeParams["application_name"] != "direct" {
		t.Errorf("listener application_name %q (session settings now %q), want %q",
			app, session.RuntimeParams["application_name"], "direct priority listener")
	}
	request(t, pool, "notify-session")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := lis.Wait(ctx); err != nil {
		t.Fatalf("Wait after an insert: %v", err)
	}
}

// TestResolvePriorityReusesLoads: with a recent snapshot of the loads, the
// owner of a crash to queue is chosen from it (plus what was assigned since),
// among the processors live now; without one, the loads are counted.
func TestResolvePriorityReusesLoads(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	procs := testkit.LiveProcessors(t, pool, 2)
	gone := testkit.Processor(t, pool, time.Hour) // in the snapshot, dead now
	testkit.PriorityTables(t, pool, append(procs, gone)...)
	// By the database, the first processor is the busier.
	testkit.Jobs(t, pool, testkit.Queued, procs[0], "q-1", "q-2", "q-3")
	store := queue.NewStore(pool)

	// The snapshot says the opposite: the first is idle.
	loads := dispatch.NewLoads([]dispatch.Load{{Processor: gone, Jobs: 0}, {Processor: procs[0], Jobs: 0}, {Processor: procs[1], Jobs: 10}},
		time.Now(), time.Millisecond)
	var owners []int64
	for _, id := range []string{"found-1", "found-2"} {
		outs, err := store.ResolvePriority(t.Context(), queue.PriorityBatch{Found: []string{id}}, priorityCheckIn, &loads)
		if err != nil {
			t.Fatal(err)
		}
		owners = append(owners, outs[0].Owner)
	}
	if !slices.Equal(owners, []int64{procs[0], procs[0]}) {
		t.Errorf("owners %v, want the snapshot's idle processor, %d, twice (never the dead one)", owners, procs[0])
	}
	if got := loads.Procs(); got[1].Jobs != 2 {
		t.Errorf("snapshot after two assignments: %+v, want 2 jobs added to %d", got, procs[0])
	}

	// Without a snapshot the database's count decides.
	outs, err := store.ResolvePriority(t.Context(), queue.PriorityBatch{Found: []string{"found-3"}}, priorityCheckIn, nil)
	if err != nil {
		t.Fatal(err)
	}
	if outs[0].Owner != procs[1] {
		t.Errorf("owner %d, want the less loaded by count, %d", outs[0].Owner, procs[1])
	}
}
