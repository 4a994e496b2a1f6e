package alert

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

func TestRing(t *testing.T) {
	var r ring
	for _, tc := range []struct {
		v        float64
		capacity int
		want     float64
	}{
		{4, 2, 4},       // [4]
		{2, 2, 3},       // [4 2]
		{0, 2, 1},       // [2 0]
		{6, 3, 8.0 / 3}, // grown: [2 0 6]
		{3, 3, 3},       // [0 6 3]
		{9, 1, 9},       // shrunk to the latest
		{1, 1, 1},
	} {
		r.push(tc.v, tc.capacity)
		if got := r.average(); got != tc.want || len(r.vals) > tc.capacity {
			t.Fatalf("after push(%v, %d): average %v over %v, want %v", tc.v, tc.capacity, got, r.vals, tc.want)
		}
	}
}

func TestDefinition(t *testing.T) {
	r := Rule{Name: "x", Metric: "processors_live", Below: true, Threshold: 1, Window: 90 * time.Second,
		Command: []string{"/bin/page", "a b", `"q"`}, Repeat: time.Hour}
	want := `processors_live below 1 window 1m30s command "/bin/page" "a b" "\"q\"" repeat 1h`
	if got := r.Definition(); got != want {
		t.Errorf("Definition() = %s, want %s", got, want)
	}
	if !r.crossed(0.5) || r.crossed(1) {
		t.Error("below 1: 0.5 should cross, 1 should not")
	}
	r.Below = false
	if !r.crossed(1.5) || r.crossed(1) {
		t.Error("above 1: 1.5 should cross, 1 should not")
	}
}

// rig is an evaluator over a schema of its own, on a settable clock, with a
// processor whose liveness the test sets.
type rig struct {
	t       *testing.T
	pool    *pgxpool.Pool
	store   *queue.Store
	clock   *testkit.Clock
	log     *testkit.SyncBuffer
	rules   []Rule
	dir     string
	script  string
	proc    int64
	figures *figures.Figures
}

func newRig(t *testing.T) *rig {
	pool := pgtest.Schema(t)
	r := &rig{t: t, pool: pool, store: queue.NewStore(pool), clock: testkit.NewClock(time.Now()),
		log: &testkit.SyncBuffer{}, dir: t.TempDir(), script: testkit.AlertRecorder(t)}
	r.proc = testkit.LiveProcessors(t, pool, 1)[0]
	r.figures = figures.New(figures.Options{DB: r.store, Now: r.clock.Now,
		CheckIn: func() time.Duration { return time.Minute }})
	return r
}

// evaluator returns a new evaluator of the rig's rules (a new process).
func (r *rig) evaluator(killAfter time.Duration) *Evaluator {
	return New(Options{
		Figures: r.figures, Store: r.store, Logger: slog.New(slog.NewTextHandler(r.log, nil)),
		Rules:    func() []Rule { return r.rules },
		Interval: func() time.Duration { return time.Second },
		Now:      r.clock.Now, KillAfter: killAfter,
	})
}

// record is a rule command that appends what it got to a file of its own.
func (r *rig) record(name string, args ...string) []string {
	return append([]string{r.script, filepath.Join(r.dir, name)}, args...)
}

// calls returns the blocks the record command of name wrote.
func (r *rig) calls(name string) []string {
	return testkit.AlertCalls(r.t, filepath.Join(r.dir, name))
}

// live sets whether the processor is live.
func (r *rig) live(on bool) {
	seen := "now()"
	if !on {
		seen = "now() - interval '1 hour'"
	}
	testkit.Exec(r.t, r.pool, "UPDATE processors SET lastseendatetime = "+seen+" WHERE id = $1", r.proc)
}

// pass moves the clock past the figures' read interval and evaluates.
func (r *rig) pass(e *Evaluator) {
	r.t.Helper()
	r.clock.Add(figures.MinRead + time.Millisecond)
	if err := e.RunOnce(r.t.Context()); err != nil {
		r.t.Fatal(err)
	}
}

// waitCalls waits until the record command of name has run n times in all.
func (r *rig) waitCalls(name string, n int) {
	r.t.Helper()
	testkit.Eventually(r.t, fmt.Sprintf("%s's command to run %d time(s)", name, n), func() bool { return len(r.calls(name)) >= n })
}

func TestFiresOnceRepeatsAndResolvesAcrossRestarts(t *testing.T) {
	t.Setenv("MONITOR_DATABASEPASSWORD", "hunter2") // the monitor's settings are not passed on
	r := newRig(t)
	r.rules = []Rule{
		{Name: "no-live", Metric: figures.ParamProcessorsLive, Below: true, Threshold: 1, Window: time.Second,
			Command: r.record("no-live", "a;b", "$(touch "+filepath.Join(r.dir, "pwned")+")", "it's")},
		{Name: "repeating", Metric: figures.ParamProcessorsLive, Below: true, Threshold: 1, Window: time.Second,
			Command: r.record("repeating"), Repeat: 5 * time.Second},
	}
	e := r.evaluator(0)
	r.pass(e)
	if got := testkit.QueryInt(t, r.pool, "SELECT count(*) FROM monitor_alerts WHERE NOT firing"); got != 2 {
		t.Fatalf("%d rules remembered as not firing, want 2", got)
	}

	r.live(false)
	r.pass(e)
	r.waitCalls("no-live", 1)
	r.waitCalls("repeating", 1)
	call := r.calls("no-live")[0]
	for _, want := range []string{"state=firing\n", "rule=no-live\n", "metric=processors_live\n", "value=0\n",
		"threshold=1\n", "message=Alert no-live firing: processors_live averaged 0 over the last 1s, below its threshold of 1.\n",
		"arg=a;b\narg=$(touch " + filepath.Join(r.dir, "pwned") + ")\narg=it's\n", "secret=none\n"} {
		if !strings.Contains(call, want) {
			t.Errorf("the command got\n%s\nwant %q in it", call, want)
		}
	}
	if _, err := os.Stat(filepath.Join(r.dir, "pwned")); err == nil {
		t.Error("an argument was run by a shell")
	}
	if n := strings.Count(r.log.String(), "level=WARN msg=\"Alert no-live firing"); n != 1 {
		t.Errorf("%d firing lines for no-live, want 1:\n%s", n, r.log)
	}

	// While the episode lasts, nothing new, until the repeat is due.
	r.pass(e)
	r.clock.Add(5 * time.Second)
	r.pass(e)
	r.waitCalls("repeating", 2)
	if !strings.Contains(r.log.String(), "Alert repeating still firing since") {
		t.Errorf("no repeat line:\n%s", r.log)
	}

	// A restart in the middle of the episode notifies nothing new.
	e2 := r.evaluator(0)
	r.pass(e2)
	r.pass(e2)
	r.live(true)
	r.pass(e2)
	r.waitCalls("no-live", 2)
	r.waitCalls("repeating", 3)
	e.commands.wait()
	e2.commands.wait()
	if got := len(r.calls("no-live")); got != 2 {
		t.Fatalf("no-live's command ran %d times, want 2 (firing, resolved)", got)
	}
	if got := r.calls("no-live")[1]; !strings.Contains(got, "state=resolved\n") || !strings.Contains(got, "value=1\n") {
		t.Errorf("the second call is not the resolution:\n%s", got)
	}
	if n := strings.Count(r.log.String(), "level=INFO msg=\"Alert no-live resolved"); n != 1 {
		t.Errorf("%d resolved lines for no-live, want 1:\n%s", n, r.log)
	}
	if got := testkit.QueryInt(t, r.pool, "SELECT count(*) FROM monitor_alerts WHERE firing"); got != 0 {
		t.Errorf("%d rules remembered as firing after the resolution", got)
	}
}

func TestResolvedWhileNoMonitorRan(t *testing.T) {
	r := newRig(t)
	r.rules = []Rule{{Name: "no-live", Metric: figures.ParamProcessorsLive, Below: true, Threshold: 1, Window: time.Second,
		Command: r.record("no-live")}}
	r.live(false)
	e := r.evaluator(0)
	r.pass(e)
	r.waitCalls("no-live", 1)
	// The monitor stops; the processor comes back; another starts.
	r.live(true)
	r.pass(r.evaluator(0))
	r.waitCalls("no-live", 2)
	if got := r.calls("no-live")[1]; !strings.Contains(got, "state=resolved") {
		t.Errorf("the second call is not the resolution:\n%s", got)
	}
}

func TestReloadKeepsAnUnchangedRuleAndRestartsAChangedOne(t *testing.T) {
	r := newRig(t)
	rule := Rule{Name: "no-live", Metric: figures.ParamProcessorsLive, Below: true, Threshold: 1, Window: time.Second,
		Command: r.record("no-live")}
	other := Rule{Name: "other", Metric: figures.ParamJobsQueued, Threshold: 10, Window: time.Second}
	r.rules = []Rule{rule}
	r.live(false)
	e := r.evaluator(0)
	r.pass(e)
	r.waitCalls("no-live", 1)

	r.rules = []Rule{other, rule} // same definition, another rule added
	r.pass(e)
	changed := rule
	changed.Threshold = 2 // a changed rule starts afresh: a new episode
	r.rules = []Rule{changed}
	r.pass(e)
	r.waitCalls("no-live", 2)
	e.commands.wait()
	if got := len(r.calls("no-live")); got != 2 {
		t.Errorf("the command ran %d times, want 2 (the first episode, then the changed rule's)", got)
	}
	if !strings.Contains(r.calls("no-live")[1], "threshold=2\n") {
		t.Errorf("the second call is not the changed rule's:\n%s", r.calls("no-live")[1])
	}
	rules := testkit.QueryColumn[string](t, r.pool, "SELECT rule FROM monitor_alerts ORDER BY rule")
	if !slices.Equal(rules, []string{"no-live"}) {
		t.Errorf("remembered rules %v, want only no-live", rules)
	}
}

func TestHangingCommandIsKilledWithoutHoldingUpEvaluation(t *testing.T) {
	r := newRig(t)
	pidFile := filepath.Join(r.dir, "child.pid")
	r.rules = []Rule{
		// The shell is the test's own command: its child, in the same
		// process group, must die with it.
		{Name: "hangs", Metric: figures.ParamProcessorsLive, Below: true, Threshold: 1, Window: time.Second,
			Command: testkit.HangingCommand(pidFile)},
		{Name: "quick", Metric: figures.ParamProcessorsLive, Below: true, Threshold: 1, Window: time.Second,
			Command: r.record("quick"), Repeat: time.Second},
	}
	r.live(false)
	e := r.evaluator(500 * time.Millisecond)
	r.pass(e)
	r.pass(e) // evaluates at once, while the first command still runs
	r.waitCalls("quick", 2)
	testkit.Eventually(t, "the hanging command to be killed", func() bool {
		return strings.Contains(r.log.String(), "alert command killed with its process group: it ran longer than 500ms")
	})
	e.commands.wait()
	testkit.WaitChildGone(t, pidFile)
}

func TestUnreadableFigureNeitherFiresNorResolves(t *testing.T) {
	r := newRig(t)
	down, err := pgxpool.New(t.Context(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(down.Close)
	r.figures = figures.New(figures.Options{DB: queue.NewStore(down), Now: r.clock.Now})
	r.rules = []Rule{{Name: "no-live", Metric: figures.ParamProcessorsLive, Below: true, Threshold: 1, Window: time.Second,
		Command: r.record("no-live")}}
	e := r.evaluator(0)
	r.pass(e)
	r.pass(e)
	if n := strings.Count(r.log.String(), "alert rule cannot read its figure"); n != 1 {
		t.Errorf("said %d times that the figure cannot be read, want once:\n%s", n, r.log)
	}
	if len(r.calls("no-live")) != 0 || strings.Contains(r.log.String(), "firing") {
		t.Errorf("a rule without its figure notified:\n%s", r.log)
	}
}

func TestRateRuleWaitsForASecondSample(t *testing.T) {
	r := newRig(t)
	r.rules = []Rule{{Name: "nothing-queued", Metric: figures.ParamQueuedPerSecond, Below: true, Threshold: 1, Window: time.Second}}
	e := r.evaluator(0)
	r.pass(e)
	if strings.Contains(r.log.String(), "firing") {
		t.Fatalf("a rate rule fired on the first sample, before any rate was measured:\n%s", r.log)
	}
	r.pass(e)
	if !strings.Contains(r.log.String(), "Alert nothing-queued firing: queued_per_second averaged 0") {
		t.Errorf("nothing queued over a second sample: no firing line:\n%s", r.log)
	}
}
