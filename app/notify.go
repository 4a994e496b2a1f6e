package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"github.com/crashmonitor/monitor/figures"
)

// statusEvery is how often the running status is refreshed, at most.
const statusEvery = 5 * time.Second

// phase is where the daemon is, as the service manager is told.
type phase int

const (
	phaseStarting  phase = iota // connecting, checking the schema
	phaseReady                  // READY=1 sent: the loops run
	phaseReloading              // RELOADING=1 sent, READY=1 not yet
	phaseStopping               // STOPPING=1 sent: nothing more is said
)

// notifier tells a service manager (systemd) what the daemon does, through
// the notify protocol on the datagram socket that NOTIFY_SOCKET names:
// STATUS= lines while it connects, READY=1 once its loops run, the running
// status at most every few seconds, RELOADING=1 (with MONOTONIC_USEC=) and
// READY=1 around a reload, and STOPPING=1. When WATCHDOG_USEC is set it
// sends WATCHDOG=1 every half of that, but only while the figures' health
// check passes: a stuck loop lets the watchdog expire, so that the service
// manager restarts the daemon.
//
// Without NOTIFY_SOCKET it sends nothing. A failure to send is logged once
// (until a send works again) and changes nothing else. Its methods are safe
// for concurrent use; each phase change is sent at most once and in order.
type notifier struct {
	logger  *slog.Logger
	figures *figures.Figures
	// enabled is set when NOTIFY_SOCKET names a socket.
	enabled bool
	// watchdog is the service manager's watchdog timeout (WATCHDOG_USEC);
	// zero means none.
	watchdog time.Duration
	// send sends one datagram; tests replace it.
	send func(state string) error

	// mu serialises the sends, so that a refresh cannot overtake a phase
	// change, and guards what follows.
	mu       sync.Mutex
	phase    phase
	status   string // the last STATUS= sent
	failing  bool   // the last send failed, and that was logged
	withheld bool   // watchdog pings are withheld: a loop is stuck
}

// newNotifier returns the notifier of the process, reading NOTIFY_SOCKET
// and WATCHDOG_USEC (and WATCHDOG_PID, which must then be this process's)
// from the environment, which it leaves as it is.
func newNotifier(logger *slog.Logger, f *figures.Figures) *notifier {
	n := &notifier{logger: logger, figures: f, send: sdNotify}
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return n
	}
	n.enabled = true
	wd, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		logger.Warn("service manager: watchdog setting ignored", "error", err)
	}
	n.watchdog = wd
	return n
}

// sdNotify sends state to the socket that NOTIFY_SOCKET names.
func sdNotify(state string) error {
	_, err := daemon.SdNotify(false, state)
	return err
}

// start runs the notifier's pings and refreshes until ctx is done or the
// returned function is called, which waits for them to end; either way
// STOPPING=1 is then sent, unless it was already.
func (n *notifier) start(ctx context.Context) (stop func()) {
	if !n.enabled {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { n.run(ctx) })
	return func() {
		cancel()
		wg.Wait()
	}
}

// run pings the watchdog and refreshes the running status until ctx is
// done, then says the daemon stops.
func (n *notifier) run(ctx context.Context) {
	n.logger.Info("service manager notifications on", "socket", os.Getenv("NOTIFY_SOCKET"), "watchdog", n.watchdog)
	var pings <-chan time.Time
	if n.watchdog > 0 {
		t := time.NewTicker(n.watchdog / 2)
		defer t.Stop()
		pings = t.C
		n.ping()
	}
	refresh := time.NewTicker(statusEvery)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			n.stopping()
			return
		case <-pings:
			n.ping()
		case <-refresh.C:
			n.refresh()
		}
	}
}

// setStatus says what the daemon is doing while it starts.
func (n *notifier) setStatus(text string) {
	if !n.enabled {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.phase == phaseStarting {
		n.sendLocked("STATUS=" + text)
	}
}

// ready says that the daemon has started: it is connected, its schema
// checked and its loops running.
func (n *notifier) ready() {
	n.change(phaseStarting, phaseReady, "READY=1")
}

// reloading says that a reload of the configuration begins. The monotonic
// time lets a service manager that sent SIGHUP tell this reload from an
// earlier one.
func (n *notifier) reloading() {
	state := "RELOADING=1"
	if usec, err := monotonicUsec(); err == nil {
		state += fmt.Sprintf("\nMONOTONIC_USEC=%d", usec)
	} else {
		n.logger.Debug("service manager: no monotonic clock", "error", err)
	}
	n.change(phaseReady, phaseReloading, state+"\nSTATUS=reloading the configuration")
}

// reloaded says that the reload has ended, whether it applied settings,
// found nothing changed or kept the running settings after an error.
func (n *notifier) reloaded() {
	n.change(phaseReloading, phaseReady, "READY=1")
}

// stopping says that the daemon stops; nothing is sent after it.
func (n *notifier) stopping() {
	if !n.enabled {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.phase != phaseStopping {
		n.phase = phaseStopping
		n.sendLocked("STOPPING=1\nSTATUS=stopping")
	}
}

// change moves from phase from to phase to, sending state with the running
// status; in any other phase it does nothing.
func (n *notifier) change(from, to phase, state string) {
	if !n.enabled {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.phase != from {
		return
	}
	n.phase = to
	if to == phaseReady {
		state += "\nSTATUS=" + n.runningStatus()
	}
	n.sendLocked(state)
}

// ping sends WATCHDOG=1 when every loop makes progress. When one is stuck
// it sends none, and says so once in the log.
func (n *notifier) ping() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.phase == phaseStopping {
		return
	}
	if ok, why := n.figures.Health(); !ok {
		if !n.withheld {
			n.withheld = true
			n.logger.Error("watchdog pings withheld: the service manager will restart the monitor", "reason", why)
			if n.phase == phaseReady {
				n.sendLocked("STATUS=unhealthy: " + why)
			}
		}
		return
	}
	if n.withheld {
		n.withheld = false
		n.logger.Info("every loop makes progress again: watchdog pings resume")
	}
	n.sendLocked("WATCHDOG=1")
}

// refresh sends the running status when it has changed.
func (n *notifier) refresh() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.phase != phaseReady {
		return
	}
	if s := n.runningStatus(); s != n.status {
		n.sendLocked("STATUS=" + s)
	}
}

// runningStatus is the status of the running daemon, from its figures.
func (n *notifier) runningStatus() string {
	if ok, why := n.figures.Health(); !ok {
		return "unhealthy: " + why
	}
	if !n.figures.Active() {
		return "standby: another monitor runs the loops"
	}
	var queued, cleaned int64
	for _, m := range n.figures.Throughput() {
		queued, cleaned = queued+m.Queued, cleaned+m.Cleaned
	}
	s := fmt.Sprintf("running: %d queued, %d cleaned up in the last hour", queued, cleaned)
	if in := n.figures.Inbox(); in != nil && in.Complete > 0 {
		s += fmt.Sprintf("; %d complete pairs wait in the inbox", in.Complete)
	}
	return s
}

// sendLocked sends state and remembers the status it carries. A failure
// is logged once, until a send works again. n.mu must be held.
func (n *notifier) sendLocked(state string) {
	if err := n.send(state); err != nil {
		if !n.failing {
			n.failing = true
			n.logger.Warn("service manager not notified; further failures are not logged until a message goes through",
				"socket", os.Getenv("NOTIFY_SOCKET"), "error", err)
		}
		return
	}
	if n.failing {
		n.failing = false
		n.logger.Debug("service manager notified again")
	}
	if s, ok := statusOf(state); ok {
		n.status = s
	}
}

// statusOf returns the STATUS= field of a message.
func statusOf(state string) (string, bool) {
	for line := range strings.Lines(state) {
		if s, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "STATUS="); ok {
			return s, true
		}
	}
	return "", false
}

// monotonicUsec reads CLOCK_MONOTONIC in microseconds, the clock the
// service manager compares MONOTONIC_USEC= with.
func monotonicUsec() (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, err
	}
	return ts.Nano() / 1000, nil
}
