package priority

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/crashfixture"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

const checkIn = 5 * time.Minute

// bundle is a priority loop over two temporary trees and a schema of its own.
type bundle struct {
	pool               *pgxpool.Pool
	app                string // application_name of the loop's connections
	standard, deferred *crashstore.Store
	loop               *Loop
	log                *logRecorder
}

// setup builds a loop with cfg (DelayFunc and CheckInFunc default to an
// hour and checkIn). Its connections carry an application_name of their
// own, so that a test can find its listener among the server's backends.
func setup(t *testing.T, cfg Config) *bundle {
	t.Helper()
	base := pgtest.Schema(t)
	pcfg := base.Config()
	app := "priority_test_" + strings.ToLower(rand.Text()[:10])
	pcfg.ConnConfig.RuntimeParams["application_name"] = app
	pool, err := pgxpool.NewWithConfig(t.Context(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	dir := t.TempDir()
	b := &bundle{
		pool:     pool,
		app:      app,
		standard: crashstore.New(filepath.Join(dir, "toBeProcessed"), crashstore.Options{GID: -1}),
		deferred: crashstore.New(filepath.Join(dir, "toBeDeferred"), crashstore.Options{GID: -1}),
		log:      newLogRecorder(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if cfg.DelayFunc == nil {
		cfg.DelayFunc = func() time.Duration { return time.Hour }
	}
	if cfg.CheckInFunc == nil {
		cfg.CheckInFunc = func() time.Duration { return checkIn }
	}
	b.loop = New(cfg, b.standard, b.deferred, queue.NewStore(pool), slog.New(b.log))
	return b
}

// exec runs sql and fails the test on error.
func (b *bundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := b.pool.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// int64s runs a query returning one bigint column.
func (b *bundle) int64s(t *testing.T, sql string, args ...any) []int64 {
	t.Helper()
	return testkit.QueryColumn[int64](t, b.pool, sql, args...)
}

// strings runs a query returning one text column, sorted.
func (b *bundle) strings(t *testing.T, sql string, args ...any) []string {
	t.Helper()
	out := testkit.QueryColumn[string](t, b.pool, sql, args...)
	slices.Sort(out)
	return out
}

// processors registers processors last seen ago (database clock), each
// with its priority_jobs_<id> table as a classic processor creates it.
func (b *bundle) processors(t *testing.T, ago ...time.Duration) []int64 {
	t.Helper()
	ids := testkit.Processors(t, b.pool, ago...)
	testkit.PriorityTables(t, b.pool, ids...)
	return ids
}

// live registers n live processors.
func (b *bundle) live(t *testing.T, n int) []int64 {
	t.Helper()
	return b.processors(t, make([]time.Duration, n)...)
}

// request inserts ids into priorityjobs as the reporter does.
func (b *bundle) request(t *testing.T, ids ...string) {
	t.Helper()
	if _, err := queue.NewStore(b.pool).RequestPriority(t.Context(), ids); err != nil {
		t.Fatal(err)
	}
}

// requests returns what is left in priorityjobs.
func (b *bundle) requests(t *testing.T) []string {
	t.Helper()
	return b.strings(t, `SELECT uuid FROM priorityjobs`)
}

// jobRow is the part of a jobs row the priority loop sets.
type jobRow struct {
	owner, priority int64
	started         bool
}

// job returns the row of id, and false when there is none.
func (b *bundle) job(t *testing.T, id string) (jobRow, bool) {
	t.Helper()
	var j jobRow
	err := b.pool.QueryRow(t.Context(),
		`SELECT coalesce(owner, 0), coalesce(priority, 0), starteddatetime IS NOT NULL FROM jobs WHERE uuid = $1`, id).
		Scan(&j.owner, &j.priority, &j.started)
	if err == pgx.ErrNoRows {
		return j, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return j, true
}

// pending returns the ids waiting in priority_jobs_<id>, sorted.
func (b *bundle) pending(t *testing.T, id int64) []string {
	t.Helper()
	return b.strings(t, fmt.Sprintf(`SELECT uuid FROM priority_jobs_%d`, id))
}

// enqueue queues ids as the scanner does, with priority 0.
func (b *bundle) enqueue(t *testing.T, ids ...string) {
	t.Helper()
	if _, err := queue.NewStore(b.pool).Enqueue(t.Context(), ids, 0, checkIn, nil); err != nil {
		t.Fatal(err)
	}
}

// put writes the classic fixtures of set into s, settled, and returns their
// entries by id.
func put(t *testing.T, s *crashstore.Store, set string) map[string]crashstore.Entry {
	t.Helper()
	out := map[string]crashstore.Entry{}
	for _, fx := range crashfixture.Classic(t, set) {
		out[fx.ID] = write(t, s, fx.ID, fx.Webhead, fx.At)
	}
	return out
}

// write stores a settled pair (files an hour old) submitted at at.
func write(t *testing.T, s *crashstore.Store, id, webhead string, at time.Time) crashstore.Entry {
	t.Helper()
	p := testkit.Pair{ID: id, Webhead: webhead, At: at, Dump: []byte("dump of " + id + "\n"), JSON: []byte("json of " + id + "\n")}
	return testkit.WritePairs(t, s, nil, p)[0]
}

// age sets the modification time of paths an hour back, past any settle.
var age = testkit.Settle

// present reports whether something is at p (a dangling link counts).
func present(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Lstat(p)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return err == nil
}

// runOnce runs a pass and fails the test on error.
func (b *bundle) runOnce(t *testing.T) Result {
	t.Helper()
	res, err := b.loop.RunOnce(t.Context())
	if err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	return res
}

// start runs the loop until the test ends, and returns a function that
// stops it and returns Run's error.
func (b *bundle) start(t *testing.T) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.loop.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(testkit.WaitTimeout()):
				t.Fatalf("Run did not return within %s of the cancel", testkit.WaitTimeout())
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// eventually polls cond until it holds, failing the test after
// testkit.WaitTimeout.
var eventually = testkit.Eventually

// listenerPIDs returns the backends of the loop's listener.
func (b *bundle) listenerPIDs(t *testing.T) []int64 {
	t.Helper()
	return b.int64s(t, `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query ILIKE 'LISTEN%'`,
		b.app+" priority listener")
}

// logRecorder is a slog.Handler that keeps every record (and shows it in
// the test output).
type logRecorder struct {
	out   slog.Handler
	mu    *sync.Mutex
	lines *[]logLine
	attrs []slog.Attr
}

// logLine is one recorded record: level, message and attributes rendered
// as key=value.
type logLine struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func newLogRecorder(out slog.Handler) *logRecorder {
	return &logRecorder{out: out, mu: &sync.Mutex{}, lines: &[]logLine{}}
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(ctx context.Context, rec slog.Record) error {
	line := logLine{level: rec.Level, msg: rec.Message, attrs: map[string]string{}}
	for _, a := range r.attrs {
		line.attrs[a.Key] = a.Value.String()
	}
	rec.Attrs(func(a slog.Attr) bool {
		line.attrs[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	*r.lines = append(*r.lines, line)
	r.mu.Unlock()
	return r.out.Handle(ctx, rec)
}

func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{out: r.out.WithAttrs(as), mu: r.mu, lines: r.lines, attrs: slices.Concat(r.attrs, as)}
}

func (r *logRecorder) WithGroup(name string) slog.Handler {
	return &logRecorder{out: r.out.WithGroup(name), mu: r.mu, lines: r.lines, attrs: r.attrs}
}

// find returns the recorded lines at level whose message contains msg.
func (r *logRecorder) find(level slog.Level, msg string) []logLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []logLine
	for _, l := range *r.lines {
		if l.level == level && strings.Contains(l.msg, msg) {
			out = append(out, l)
		}
	}
	return out
}

// uuids returns the uuid attributes of lines, sorted.
func uuids(lines []logLine) []string {
	var out []string
	for _, l := range lines {
		out = append(out, l.attrs["uuid"])
	}
	slices.Sort(out)
	return out
}
