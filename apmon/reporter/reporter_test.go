package reporter

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/apmon"
	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/loop"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

// fakeDB is the database figures the test sets.
type fakeDB struct {
	mu  sync.Mutex
	st  queue.Status
	err error
}

func (f *fakeDB) Status(ctx context.Context, checkIn time.Duration) (queue.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st, f.err
}

func (f *fakeDB) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func status() queue.Status {
	age := 90 * time.Second
	return queue.Status{
		Processors: []queue.ProcessorStatus{
			{ID: 1, Name: "proc-a", State: "live", Pending: 7},
			{ID: 2, Name: "proc-b", State: "live", Pending: 0},
			{ID: 3, Name: "proc-c", State: "stale", Pending: 2},
			{ID: 4, Name: "", State: "dead", Pending: 1},
		},
		Queued: 5, Started: 4, Succeeded: 3, Failed: 2, PriorityRequests: 6, OldestQueuedAge: &age,
	}
}

// byName returns params by name.
func byName(params []apmon.Param) map[string]apmon.Param {
	m := map[string]apmon.Param{}
	for _, p := range params {
		m[p.Name] = p
	}
	return m
}

func TestMessages(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClock(time.Unix(1767225600, 0))
	db := &fakeDB{st: status()}
	f := figures.New(figures.Options{DB: db, Now: clock.Now})
	f.SetInbox(3, 1)
	f.SetActive(true)
	r := New(Options{Figures: f, Now: clock.Now, ProcRoot: t.TempDir()})
	set := Settings{Cluster: "Socorro_Monitor", Node: "node-1"}

	f.Queued(figures.LoopScanner, 100) // before the first report: no rate yet
	first := r.messages(context.Background(), set)
	clock.Add(20 * time.Second)
	f.Queued(figures.LoopScanner, 30)
	f.Queued(figures.LoopPriority, 10)
	f.Cleaned(figures.CleanedArchived, 50)
	f.Cleaned(figures.CleanedFailed, 9) // still there: no throughput
	msgs := r.messages(context.Background(), set)

	if p := byName(first[0].Params); p["queued_per_second"].Num != 0 {
		t.Errorf("the first report has a rate: %+v", p["queued_per_second"])
	}
	main := msgs[0]
	if main.Cluster != "Socorro_Monitor" || main.Node != "node-1" {
		t.Fatalf("first message is %s/%s", main.Cluster, main.Node)
	}
	ints := map[string]int32{
		"jobs_queued": 5, "jobs_started": 4, "jobs_succeeded": 3, "jobs_failed": 2,
		"processors_live": 2, "processors_stale": 1, "processors_dead": 1,
		"priority_requests_pending": 6, "inbox_pairs_complete": 3, "inbox_pairs_incomplete": 1, "active": 1,
	}
	doubles := map[string]float64{"oldest_queued_job_age_seconds": 90, "queued_per_second": 2, "cleaned_per_second": 2.5}
	got := byName(main.Params)
	if len(got) != len(ints)+len(doubles) {
		t.Errorf("%d parameters, want %d: %+v", len(got), len(ints)+len(doubles), main.Params)
	}
	for name, want := range ints {
		if p := got[name]; p.Kind != apmon.Int32 || p.Int != want {
			t.Errorf("%s = %+v, want int32 %d", name, p, want)
		}
	}
	for name, want := range doubles {
		if p := got[name]; p.Kind != apmon.Double || p.Num != want {
			t.Errorf("%s = %+v, want double %v", name, p, want)
		}
	}
	// One node per named processor, in the _Processors cluster.
	pending := map[string]int32{}
	for _, m := range msgs[1:] {
		if m.Cluster == "Socorro_Monitor_Processors" {
			if len(m.Params) != 1 || m.Params[0].Name != "pending_jobs" || m.Params[0].Kind != apmon.Int32 {
				t.Errorf("processor %s: %+v", m.Node, m.Params)
			}
			pending[m.Node] = m.Params[0].Int
		}
	}
	if want := map[string]int32{"proc-a": 7, "proc-b": 0, "proc-c": 2}; len(pending) != 3 || pending["proc-a"] != 7 || pending["proc-c"] != 2 {
		t.Errorf("pending jobs %v, want %v", pending, want)
	}

	// The database out of reach: its figures are left out, not sent stale.
	db.fail(errors.New("connection refused"))
	clock.Add(2 * figures.MinRead)
	got = byName(r.messages(context.Background(), set)[0].Params)
	if _, ok := got["jobs_queued"]; ok {
		t.Errorf("database figures sent while the database is out of reach: %+v", got)
	}
	if got["active"].Int != 1 || got["inbox_pairs_complete"].Int != 3 {
		t.Errorf("the daemon's own figures missing: %+v", got)
	}
}

// udpListener keeps the datagrams it receives.
type udpListener struct{ *testkit.UDP }

func listenUDP(t *testing.T) *udpListener { return &udpListener{testkit.ListenUDP(t)} }

// got returns the datagrams received so far, decoded.
func (l *udpListener) got() []apmon.Datagram {
	var out []apmon.Datagram
	for _, b := range l.Datagrams() {
		if d, err := apmon.Decode(b); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// clusters counts the datagrams received by cluster.
func (l *udpListener) clusters() map[string]int {
	m := map[string]int{}
	for _, d := range l.got() {
		m[d.Cluster]++
	}
	return m
}

func (l *udpListener) entry() string {
	return l.Addr()
}

// TestRun: a report at once and then every interval; a change of the
// settings adds a destination, here one read from a configuration page;
// with no destination nothing is sent; the reporter stops with its context.
func TestRun(t *testing.T) {
	t.Parallel()
	direct, listed := listenUDP(t), listenUDP(t)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("# the crash monitors' MonALISA\n" + listed.entry() + " pw\n"))
	}))
	t.Cleanup(page.Close)

	var mu sync.Mutex
	var changed loop.Broadcast
	d, _ := apmon.ParseDestination(direct.entry())
	set := Settings{Destinations: []apmon.Destination{d}, Cluster: "C", Node: "n", Interval: 200 * time.Millisecond, MaxMsgRate: 1000}
	setSettings := func(f func(*Settings)) {
		mu.Lock()
		f(&set)
		mu.Unlock()
		changed.Notify()
	}
	f := figures.New(figures.Options{DB: &fakeDB{st: status()}})
	r := New(Options{
		Figures:  f,
		Settings: func() Settings { mu.Lock(); defer mu.Unlock(); return set },
		Changed:  changed.C,
		WorkDir:  t.TempDir(),
		Logger:   slog.New(slog.DiscardHandler),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	testkit.Eventually(t, "three reports", func() bool { return direct.clusters()["C"] >= 3 })
	c := direct.clusters()
	for _, cluster := range []string{"C_Processors", "C_SysInfo", "C_JobInfo"} {
		if c[cluster] == 0 {
			t.Errorf("no datagram of cluster %s: %v", cluster, c)
		}
	}
	setSettings(func(s *Settings) {
		s.Destinations = append(s.Destinations, apmon.Destination{URL: page.URL + "/apmon.conf"})
	})
	testkit.Eventually(t, "the page's destination to receive", func() bool { return listed.clusters()["C"] >= 2 })
	pw := listed.got()[0].Password
	if pw != "pw" {
		t.Errorf("the page's destination got password %q", pw)
	}

	before := direct.clusters()["C"]
	setSettings(func(s *Settings) { s.Destinations = nil })
	// Over five intervals, at most the report in flight lands.
	if testkit.Poll(t, 5*200*time.Millisecond, func() bool { return direct.clusters()["C"] > before+1 }) {
		t.Errorf("%d reports sent with no destination", direct.clusters()["C"]-before)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(testkit.WaitTimeout()):
		t.Fatal("Run did not return after its context ended")
	}
}
