package queue_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

// leaseSession opens a LeaseSession on the schema of pool, closed at cleanup.
func leaseSession(t *testing.T, pool *pgxpool.Pool) *queue.LeaseSession {
	t.Helper()
	conn, err := pgx.ConnectConfig(t.Context(), pool.Config().ConnConfig.Copy())
	if err != nil {
		t.Fatal(err)
	}
	s := queue.NewLeaseSession(conn)
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func instance(n int) queue.Instance {
	return queue.Instance{ID: fmt.Sprintf("host%d:%d:test", n, 100+n), Host: fmt.Sprintf("host%d", n), PID: 100 + n}
}

func TestLease(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Schema(t)
	a, b := leaseSession(t, pool), leaseSession(t, pool)
	ia, ib := instance(1), instance(2)
	const ttl = time.Minute

	// Never held: a takes it in term 1; b finds it held by a.
	l, err := a.Observe(ctx, ia)
	if err != nil || l.Valid || l.Term != 0 || !l.Since.IsZero() {
		t.Fatalf("lease before any election = %+v, %v; want never held", l, err)
	}
	l, took, err := a.Acquire(ctx, ia, ttl)
	if err != nil || !took || l.ID != ia.ID || l.Term != 1 || !l.Valid || l.Host != "host1" || l.PID != 101 {
		t.Fatalf("first Acquire = %+v, %v, %v; want term 1 for a", l, took, err)
	}
	la := l.Lease()
	l, took, err = b.Acquire(ctx, ib, ttl)
	if err != nil || took || l.ID != ia.ID || !l.Valid {
		t.Fatalf("Acquire of a held lease = %+v, %v, %v; want a's lease, not taken", l, took, err)
	}
	// Nor can a take it again while it holds: a holder renews.
	if _, took, _ := a.Acquire(ctx, ia, ttl); took {
		t.Fatal("the holder acquired its own valid lease again (a second term)")
	}
	if ok, err := a.Renew(ctx, ia, la, ttl); !ok || err != nil {
		t.Fatalf("Renew by the holder = %v, %v", ok, err)
	}
	if ok, err := b.Renew(ctx, ib, queue.Lease{Instance: ib.ID, Term: la.Term}, ttl); ok || err != nil {
		t.Fatalf("Renew by another instance = %v, %v; want false", ok, err)
	}
	if ok, _ := a.Renew(ctx, ia, queue.Lease{Instance: ia.ID, Term: la.Term + 1}, ttl); ok {
		t.Fatal("Renew of another term succeeded")
	}

	// Expiry: once a's lease has run out, b takes it in term 2 and a can
	// no longer renew.
	testkit.Exec(t, pool, `UPDATE monitor_leader SET expires_at = clock_timestamp() - interval '1 ms'`)
	if l, _ := b.Observe(ctx, ib); l.Valid || l.ID != ia.ID {
		t.Fatalf("expired lease = %+v; want a's, not valid", l)
	}
	l, took, err = b.Acquire(ctx, ib, ttl)
	if err != nil || !took || l.ID != ib.ID || l.Term != 2 {
		t.Fatalf("Acquire after expiry = %+v, %v, %v; want term 2 for b", l, took, err)
	}
	if ok, err := a.Renew(ctx, ia, la, ttl); ok || err != nil {
		t.Fatalf("Renew by the former holder = %v, %v; want false", ok, err)
	}

	// Resign hands over at once, in term 3; resigning without a lease is
	// nothing.
	if ok, err := a.Resign(ctx, ia.ID); ok || err != nil {
		t.Fatalf("Resign without the lease = %v, %v", ok, err)
	}
	if ok, err := b.Resign(ctx, ib.ID); !ok || err != nil {
		t.Fatalf("Resign = %v, %v", ok, err)
	}
	l, took, err = a.Acquire(ctx, ia, ttl)
	if err != nil || !took || l.Term != 3 {
		t.Fatalf("Acquire after a resignation = %+v, %v, %v; want term 3", l, took, err)
	}

	// A lease row deleted by hand is put back.
	testkit.Exec(t, pool, `DELETE FROM monitor_leader`)
	if l, err := b.Observe(ctx, ib); err != nil || l.Valid {
		t.Fatalf("Observe without a lease row = %+v, %v", l, err)
	}
	if _, took, err := b.Acquire(ctx, ib, ttl); !took || err != nil {
		t.Fatalf("Acquire without a lease row = %v, %v", took, err)
	}
}

// TestStatusMonitors: Status names the active monitor and the standbys, and
// none when the lease has expired.
func TestStatusMonitors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Schema(t)
	store := queue.NewStore(pool)
	a, b, c := leaseSession(t, pool), leaseSession(t, pool), leaseSession(t, pool)
	ia, ib, ic := instance(1), instance(2), instance(3)
	for _, o := range []struct {
		s *queue.LeaseSession
		i queue.Instance
	}{{a, ia}, {b, ib}, {c, ic}} {
		if _, err := o.s.Observe(ctx, o.i); err != nil {
			t.Fatal(err)
		}
	}
	if _, took, err := b.Acquire(ctx, ib, time.Minute); !took || err != nil {
		t.Fatal(took, err)
	}
	st, err := store.Status(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if st.Active == nil || st.Active.Instance != ib || st.Active.Term != 1 || st.Active.Since.IsZero() {
		t.Errorf("Status.Active = %+v, want b in term 1", st.Active)
	}
	if len(st.Standbys) != 2 || st.Standbys[0].Instance != ia || st.Standbys[1].Instance != ic || st.Standbys[0].Seen.IsZero() {
		t.Errorf("Status.Standbys = %+v, want a and c", st.Standbys)
	}

	// A clean leave takes a monitor off the list; an old heartbeat too.
	if err := c.Leave(ctx, ic.ID); err != nil {
		t.Fatal(err)
	}
	testkit.Exec(t, pool, `UPDATE monitor_instances SET seen_at = clock_timestamp() - $1::interval WHERE instance = $2`,
		queue.StandbySeen+time.Second, ia.ID)
	testkit.Exec(t, pool, `UPDATE monitor_leader SET expires_at = clock_timestamp()`)
	st, err = store.Status(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if st.Active != nil || len(st.Standbys) != 1 || st.Standbys[0].Instance != ib {
		t.Errorf("Status after the lease expired = %+v, %+v; want no active monitor, b listed", st.Active, st.Standbys)
	}
}

// fenceRig is a schema with a live processor and two lease sessions, a
// holding the lease for instance ia, b ready to take it for ib.
func fenceRig(t *testing.T) (pool *pgxpool.Pool, a, b *queue.LeaseSession, ia, ib queue.Instance, l queue.Leader) {
	t.Helper()
	pool = pgtest.Schema(t)
	testkit.LiveProcessors(t, pool, 1)
	a, b = leaseSession(t, pool), leaseSession(t, pool)
	ia, ib = instance(1), instance(2)
	l, _, err := a.Acquire(t.Context(), ia, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return pool, a, b, ia, ib, l
}

// TestFence: the writes of a fenced store land only while its lease holds;
// afterwards they change nothing, say ErrNotLeader and call lost. An
// unfenced store writes regardless.
func TestFence(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, _, b, _, ib, l := fenceRig(t)
	var lost atomic.Int32
	fenced := queue.NewStore(pool).Fenced(l.Lease(), func() { lost.Add(1) })
	ids := testkit.CrashIDs("0fe0ce", 4)
	if res, err := fenced.Enqueue(ctx, ids[:1], 0, time.Minute, nil); err != nil || len(res.Queued) != 1 {
		t.Fatalf("Enqueue under a holding lease = %+v, %v", res, err)
	}

	testkit.Exec(t, pool, `UPDATE monitor_leader SET expires_at = clock_timestamp()`)
	if _, took, err := b.Acquire(ctx, ib, time.Minute); !took || err != nil {
		t.Fatal(took, err)
	}
	checks := map[string]func() error{
		"Enqueue": func() error {
			_, err := fenced.Enqueue(ctx, ids[1:2], 0, time.Minute, nil)
			return err
		},
		"ReapDeadProcessors": func() error {
			_, err := fenced.ReapDeadProcessors(ctx, time.Minute)
			return err
		},
		"ResolvePriority": func() error {
			_, err := fenced.ResolvePriority(ctx, queue.PriorityBatch{Drop: []string{"x"}}, time.Minute, nil)
			return err
		},
		"DeleteFinishedJobs": func() error {
			_, err := fenced.DeleteFinishedJobs(ctx, ids[:1])
			return err
		},
		"RecordCleanupFailures": func() error {
			_, err := fenced.RecordCleanupFailures(ctx, []queue.CleanupFailure{{UUID: ids[0], Error: "x"}}, time.Minute, time.Hour)
			return err
		},
		"PurgeCleanupFailures": func() error {
			_, err := fenced.PurgeCleanupFailures(ctx)
			return err
		},
	}
	for name, write := range checks {
		if err := write(); !errors.Is(err, queue.ErrNotLeader) {
			t.Errorf("%s after the lease changed hands: %v, want ErrNotLeader", name, err)
		}
	}
	if n := lost.Load(); n != int32(len(checks)) {
		t.Errorf("lost called %d times, want %d", n, len(checks))
	}
	if n := testkit.QueryInt(t, pool, `SELECT count(*) FROM jobs`); n != 1 {
		t.Errorf("%d jobs, want the one queued under the lease", n)
	}
	if n := testkit.QueryInt(t, pool, `SELECT count(*) FROM monitor_cleanup_failures`); n != 0 {
		t.Errorf("%d cleanup failures recorded without the lease", n)
	}
	// The store without a fence is not held back.
	if _, err := queue.NewStore(pool).Enqueue(ctx, ids[2:3], 0, time.Minute, nil); err != nil {
		t.Errorf("unfenced Enqueue: %v", err)
	}
}

// TestFenceTakeoverWaits: a fenced transaction in flight when its lease
// expires delays the takeover until it has committed, so nothing of the old
// term lands in the new one; the holder's renewals do not wait for its own
// fenced transactions.
func TestFenceTakeoverWaits(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, a, b, ia, ib, l := fenceRig(t)
	fenced := queue.NewStore(pool).Fenced(l.Lease(), nil)

	// Hold the Enqueue after its fence check: jobs is locked.
	blocker, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(context.WithoutCancel(ctx))
	if _, err := blocker.Exec(ctx, `LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	enqueued := make(chan error, 1)
	go func() {
		_, err := fenced.Enqueue(ctx, testkit.CrashIDs("0fe0ce", 1), 0, time.Minute, nil)
		enqueued <- err
	}()
	testkit.Eventually(t, "the fenced Enqueue to wait for the jobs lock", func() bool {
		return testkit.QueryInt(t, pool, `SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'jobs'::regclass`) > 0
	})

	// The holder renews while its transaction is open.
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	ok, err := a.Renew(rctx, ia, l.Lease(), time.Minute)
	cancel()
	if !ok || err != nil {
		t.Fatalf("Renew with a fenced transaction open = %v, %v; want it not to wait", ok, err)
	}

	// The lease expires; the takeover waits for the fenced transaction.
	testkit.Exec(t, pool, `UPDATE monitor_leader SET expires_at = clock_timestamp()`)
	type acquired struct {
		took bool
		err  error
	}
	takeover := make(chan acquired, 1)
	go func() {
		_, took, err := b.Acquire(ctx, ib, time.Minute)
		takeover <- acquired{took, err}
	}()
	testkit.Eventually(t, "the takeover to wait for the fenced transaction", func() bool {
		return testkit.QueryInt(t, pool, `SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = $1`, int64(b.PID())) > 0
	})
	select {
	case r := <-takeover:
		t.Fatalf("the takeover did not wait for the fenced transaction: %+v", r)
	default:
	}
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-enqueued; err != nil {
		t.Fatalf("the fenced Enqueue that passed its check: %v", err)
	}
	if r := <-takeover; !r.took || r.err != nil {
		t.Fatalf("takeover = %+v", r)
	}
	if n := testkit.QueryInt(t, pool, `SELECT count(*) FROM jobs`); n != 1 {
		t.Errorf("%d jobs, want the one the old term committed before the takeover", n)
	}
}
