package faultsuite

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/internal/testkit"
)

// buildMonitor builds the monitor binary into dir, with the race detector
// when the suite runs under it, and returns its path.
func buildMonitor(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "monitor")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "github.com/crashmonitor/monitor/cmd/monitor")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the monitor: %v\n%s", err, out)
	}
	return bin
}

// monitorSet is the `monitor run` processes, in slots: each slot is one
// monitor, killed and started again by the faults. A start gets a
// configuration file and a log file of its own (a running monitor watches
// its file, and testkit's HTTPAddr reads the latest address of a log).
type monitorSet struct {
	t   *testing.T
	bin string
	dir string
	cfg testkit.Config
	out io.Writer

	mu    sync.Mutex // slots' proc and addr, read by the soak's sampler
	slots []monitorSlot

	starts     int
	kills      int
	exits      []string // unexpected exits: what the monitor said
	supervised []string // restarts of monitors that did not resume: why
}

// monitorSlot is one monitor.
type monitorSlot struct {
	proc *testkit.Proc // nil while it is down
	addr string        // its HTTP address
}

func newMonitorSet(t *testing.T, bin, dir string, cfg testkit.Config, n int, out io.Writer) *monitorSet {
	for _, sub := range []string{"logs", "config"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &monitorSet{t: t, bin: bin, dir: dir, cfg: cfg, out: out, slots: make([]monitorSlot, n)}
}

// start starts monitor i (down) and waits for its HTTP server, which comes
// up before the database is reached.
func (m *monitorSet) start(i int) {
	t := m.t
	t.Helper()
	m.starts++
	cfg := maps.Clone(m.cfg)
	name := fmt.Sprintf("monitor-%d-%03d", i, m.starts)
	cfg["logFilePathname"] = filepath.Join(m.dir, "logs", name+".log")
	path := filepath.Join(m.dir, "config", name+".yaml")
	cfg.Write(t, path)
	p := testkit.StartProc(t, m.bin, cfg["logFilePathname"], "run", "-c", path)
	addr := p.HTTPAddr(t)
	m.mu.Lock()
	m.slots[i] = monitorSlot{proc: p, addr: addr}
	m.mu.Unlock()
}

// kill kills monitor i with SIGKILL; it stays down until started again.
func (m *monitorSet) kill(i int) {
	m.t.Helper()
	m.mu.Lock()
	p := m.slots[i].proc
	m.slots[i] = monitorSlot{}
	m.mu.Unlock()
	if p == nil {
		return
	}
	m.kills++
	if !p.Exited(time.Millisecond) {
		p.Kill(m.t)
	}
}

// up reports whether monitor i runs (started and not exited).
func (m *monitorSet) up(i int) bool {
	m.mu.Lock()
	p := m.slots[i].proc
	m.mu.Unlock()
	return p != nil && !p.Exited(time.Millisecond)
}

// down returns the slots whose monitor is not running.
func (m *monitorSet) down() []int {
	var out []int
	for i := range m.slots {
		if !m.up(i) {
			out = append(out, i)
		}
	}
	return out
}

// supervise starts again every monitor that exited without being killed,
// as systemd's Restart=on-failure does, noting what it said.
func (m *monitorSet) supervise() {
	m.t.Helper()
	for i := range m.slots {
		m.mu.Lock()
		p := m.slots[i].proc
		m.mu.Unlock()
		if p == nil || !p.Exited(time.Millisecond) {
			continue
		}
		note := fmt.Sprintf("monitor %d (pid %d) exited with code %d: %s", i, p.PID(), p.Code(), lastLine(p.Stderr()))
		m.exits = append(m.exits, note)
		fmt.Fprintf(m.out, "    supervisor: %s; starting it again\n", note)
		m.start(i)
	}
}

// restartAll kills and starts every monitor: what an operator (or a
// watchdog) does with monitors that stopped making progress.
func (m *monitorSet) restartAll(why string) {
	m.t.Helper()
	m.supervised = append(m.supervised, why)
	fmt.Fprintf(m.out, "    supervisor: %s; restarting the monitors\n", why)
	for i := range m.slots {
		m.kill(i)
		m.kills-- // not a fault
		m.start(i)
	}
}

// readyz returns monitor i's /readyz answer ("active", "standby", a
// reason), "" when it does not answer.
func (m *monitorSet) readyz(i int) string {
	m.mu.Lock()
	s := m.slots[i]
	m.mu.Unlock()
	if s.proc == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(m.t.Context(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+"/readyz", nil)
	if err != nil {
		return ""
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(body))
}

// active returns the monitors that say they are active.
func (m *monitorSet) active() []int {
	var out []int
	for i := range m.slots {
		if m.readyz(i) == "active" {
			out = append(out, i)
		}
	}
	return out
}

// roles describes each monitor: pid and /readyz answer, or down.
func (m *monitorSet) roles() string {
	var parts []string
	for i := range m.slots {
		m.mu.Lock()
		p := m.slots[i].proc
		m.mu.Unlock()
		if p == nil || p.Exited(time.Millisecond) {
			parts = append(parts, fmt.Sprintf("%d: down", i))
			continue
		}
		parts = append(parts, fmt.Sprintf("%d: pid %d %q", i, p.PID(), m.readyz(i)))
	}
	return strings.Join(parts, ", ")
}

// soaked returns monitor i's pid and HTTP address (zero when down).
func (m *monitorSet) soaked(i int) (int, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.slots[i]
	if s.proc == nil {
		return 0, ""
	}
	return s.proc.PID(), s.addr
}

// stopAll stops every monitor with SIGTERM and reports those that did not
// exit 0.
func (m *monitorSet) stopAll() {
	m.t.Helper()
	for i := range m.slots {
		m.mu.Lock()
		p := m.slots[i].proc
		m.slots[i] = monitorSlot{}
		m.mu.Unlock()
		if p == nil {
			continue
		}
		if code := p.Stop(m.t, syscall.SIGTERM); code != 0 {
			m.t.Errorf("monitor %d: exit code %d after SIGTERM, want 0; stderr:\n%s", i, code, p.Stderr())
		}
	}
}

// logs returns the text of every monitor log, for searching.
func (m *monitorSet) logs() string {
	files, _ := filepath.Glob(filepath.Join(m.dir, "logs", "*.log"))
	var b strings.Builder
	for _, f := range files {
		data, _ := os.ReadFile(f)
		b.Write(data)
	}
	return b.String()
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
