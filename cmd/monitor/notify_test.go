package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
)

// notifyWatchdog is the watchdog timeout the test gives the daemon: it must
// ping every half of it.
const notifyWatchdog = 2 * time.Second

// notifyMsg is one datagram the daemon sent, with when it arrived.
type notifyMsg struct {
	text string
	at   time.Time
}

// fields returns the message's KEY=VALUE lines as a map.
func (m notifyMsg) fields() map[string]string {
	f := map[string]string{}
	for line := range strings.Lines(m.text) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		f[k] = v
	}
	return f
}

// notifyDaemon is `monitor run` under a fake service manager: a datagram
// socket that NOTIFY_SOCKET names.
type notifyDaemon struct {
	t    *testing.T
	conn *net.UnixConn
	proc *testkit.Proc
	mu   sync.Mutex
	seen []string // every message read, for failure reports
}

// startNotifyDaemon writes a configuration on the database at dbURL and
// starts the monitor with NOTIFY_SOCKET and WATCHDOG_USEC.
func startNotifyDaemon(t *testing.T, dbURL string) *notifyDaemon {
	t.Helper()
	dir := t.TempDir()
	cfg := testkit.BaseConfig(dir, dbURL)
	path := filepath.Join(dir, "monitor.yaml")
	cfg.Write(t, path)

	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	env := []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=" + strconv.FormatInt(notifyWatchdog.Microseconds(), 10)}
	return &notifyDaemon{t: t, conn: conn, proc: testkit.StartProcEnv(t, monitorBin, cfg["logFilePathname"], env, "run", "-c", path)}
}

// report is what the daemon said so far, for a failure.
func (d *notifyDaemon) report() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fmt.Sprintf("messages: %q\nstderr:\n%s\nlog:\n%s", d.seen, d.proc.Stderr(), d.proc.LogText())
}

// next reads the next message, failing the test when none comes within
// notifyWait.
func (d *notifyDaemon) next() notifyMsg {
	d.t.Helper()
	buf := make([]byte, 4096)
	d.conn.SetReadDeadline(time.Now().Add(testkit.WaitTimeout()))
	n, err := d.conn.Read(buf)
	if err != nil {
		d.t.Fatalf("no message from the monitor within %s (%v)\n%s", testkit.WaitTimeout(), err, d.report())
	}
	m := notifyMsg{text: string(buf[:n]), at: time.Now()}
	d.mu.Lock()
	d.seen = append(d.seen, m.text)
	d.mu.Unlock()
	return m
}

// until reads messages until one has key, and returns it with those read
// before it.
func (d *notifyDaemon) until(key string) (notifyMsg, []notifyMsg) {
	d.t.Helper()
	var before []notifyMsg
	for {
		m := d.next()
		if _, ok := m.fields()[key]; ok {
			return m, before
		}
		before = append(before, m)
	}
}

// signal sends sig to the monitor.
func (d *notifyDaemon) signal(sig syscall.Signal) {
	d.t.Helper()
	d.proc.Signal(d.t, sig)
}

// monotonicUsec reads CLOCK_MONOTONIC in microseconds, as the monitor does.
func monotonicUsec(t *testing.T) int64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}

// TestNotifySystemd: under a service manager, `monitor run` says it is
// ready once connected, says what it does, pings the watchdog every half of
// WATCHDOG_USEC, brackets a SIGHUP reload with RELOADING=1 (and the
// monotonic time) and READY=1, and says STOPPING=1 before exiting 0 after
// SIGTERM.
func TestNotifySystemd(t *testing.T) {
	t.Parallel()
	d := startNotifyDaemon(t, testkit.SchemaURL(t, pgtest.Schema(t)))

	ready, before := d.until("READY")
	var statuses []string
	for _, m := range before {
		if s, ok := m.fields()["STATUS"]; ok {
			statuses = append(statuses, s)
		}
	}
	if !strings.Contains(strings.Join(statuses, "|"), "connecting to the database") {
		t.Errorf("no STATUS=connecting to the database before READY=1; statuses %q", statuses)
	}
	if s := ready.fields()["STATUS"]; !strings.HasPrefix(s, "running: ") {
		t.Errorf("READY=1 came with STATUS=%q, want the running status", s)
	}

	// WATCHDOG=1 every half of the timeout; the slack covers a loaded
	// machine, well inside the timeout itself.
	const pings = 4
	maxGap := notifyWatchdog/2 + notifyWatchdog/4
	var last time.Time
	for i := 0; i < pings; {
		m := d.next()
		if m.text != "WATCHDOG=1" {
			continue
		}
		if !last.IsZero() {
			if gap := m.at.Sub(last); gap > maxGap {
				t.Errorf("WATCHDOG=1 %s after the previous one, want at most %s", gap, maxGap)
			}
		}
		last = m.at
		i++
	}

	start := monotonicUsec(t)
	d.signal(syscall.SIGHUP)
	reloading, _ := d.until("RELOADING")
	end := monotonicUsec(t)
	f := reloading.fields()
	if f["RELOADING"] != "1" {
		t.Errorf("reload start sent %q, want RELOADING=1", reloading.text)
	}
	usec, err := strconv.ParseInt(f["MONOTONIC_USEC"], 10, 64)
	if err != nil || usec < start || usec > end {
		t.Errorf("RELOADING=1 came with MONOTONIC_USEC=%q, want the monotonic time in µs, within [%d, %d]",
			f["MONOTONIC_USEC"], start, end)
	}
	_, others := d.until("READY")
	for _, m := range others {
		if m.text != "WATCHDOG=1" && !strings.HasPrefix(m.text, "STATUS=") {
			t.Errorf("between RELOADING=1 and READY=1 the monitor sent %q", m.text)
		}
	}

	d.stop()
	if log := d.proc.LogText(); !strings.Contains(log, "service manager notifications on") {
		t.Errorf("the log does not say that notifications are on:\n%s", log)
	}
}

// TestNotifyUnreachableDatabase: while the database does not answer, the
// status says so and READY=1 is not sent; SIGTERM still stops the monitor
// with STOPPING=1 and exit code 0.
func TestNotifyUnreachableDatabase(t *testing.T) {
	t.Parallel()
	d := startNotifyDaemon(t, "postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
	m, before := d.until("STATUS")
	for !strings.HasPrefix(m.fields()["STATUS"], "database unreachable, retrying in 1s") {
		before = append(before, m)
		m, _ = d.until("STATUS")
	}
	for _, m := range before {
		if _, ok := m.fields()["READY"]; ok {
			t.Fatalf("READY=1 without a database\n%s", d.report())
		}
	}
	d.stop()
}

// stop sends SIGTERM and checks that STOPPING=1 comes, the monitor exits 0
// and says nothing more.
func (d *notifyDaemon) stop() {
	t := d.t
	t.Helper()
	d.signal(syscall.SIGTERM)
	stopping, _ := d.until("STOPPING")
	if stopping.fields()["STOPPING"] != "1" {
		t.Errorf("stop sent %q, want STOPPING=1", stopping.text)
	}
	if !d.proc.Exited(testkit.WaitTimeout()) {
		t.Fatalf("monitor did not exit within %s of SIGTERM\n%s", testkit.WaitTimeout(), d.report())
	}
	if code := d.proc.Code(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0\n%s", code, d.report())
	}
	// Everything sent is queued by now: nothing may follow STOPPING=1.
	d.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	buf := make([]byte, 4096)
	for {
		n, err := d.conn.Read(buf)
		if err != nil {
			break
		}
		t.Errorf("after STOPPING=1 the monitor sent %q", buf[:n])
	}
}
