package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// CleanEnv is this process's environment without the MONITOR_* overrides,
// so that a monitor started by a test reads its configuration file only,
// and without the service manager's NOTIFY_SOCKET and WATCHDOG_*, which are
// the test runner's, not the monitor's.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MONITOR_") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, "WATCHDOG_") {
			env = append(env, kv)
		}
	}
	return env
}

// Proc is a running process of a test, such as `monitor run`: its stderr is
// kept, and its log file read.
type Proc struct {
	cmd     *exec.Cmd
	name    string // the binary's base name, for messages
	logPath string
	stderr  SyncBuffer
	done    chan struct{}
	code    int // valid once done is closed
}

// StartProc starts bin with args and CleanEnv. logPath is the log file the
// process writes (WaitLog, LogText, Tail). The process is killed at cleanup
// if the test did not stop it.
func StartProc(t testing.TB, bin, logPath string, args ...string) *Proc {
	t.Helper()
	return StartProcEnv(t, bin, logPath, nil, args...)
}

// StartProcEnv is StartProc with env ("KEY=value") added to CleanEnv.
func StartProcEnv(t testing.TB, bin, logPath string, env []string, args ...string) *Proc {
	t.Helper()
	p := &Proc{cmd: exec.Command(bin, args...), name: filepath.Base(bin), logPath: logPath, done: make(chan struct{})}
	p.cmd.Env = append(CleanEnv(), env...)
	p.cmd.Stderr = &p.stderr
	// A child the process left behind may hold stderr open: do not wait
	// for it once the process itself is gone.
	p.cmd.WaitDelay = time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// Code waits for the process to exit and returns its exit code (-1 when a
// signal killed it).
func (p *Proc) Code() int {
	<-p.done
	return p.code
}

// PID is the process id (for reading /proc/<pid>).
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Stderr is what the process wrote to stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// LogText is the log file so far ("" before it exists).
func (p *Proc) LogText() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// Tail is the last n lines of the log file.
func (p *Proc) Tail(n int) string {
	lines := strings.SplitAfter(p.LogText(), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return strings.Join(lines[max(0, len(lines)-n):], "")
}

// WaitLog polls the log file until it holds want n times, failing the test
// when the process exits first or WaitTimeout passes.
func (p *Proc) WaitLog(t testing.TB, want string, n int) {
	t.Helper()
	if poll(t, WaitTimeout(), PollInterval, p.done, func() bool { return strings.Count(p.LogText(), want) >= n }) {
		return
	}
	if p.exited() {
		t.Fatalf("%s exited (code %d) before logging %q:\n%s\nstderr:\n%s", p.name, p.code, want, p.LogText(), p.Stderr())
	}
	t.Fatalf("%s did not log %q %d times within %s:\n%s", p.name, want, n, WaitTimeout(), p.LogText())
}

// RunUntil lets the process run until cond holds (true) or d passes
// (false), checking every millisecond: it is for acting at a moment of the
// process's work, such as killing it there. It fails the test when the
// process exits first.
func (p *Proc) RunUntil(t testing.TB, d time.Duration, cond func() bool) bool {
	t.Helper()
	ok := poll(t, d, time.Millisecond, p.done, cond)
	if !ok && p.exited() {
		t.Fatalf("%s exited (code %d) while it was to be working; stderr:\n%s\nlog (end):\n%s",
			p.name, p.code, p.Stderr(), p.Tail(20))
	}
	return ok
}

// Signal sends sig to the process.
func (p *Proc) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// Exited waits up to d for the process to exit and reports whether it did.
func (p *Proc) Exited(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Stop sends sig and returns the exit code, failing the test when the
// process has not exited within WaitTimeout.
func (p *Proc) Stop(t testing.TB, sig syscall.Signal) int {
	t.Helper()
	p.Signal(t, sig)
	select {
	case <-p.done:
		return p.code
	case <-time.After(WaitTimeout()):
		t.Fatalf("%s did not stop within %s after %v", p.name, WaitTimeout(), sig)
		return -1
	}
}

// Kill kills the process with SIGKILL and waits until it is gone.
func (p *Proc) Kill(t testing.TB) {
	t.Helper()
	p.Signal(t, syscall.SIGKILL)
	<-p.done
}

// exited reports whether the process has exited.
func (p *Proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// HTTPAddr waits until the monitor's log says where it serves HTTP
// (httpListenAddress "127.0.0.1:0" picks a free port) and returns that
// address, the latest the log names (start a restarted monitor on a log of
// its own, or its predecessor's address may be read).
func (p *Proc) HTTPAddr(t testing.TB) string {
	t.Helper()
	const mark = "serving HTTP address="
	p.WaitLog(t, mark, 1)
	log := p.LogText()
	rest := log[strings.LastIndex(log, mark)+len(mark):]
	if i := strings.IndexAny(rest, " \n\""); i >= 0 {
		rest = rest[:i]
	}
	return rest
}
