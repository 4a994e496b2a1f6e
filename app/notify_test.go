package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/testkit"
)

// sent records what a notifier sends; fail makes the sends fail.
type sent struct {
	mu   sync.Mutex
	msgs []string
	fail bool
}

func (s *sent) send(state string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("connection refused")
	}
	s.msgs = append(s.msgs, state)
	return nil
}

// take returns what was sent since the last take.
func (s *sent) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.msgs
	s.msgs = nil
	return m
}

// testNotifier is an enabled notifier that records its messages, on
// figures with a fake clock, logging DEBUG and up to the returned buffer.
func testNotifier() (*notifier, *sent, *testkit.Clock, *testkit.SyncBuffer) {
	clock := testkit.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	log := &testkit.SyncBuffer{}
	rec := &sent{}
	n := &notifier{
		logger:   slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		figures:  figures.New(figures.Options{Now: clock.Now}),
		enabled:  true,
		watchdog: time.Second,
		send:     rec.send,
	}
	n.figures.SetActive(true) // the active monitor, unless a test says otherwise
	return n, rec, clock, log
}

// wantSent fails the test unless got is want, message by message.
func wantSent(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("%s sent %q, want %q", what, got, want)
	}
}

func TestNotifierPhases(t *testing.T) {
	t.Parallel()
	n, rec, _, _ := testNotifier()
	n.reloading() // before READY=1: not a reload the service manager waits for
	n.reloaded()
	n.setStatus("connecting to the database")
	n.ready()
	wantSent(t, "start", rec.take(), "STATUS=connecting to the database",
		"READY=1\nSTATUS=running: 0 queued, 0 cleaned up in the last hour")

	n.setStatus("connecting to the database") // only while starting
	n.ready()                                 // once
	n.figures.Queued(figures.LoopScanner, 3)
	n.figures.Cleaned(figures.CleanedArchived, 2)
	n.refresh()
	n.refresh() // unchanged: not sent again
	wantSent(t, "running", rec.take(), "STATUS=running: 3 queued, 2 cleaned up in the last hour")

	// Another monitor took over: the status says this one stands by.
	n.figures.SetActive(false)
	n.refresh()
	wantSent(t, "standing by", rec.take(), "STATUS=standby: another monitor runs the loops")
	n.figures.SetActive(true)
	n.refresh()
	rec.take()

	n.reloading()
	n.reloading()
	n.reloaded()
	n.reloaded()
	got := rec.take()
	if len(got) != 2 {
		t.Fatalf("a reload sent %q, want RELOADING=1 then READY=1", got)
	}
	lines := strings.Split(got[0], "\n")
	if lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
		t.Errorf("reload start sent %q, want RELOADING=1 and MONOTONIC_USEC= in one message", got[0])
	}
	wantSent(t, "reload end", got[1:], "READY=1\nSTATUS=running: 3 queued, 2 cleaned up in the last hour")

	n.reloading()
	n.stopping()
	n.stopping()
	rec.take()
	n.reloaded()
	n.ready()
	n.ping()
	n.refresh()
	n.setStatus("connecting to the database")
	n.reloading()
	wantSent(t, "after the stop", rec.take())
}

func TestNotifierStopsBeforeReady(t *testing.T) {
	t.Parallel()
	n, rec, _, _ := testNotifier()
	n.setStatus("database unreachable, retrying in 1s (attempt 1)")
	n.stopping()
	n.ready()
	wantSent(t, "a stop while connecting", rec.take(),
		"STATUS=database unreachable, retrying in 1s (attempt 1)", "STOPPING=1\nSTATUS=stopping")
}

// TestNotifierWatchdogFollowsHealth: no WATCHDOG=1 while a loop is stuck,
// said once in the log and in the status; the pings resume with progress.
func TestNotifierWatchdogFollowsHealth(t *testing.T) {
	t.Parallel()
	n, rec, clock, log := testNotifier()
	n.ready()
	n.figures.PassStarted(figures.LoopScanner, time.Minute)
	n.ping()
	rec.take()

	clock.Add(2*time.Minute + figures.StuckGrace + time.Second)
	n.ping()
	n.ping()
	wantSent(t, "a stuck loop", rec.take(), "STATUS=unhealthy: the scanner loop has made no progress for 3m1s")
	if c := strings.Count(log.String(), "watchdog pings withheld"); c != 1 {
		t.Errorf("withheld pings logged %d times, want once:\n%s", c, log)
	}
	n.refresh()
	wantSent(t, "a refresh while stuck", rec.take())

	n.figures.Progress(figures.LoopScanner, 10)
	n.ping()
	n.refresh()
	wantSent(t, "progress", rec.take(), "WATCHDOG=1", "STATUS=running: 0 queued, 0 cleaned up in the last hour")
	if !strings.Contains(log.String(), "watchdog pings resume") {
		t.Errorf("the resumed pings are not logged:\n%s", log)
	}
}

func TestNotifierSendFailuresLoggedOnce(t *testing.T) {
	t.Parallel()
	n, rec, _, log := testNotifier()
	rec.fail = true
	n.setStatus("connecting to the database")
	n.ready()
	n.ping()
	n.ping()
	if c := strings.Count(log.String(), "level=WARN msg=\"service manager not notified"); c != 1 {
		t.Errorf("failed sends logged %d times at WARN, want once:\n%s", c, log)
	}
	rec.fail = false
	n.ping()
	rec.fail = true
	n.ping()
	if c := strings.Count(log.String(), "level=WARN"); c != 2 {
		t.Errorf("a failure after a send went through logged %d warnings in all, want 2:\n%s", c, log)
	}
}

func TestNotifierDisabled(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "1000")
	n := newNotifier(slog.New(slog.DiscardHandler), figures.New(figures.Options{}))
	n.send = func(state string) error {
		t.Errorf("sent %q without NOTIFY_SOCKET", state)
		return nil
	}
	stop := n.start(t.Context())
	n.setStatus("connecting to the database")
	n.ready()
	n.reloading()
	n.reloaded()
	n.stopping()
	stop()
}

// listenNotify opens a datagram socket for a notifier in a directory of
// the test's, and points NOTIFY_SOCKET at it.
func listenNotify(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

// receive reads the next message, failing the test after timeout.
func receive(t *testing.T, conn *net.UnixConn, timeout time.Duration) string {
	t.Helper()
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(timeout))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no message within %s: %v", timeout, err)
	}
	return string(buf[:n])
}

// TestNotifierSocket: through a real socket, WATCHDOG_USEC sets the pings'
// pace, MONOTONIC_USEC is the monotonic clock, and the end of the context
// sends STOPPING=1.
func TestNotifierSocket(t *testing.T) {
	conn := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", "")
	n := newNotifier(slog.New(slog.DiscardHandler), figures.New(figures.Options{}))
	if n.watchdog != 200*time.Millisecond {
		t.Fatalf("watchdog = %s, want 200ms from WATCHDOG_USEC", n.watchdog)
	}
	ctx, cancel := context.WithCancel(t.Context())
	stop := n.start(ctx)
	defer stop()

	for range 3 {
		if m := receive(t, conn, testkit.WaitTimeout()); m != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", m)
		}
	}
	n.ready()
	for m := receive(t, conn, testkit.WaitTimeout()); !strings.HasPrefix(m, "READY=1\n"); m = receive(t, conn, testkit.WaitTimeout()) {
		if m != "WATCHDOG=1" {
			t.Fatalf("got %q, want READY=1", m)
		}
	}

	before := monotonic(t)
	n.reloading()
	after := monotonic(t)
	m := receive(t, conn, testkit.WaitTimeout())
	for m == "WATCHDOG=1" {
		m = receive(t, conn, testkit.WaitTimeout())
	}
	fields := strings.Split(m, "\n")
	if fields[0] != "RELOADING=1" || !strings.HasPrefix(fields[1], "MONOTONIC_USEC=") {
		t.Fatalf("reload start sent %q, want RELOADING=1 and MONOTONIC_USEC=", m)
	}
	usec, err := strconv.ParseInt(strings.TrimPrefix(fields[1], "MONOTONIC_USEC="), 10, 64)
	if err != nil || usec < before || usec > after {
		t.Errorf("MONOTONIC_USEC=%d (%v), want within [%d, %d]", usec, err, before, after)
	}

	cancel()
	for m := receive(t, conn, testkit.WaitTimeout()); m != "STOPPING=1\nSTATUS=stopping"; m = receive(t, conn, testkit.WaitTimeout()) {
		if m != "WATCHDOG=1" {
			t.Fatalf("got %q, want STOPPING=1", m)
		}
	}
	stop()
}

// TestNotifierWatchdogOtherPID: WATCHDOG_PID naming another process turns
// the pings off.
func TestNotifierWatchdogOtherPID(t *testing.T) {
	listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", "1")
	if n := newNotifier(slog.New(slog.DiscardHandler), figures.New(figures.Options{})); n.watchdog != 0 {
		t.Errorf("watchdog = %s with WATCHDOG_PID=1, want none", n.watchdog)
	}
}

// monotonic reads CLOCK_MONOTONIC in microseconds.
func monotonic(t *testing.T) int64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}
