package alert

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Bounds of a command.
const (
	// KillAfter is how long a command may run before it is killed, with
	// its process group.
	KillAfter = 30 * time.Second
	// maxOutput is how much of a command's output is kept for the log.
	maxOutput = 2048
	// waitDelay bounds the wait for the output pipes once the command has
	// exited or been killed (a child that inherited them may hold them).
	waitDelay = 2 * time.Second
)

// States of a rule, as MONITOR_ALERT_STATE spells them.
const (
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// notice is one notification of a rule.
type notice struct {
	rule    Rule
	state   string
	value   float64
	message string
}

// env returns the command's environment: the monitor's, less its own
// MONITOR_* settings (which may hold passwords), plus the notice.
func (n notice) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MONITOR_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"MONITOR_ALERT_RULE="+n.rule.Name,
		"MONITOR_ALERT_STATE="+n.state,
		"MONITOR_ALERT_METRIC="+n.rule.Metric,
		"MONITOR_ALERT_VALUE="+formatNumber(n.value),
		"MONITOR_ALERT_THRESHOLD="+formatNumber(n.rule.Threshold),
		"MONITOR_ALERT_MESSAGE="+n.message,
	)
}

// commands runs the rules' commands, each rule's one at a time: a notice
// that comes while the rule's command runs waits for it, replacing an older
// notice that waits (the latest state is what matters). Nothing it does
// blocks the caller.
type commands struct {
	logger    *slog.Logger
	killAfter time.Duration

	mu      sync.Mutex
	running map[string]*notice // by rule: the notice waiting, nil if none
	wg      sync.WaitGroup
}

func newCommands(logger *slog.Logger, killAfter time.Duration) *commands {
	return &commands{logger: logger, killAfter: killAfter, running: map[string]*notice{}}
}

// start runs n's command, or has it wait for the rule's running one. ctx
// ending kills the running commands.
func (c *commands) start(ctx context.Context, n notice) {
	if len(n.rule.Command) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if waiting, busy := c.running[n.rule.Name]; busy {
		if waiting != nil {
			c.logger.Warn("alert command not run: a later notice of its rule replaced it while the previous command ran",
				"rule", n.rule.Name, "state", waiting.state)
		}
		c.running[n.rule.Name] = &n
		return
	}
	c.running[n.rule.Name] = nil
	c.wg.Go(func() {
		for {
			c.run(ctx, n)
			c.mu.Lock()
			next := c.running[n.rule.Name]
			if next == nil || ctx.Err() != nil {
				delete(c.running, n.rule.Name)
				c.mu.Unlock()
				return
			}
			c.running[n.rule.Name] = nil
			c.mu.Unlock()
			n = *next
		}
	})
}

// wait returns once every command has ended.
func (c *commands) wait() { c.wg.Wait() }

// run runs n's command to its end, killing it and its process group after
// killAfter or when ctx ends, and logs how it went.
func (c *commands) run(ctx context.Context, n notice) {
	ctx, cancel := context.WithTimeout(ctx, c.killAfter)
	defer cancel()
	argv := n.rule.Command
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = n.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	out := &capped{max: maxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start).Round(time.Millisecond)
	attrs := []any{"rule", n.rule.Name, "state", n.state, "command", argv[0], "took", took}
	if s := out.String(); s != "" {
		attrs = append(attrs, "output", s)
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		c.logger.Info("alert command ran", attrs...)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		c.logger.Error("alert command killed with its process group: it ran longer than "+c.killAfter.String(), attrs...)
	case ctx.Err() != nil:
		c.logger.Warn("alert command killed with its process group: the monitor stopped evaluating rules", attrs...)
	case errors.As(err, &exitErr) && exitErr.Exited():
		c.logger.Error("alert command failed", append(attrs, "exit_code", exitErr.ExitCode())...)
	case errors.As(err, &exitErr):
		c.logger.Error("alert command failed", append(attrs, "error", err)...)
	default:
		c.logger.Error("alert command could not run", append(attrs, "error", err)...)
	}
}

// capped keeps the first max bytes written to it, and counts the rest.
type capped struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped int
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	keep := min(len(p), c.max-len(c.buf))
	c.buf = append(c.buf, p[:keep]...)
	c.dropped += len(p) - keep
	return len(p), nil
}

// String is the output kept, without surrounding space, noting what was cut.
func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := strings.TrimSpace(strings.ToValidUTF8(string(c.buf), "\uFFFD"))
	if c.dropped > 0 {
		s += " … (" + strconv.Itoa(c.dropped) + " more bytes)"
	}
	return s
}
