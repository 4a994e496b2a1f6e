package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/testkit"
)

// newTestOutage returns an outage tracker on a settable clock, logging to
// the returned buffer, with figures of its own.
func newTestOutage() (*outage, *testkit.Clock, *testkit.SyncBuffer, *figures.Figures) {
	var buf testkit.SyncBuffer
	clk := testkit.NewClock(time.Now())
	f := figures.New(figures.Options{Now: clk.Now})
	o, _ := newOutageTrackers(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), f, false)
	o.now = clk.Now
	return o, clk, &buf, f
}

// databaseEvents returns the texts of the database events of f.
func databaseEvents(f *figures.Figures) []string {
	var out []string
	for _, e := range f.Events() {
		if e.Kind == figures.EventDatabase {
			out = append(out, e.Text)
		}
	}
	return out
}

func TestOutageLoggedOnce(t *testing.T) {
	t.Parallel()
	o, clk, buf, f := newTestOutage()
	refused := fmt.Errorf("scan: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	back := o.Back()
	// Three loops and the listener fail, again and again, for 30 s.
	for range 30 {
		for range 4 {
			if !o.Failed(refused) {
				t.Fatal("a refused connection is not an outage")
			}
		}
		clk.Add(time.Second)
	}
	select {
	case <-back:
		t.Fatal("Back closed during the outage")
	default:
	}
	o.Answered()
	o.Answered() // the other loops
	select {
	case <-back:
	default:
		t.Error("Back not closed when the database answered again")
	}
	log := buf.String()
	if n := strings.Count(log, "database unreachable"); n != 1 {
		t.Errorf("%d unreachable lines, want 1:\n%s", n, log)
	}
	if n := strings.Count(log, "database answers again after 30s"); n != 1 {
		t.Errorf("%d lines of the end, want 1 saying it lasted 30s:\n%s", n, log)
	}
	if n := strings.Count(log, "\n"); n != 2 {
		t.Errorf("%d lines logged, want 2:\n%s", n, log)
	}
	if got := databaseEvents(f); len(got) != 2 || !strings.Contains(got[0], "does not answer") || !strings.Contains(got[1], "answers again") {
		t.Errorf("database events %q, want the outage's start and end", got)
	}
}

func TestOutageShorterThanGraceIsALostConnection(t *testing.T) {
	t.Parallel()
	o, clk, buf, f := newTestOutage()
	killed := &pgconn.PgError{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"}
	o.Failed(killed)
	clk.Add(outageGrace / 2)
	o.Failed(killed)
	o.Answered()
	log := buf.String()
	if strings.Contains(log, "unreachable") || strings.Contains(log, "answers again") {
		t.Errorf("a connection replaced at once was logged as an outage:\n%s", log)
	}
	if n := strings.Count(log, "level=WARN msg=\"a database connection was lost"); n != 1 || strings.Count(log, "\n") != 1 {
		t.Errorf("want one warning about the lost connection:\n%s", log)
	}
	if got := databaseEvents(f); len(got) != 0 {
		t.Errorf("database events %q for a lost connection", got)
	}
}

func TestOutageIgnoresOtherErrors(t *testing.T) {
	t.Parallel()
	o, clk, buf, _ := newTestOutage()
	if o.Failed(errors.New("disk full")) || o.Failed(&pgconn.PgError{Code: "42P01"}) {
		t.Error("errors of the statement taken for an outage")
	}
	clk.Add(time.Minute)
	o.Answered()
	if o.Failed(syscall.ECONNREFUSED) != true {
		t.Error("a refused connection is not an outage")
	}
	if log := buf.String(); log != "" {
		t.Errorf("logged:\n%s", log)
	}
}

// TestOutagePooledApart: behind a pooler, the listener's direct connection
// failing while the loops' connections answer is one outage, logged once,
// not one that each successful pass ends.
func TestOutagePooledApart(t *testing.T) {
	t.Parallel()
	var buf testkit.SyncBuffer
	clk := testkit.NewClock(time.Now())
	loops, listener := newOutageTrackers(slog.New(slog.NewTextHandler(&buf, nil)), figures.New(figures.Options{Now: clk.Now}), true)
	loops.now, listener.now = clk.Now, clk.Now
	refused := fmt.Errorf("listen: %w", syscall.ECONNREFUSED)
	for range 20 {
		listener.Failed(refused)
		loops.Answered()
		clk.Add(time.Second)
	}
	log := buf.String()
	if n := strings.Count(log, "database unreachable through databaseSessionURL"); n != 1 || strings.Count(log, "\n") != 1 {
		t.Errorf("want one line saying the session connections fail:\n%s", log)
	}
	listener.Answered()
	if !strings.Contains(buf.String(), "database answers again through databaseSessionURL after 20s") {
		t.Errorf("the end of the outage not logged:\n%s", buf.String())
	}
}
