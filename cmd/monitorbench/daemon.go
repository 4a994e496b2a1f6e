package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopTimeout bounds a monitor's graceful stop (its own bound is 15 s).
const stopTimeout = 20 * time.Second

// monitorConfig is a monitor configuration file's keys and values.
type monitorConfig map[string]string

// write renders the configuration as YAML (every value quoted) into path.
func (c monitorConfig) write(path string) error {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\n", k, strconv.Quote(c[k]))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write monitor configuration: %w", err)
	}
	return nil
}

// monitorProc is a `monitor run` the harness started.
type monitorProc struct {
	cmd     *exec.Cmd
	stderr  *lockedWriter
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error         // Wait's result, set before done is closed
}

// startMonitor starts `bin run -c configPath`, its stderr kept in memory and
// its log at logPath, with no MONITOR_* variable from the harness's
// environment (the configuration file says everything).
func startMonitor(bin, configPath, logPath string) (*monitorProc, error) {
	m := &monitorProc{
		cmd:     exec.Command(bin, "run", "-c", configPath),
		stderr:  new(lockedWriter),
		logPath: logPath,
		done:    make(chan struct{}),
	}
	m.cmd.Env = cleanEnv()
	m.cmd.Stderr = m.stderr
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start monitor: %w", err)
	}
	go func() {
		m.waitErr = m.cmd.Wait()
		close(m.done)
	}()
	return m, nil
}

// cleanEnv is the environment without MONITOR_* settings.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MONITOR_") {
			env = append(env, kv)
		}
	}
	return env
}

// alive returns an error when the monitor has exited already.
func (m *monitorProc) alive() error {
	select {
	case <-m.done:
		return fmt.Errorf("the monitor exited early (%v)%s", m.waitErr, m.tail())
	default:
		return nil
	}
}

// peakRSS returns the monitor's peak resident memory (VmHWM) in bytes.
func (m *monitorProc) peakRSS() (int64, error) {
	kb, err := procStatusField(filepath.Join("/proc", strconv.Itoa(m.cmd.Process.Pid), "status"), "VmHWM")
	if err != nil {
		return 0, fmt.Errorf("read the monitor's peak memory: %w", err)
	}
	return kb * 1024, nil
}

// stop sends SIGTERM and waits for the monitor to exit; anything but a
// prompt exit 0 is an error.
func (m *monitorProc) stop() error {
	if err := m.alive(); err != nil {
		return err
	}
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop monitor: %w", err)
	}
	select {
	case <-m.done:
	case <-time.After(stopTimeout):
		m.kill()
		return fmt.Errorf("the monitor did not stop within %s of SIGTERM%s", stopTimeout, m.tail())
	}
	if m.waitErr != nil {
		return fmt.Errorf("the monitor stopped badly (%v)%s", m.waitErr, m.tail())
	}
	return nil
}

// kill kills the monitor if it still runs and waits for it; for the error
// paths.
func (m *monitorProc) kill() {
	select {
	case <-m.done:
		return
	default:
	}
	_ = m.cmd.Process.Kill()
	<-m.done
}

// tail returns the end of the monitor's stderr and log, for error messages.
func (m *monitorProc) tail() string {
	var b strings.Builder
	if s := lastLines(m.stderrText(), 10); s != "" {
		b.WriteString("\nmonitor stderr:\n" + s)
	}
	if data, err := os.ReadFile(m.logPath); err == nil {
		if s := lastLines(string(data), 20); s != "" {
			b.WriteString("\nmonitor log (" + m.logPath + "):\n" + s)
		}
	}
	return b.String()
}

func (m *monitorProc) stderrText() string {
	m.stderr.mu.Lock()
	defer m.stderr.mu.Unlock()
	return m.stderr.buf.String()
}

// lockedWriter is a buffer written by exec's copying goroutine and read by
// the harness.
type lockedWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := strings.Join(lines, "\n")
	if strings.TrimSpace(out) == "" {
		return ""
	}
	return out + "\n"
}

// httpAddr waits until the monitor's log says where it serves HTTP and
// returns that address.
func (m *monitorProc) httpAddr(ctx context.Context, timeout time.Duration) (string, error) {
	var addr string
	err := waitFor(ctx, m, 10*time.Millisecond, timeout, "the HTTP server", func() (bool, error) {
		data, err := os.ReadFile(m.logPath)
		if err != nil {
			return false, nil
		}
		addr = servingAddress(string(data))
		return addr != "", nil
	})
	return addr, err
}

// servingAddress finds the address in the monitor's "serving HTTP
// address=..." log line; "" when there is none yet.
func servingAddress(log string) string {
	const mark = "serving HTTP address="
	i := strings.LastIndex(log, mark)
	if i < 0 {
		return ""
	}
	rest := log[i+len(mark):]
	if j := strings.IndexAny(rest, " \n\""); j >= 0 {
		rest = rest[:j]
	}
	return rest
}
