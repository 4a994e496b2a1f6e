package election_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/election"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

// Short lease settings, so that the tests run in seconds.
const (
	ttl    = time.Second
	renew  = 100 * time.Millisecond
	poll   = 100 * time.Millisecond
	margin = 200 * time.Millisecond
)

// cluster is the monitors of one test, electing on one schema.
type cluster struct {
	t    *testing.T
	pool *pgxpool.Pool
	mu   sync.Mutex
	all  []*monitor
}

// monitor is one elector running in the background.
type monitor struct {
	c    *cluster
	name string
	inst queue.Instance
	el   *election.Elector
	log  *testkit.SyncBuffer
	// offline, when set, makes every connection attempt fail.
	offline atomic.Bool
	// linger is how long lead goes on after its context ended.
	linger time.Duration
	// leadErr, when set, is what the next lead returns at once.
	leadErr atomic.Pointer[error]

	cancel context.CancelFunc
	done   chan error

	mu      sync.Mutex
	terms   []queue.Lease
	termCtx context.Context // the context of the running lead, nil when none
	endedAt time.Time       // when the last lead's context ended
	leads   int             // lead calls running
}

func newCluster(t *testing.T) *cluster {
	return &cluster{t: t, pool: pgtest.Schema(t)}
}

// start runs an elector named name with the test's lease settings (TTL
// overridden by ttlOverride when not zero).
func (c *cluster) start(name string, ttlOverride time.Duration) *monitor {
	t := c.t
	m := &monitor{c: c, name: name, log: &testkit.SyncBuffer{}, done: make(chan error, 1),
		inst: queue.Instance{ID: name + ":1:test", Host: name, PID: len(c.all) + 1}}
	m.el = election.New(election.Config{
		Instance: m.inst,
		Connect:  m.connect,
		TTL:      cmpOr(ttlOverride, ttl), Renew: renew, Poll: poll, Margin: margin,
		Logger: slog.New(slog.NewTextHandler(m.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() { m.done <- m.el.Run(ctx, m.lead) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-m.done:
		case <-time.After(testkit.WaitTimeout()):
			t.Errorf("%s: Run did not return after its context ended", name)
		}
	})
	c.mu.Lock()
	c.all = append(c.all, m)
	c.mu.Unlock()
	return m
}

func cmpOr(a, b time.Duration) time.Duration {
	if a != 0 {
		return a
	}
	return b
}

// connect opens the elector's session on the test's schema, named so that
// the test can find it in pg_stat_activity.
func (m *monitor) connect(ctx context.Context) (*queue.LeaseSession, error) {
	if m.offline.Load() {
		return nil, errors.New("offline")
	}
	cfg := m.c.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = m.appName()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return queue.NewLeaseSession(conn), nil
}

func (m *monitor) appName() string {
	return fmt.Sprintf("election test %s %p", m.name, m)
}

// lead is the LeadFunc: it records the term, and checks that no other
// monitor of the cluster still leads when it starts.
func (m *monitor) lead(ctx context.Context, lease queue.Lease) error {
	m.c.mu.Lock()
	for _, o := range m.c.all {
		if o == m {
			continue
		}
		o.mu.Lock()
		if o.termCtx != nil && o.termCtx.Err() == nil {
			m.c.t.Errorf("%s started term %d while %s still led term %d", m.name, lease.Term, o.name, o.terms[len(o.terms)-1].Term)
		}
		o.mu.Unlock()
	}
	m.mu.Lock()
	m.leads++
	if m.leads > 1 {
		m.c.t.Errorf("%s: a second term began before the first one's loops returned", m.name)
	}
	m.terms = append(m.terms, lease)
	m.termCtx = ctx
	m.mu.Unlock()
	m.c.mu.Unlock()

	if p := m.leadErr.Load(); p != nil {
		m.leadErr.Store(nil)
		m.finish()
		return *p
	}
	<-ctx.Done()
	m.mu.Lock()
	m.endedAt = time.Now()
	m.mu.Unlock()
	time.Sleep(m.linger) // loops that take a moment to return
	m.finish()
	return nil
}

func (m *monitor) finish() {
	m.mu.Lock()
	m.leads--
	m.mu.Unlock()
}

// leading reports whether m runs a term whose context has not ended.
func (m *monitor) leading() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.termCtx != nil && m.termCtx.Err() == nil
}

// lastTerm returns the last term m led (zero before any).
func (m *monitor) lastTerm() queue.Lease {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.terms) == 0 {
		return queue.Lease{}
	}
	return m.terms[len(m.terms)-1]
}

// leaders returns the monitors leading now.
func (c *cluster) leaders() []*monitor {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*monitor
	for _, m := range c.all {
		if m.leading() {
			out = append(out, m)
		}
	}
	return out
}

// waitLeader waits until exactly one monitor leads, and returns it.
func (c *cluster) waitLeader(within time.Duration) *monitor {
	c.t.Helper()
	var l []*monitor
	testkit.EventuallyWithin(c.t, within, "exactly one leader", func() bool {
		l = c.leaders()
		return len(l) == 1
	})
	return l[0]
}

// terminate ends m's election session from the server's side.
func (m *monitor) terminate() {
	m.c.t.Helper()
	n := testkit.QueryInt(m.c.t, m.c.pool,
		`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, m.appName())
	if n != 1 {
		m.c.t.Fatalf("%s: %d election sessions terminated, want 1", m.name, n)
	}
}

// lease reads the lease row.
func (c *cluster) lease() (instance string, term int64, expiresAt time.Time) {
	c.t.Helper()
	err := c.pool.QueryRow(c.t.Context(), `SELECT instance, term, expires_at FROM monitor_leader`).Scan(&instance, &term, &expiresAt)
	if err != nil {
		c.t.Fatal(err)
	}
	return instance, term, expiresAt
}

// TestElectOne: of three monitors exactly one leads, in term 1; the others
// say once that they stand by, naming it.
func TestElectOne(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	ms := []*monitor{c.start("a", 0), c.start("b", 0), c.start("c", 0)}
	l := c.waitLeader(testkit.WaitTimeout())
	if got := l.lastTerm(); got.Term != 1 || got.Instance != l.inst.ID {
		t.Errorf("leader's term = %+v, want term 1 of %s", got, l.inst.ID)
	}
	for _, m := range ms {
		select {
		case <-m.el.Decided():
		case <-time.After(testkit.WaitTimeout()):
			t.Fatalf("%s never decided", m.name)
		}
	}
	// Renewals over several TTLs later, still the same one.
	_, _, first := c.lease()
	testkit.Eventually(t, "the lease renewed for 3 TTLs", func() bool {
		_, _, expires := c.lease()
		return expires.Sub(first) >= 3*ttl
	})
	if now := c.waitLeader(time.Second); now != l || now.lastTerm().Term != 1 {
		t.Errorf("leader changed from %s to %s (term %d) without a reason", l.name, now.name, now.lastTerm().Term)
	}
	want := fmt.Sprintf("active_host=%s active_pid=%d", l.inst.Host, l.inst.PID)
	for _, m := range ms {
		if m == l {
			continue
		}
		if n := bytes.Count([]byte(m.log.String()), []byte("standing by")); n != 1 {
			t.Errorf("%s said %d times that it stands by, want once:\n%s", m.name, n, m.log)
		}
		if !bytes.Contains([]byte(m.log.String()), []byte(want)) {
			t.Errorf("%s's log does not name the active monitor (%s):\n%s", m.name, want, m.log)
		}
	}
}

// TestTakeoverAfterExpiry: a leader that can no longer reach the database
// steps down at once, and another takes over once its lease has expired, in
// a new term.
func TestTakeoverAfterExpiry(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", 0)
	a.waitFor(t, a.leading)
	b := c.start("b", 0)
	b.waitDecided(t)

	a.offline.Store(true)
	a.terminate()
	cut := time.Now()
	testkit.EventuallyWithin(t, 2*renew+time.Second, "a to step down", func() bool { return !a.leading() })
	testkit.EventuallyWithin(t, ttl+testkit.WaitTimeout(), "b to take over", b.leading)
	if took := time.Since(cut); took < ttl-2*renew {
		t.Errorf("b took over %s after a's session was cut, before a's lease (%s) could have expired", took, ttl)
	}
	if got := b.lastTerm().Term; got != 2 {
		t.Errorf("b's term = %d, want 2", got)
	}
	if !bytes.Contains([]byte(a.log.String()), []byte("the election cannot reach the database")) &&
		!bytes.Contains([]byte(a.log.String()), []byte("the election session is lost")) {
		t.Errorf("a did not log the loss of its session:\n%s", a.log)
	}

	// Back online, a stands by under b.
	a.offline.Store(false)
	a.waitLog(t, "the election reaches the database again")
	a.waitLog(t, "standing by")
	if l := c.waitLeader(time.Second); l != b {
		t.Errorf("leader = %s, want b", l.name)
	}
}

// TestStepDownOnTerminate: pg_terminate_backend of the leader's session
// makes it step down at once; it resigns its lease as soon as it reconnects
// and leaves the standby the first chance, which takes over well before the
// lease would have expired. The stepped-down monitor starts no term before
// its loops have returned.
func TestStepDownOnTerminate(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	const long = 10 * time.Second // the lease would hold this long
	a := c.start("a", long)
	a.linger = 300 * time.Millisecond
	a.waitFor(t, a.leading)
	b := c.start("b", long)
	b.waitDecided(t)

	a.terminate()
	testkit.EventuallyWithin(t, renew+time.Second, "a to step down", func() bool { return !a.leading() })
	// Well before the lease would have expired: a resigned it. (The bound
	// is that, not a tighter one a loaded machine would miss.)
	testkit.EventuallyWithin(t, long/2, "b to take over before half the lease's term: a did not resign", b.leading)
	a.waitLog(t, "stepping down")
	a.waitLog(t, "resigned the lease of the term this monitor stepped down from")
	a.waitLog(t, "standing by")
	if n := len(a.termsCopy()); n != 1 {
		t.Errorf("a led %d terms, want 1", n)
	}
	if inst, term, _ := c.lease(); inst != b.inst.ID || term != 2 {
		t.Errorf("lease = %s term %d, want b's term 2", inst, term)
	}
}

// TestRenewalHangs: a leader whose renewals get no answer steps down before
// its lease could expire, without waiting for one.
func TestRenewalHangs(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", 0)
	a.waitFor(t, a.leading)

	// A transaction holding the lease row makes every UPDATE of it wait.
	tx, err := c.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(t.Context()))
	var expires time.Time
	if err := tx.QueryRow(t.Context(), `SELECT expires_at FROM monitor_leader FOR NO KEY UPDATE`).Scan(&expires); err != nil {
		t.Fatal(err)
	}
	testkit.EventuallyWithin(t, 2*ttl, "a to step down", func() bool { return !a.leading() })
	a.mu.Lock()
	ended := a.endedAt
	a.mu.Unlock()
	if !ended.Before(expires) {
		t.Errorf("a stepped down at %s, after its lease expired (%s)", ended.Format(time.StampMicro), expires.Format(time.StampMicro))
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Alone, it leads again once the row is free, in a new term.
	testkit.EventuallyWithin(t, testkit.WaitTimeout(), "a to lead again", a.leading)
	if got := a.lastTerm().Term; got != 2 {
		t.Errorf("a's term = %d, want 2", got)
	}
}

// TestResignHandsOver: a leader that stops resigns once its loops have
// returned, and a standby takes over on its next look, long before the
// lease would have expired.
func TestResignHandsOver(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	const long = 10 * time.Second
	a := c.start("a", long)
	a.linger = 200 * time.Millisecond
	a.waitFor(t, a.leading)
	b := c.start("b", long)
	b.waitDecided(t)
	if inst, _, _ := c.lease(); inst != a.inst.ID {
		t.Fatalf("lease held by %s, want a", inst)
	}

	a.cancel()
	stopped := time.Now()
	if err := <-a.done; err != nil {
		t.Fatalf("a's Run = %v", err)
	}
	a.done <- nil // for the cleanup
	testkit.EventuallyWithin(t, 2*time.Second, "b to take over", b.leading)
	if took := time.Since(stopped); took > time.Second+a.linger {
		t.Errorf("b took over %s after a stopped; want about one look", took)
	}
	a.waitLog(t, "resigned the lease: a standby may take over at once")
	if n := testkit.QueryInt(t, c.pool, `SELECT count(*) FROM monitor_instances WHERE instance = $1`, a.inst.ID); n != 0 {
		t.Errorf("a left its row in monitor_instances")
	}
}

// TestLeadFails: a term whose loops fail ends Run with their error, and
// the lease is resigned for another monitor.
func TestLeadFails(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", 5*time.Second)
	boom := errors.New("storage root gone")
	a.leadErr.Store(&boom)
	var err error
	select {
	case err = <-a.done:
		a.done <- err
	case <-time.After(testkit.WaitTimeout()):
		t.Fatal("Run did not return after its lead failed")
	}
	if !errors.Is(err, boom) {
		t.Errorf("Run = %v, want %v", err, boom)
	}
	if _, _, expires := c.lease(); expires.After(time.Now().Add(time.Second)) {
		t.Errorf("the lease still holds until %s: not resigned", expires)
	}
}

// TestRecheck: when the loops find the lease gone (their lead returns while
// the term runs), the monitor steps down, and leads again in a new term
// when no one else does.
func TestRecheck(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", 0)
	a.waitFor(t, a.leading)
	// Another instance takes the lease behind a's back, then lets it go.
	testkit.Exec(t, c.pool, `UPDATE monitor_leader SET instance = 'intruder', term = term + 1`)
	a.el.Recheck()
	testkit.EventuallyWithin(t, time.Second, "a to step down", func() bool { return !a.leading() })
	a.waitLog(t, "the lease no longer holds")
	testkit.Exec(t, c.pool, `UPDATE monitor_leader SET expires_at = clock_timestamp()`)
	testkit.EventuallyWithin(t, testkit.WaitTimeout(), "a to lead again", a.leading)
	if got := a.lastTerm().Term; got != 3 {
		t.Errorf("a's term = %d, want 3", got)
	}
}

func (m *monitor) waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, m.name+" to lead", cond)
}

func (m *monitor) waitDecided(t *testing.T) {
	t.Helper()
	select {
	case <-m.el.Decided():
	case <-time.After(testkit.WaitTimeout()):
		t.Fatalf("%s never decided:\n%s", m.name, m.log)
	}
}

func (m *monitor) waitLog(t *testing.T, want string) {
	t.Helper()
	if !testkit.Poll(t, testkit.WaitTimeout(), func() bool { return bytes.Contains([]byte(m.log.String()), []byte(want)) }) {
		t.Fatalf("%s did not log %q:\n%s", m.name, want, m.log)
	}
}

func (m *monitor) termsCopy() []queue.Lease {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]queue.Lease(nil), m.terms...)
}
