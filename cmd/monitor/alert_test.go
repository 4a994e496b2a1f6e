package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/procsim"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/jackc/pgx/v5/pgxpool"
)

// writeAlertConfig writes cfg to path with the rules, given as YAML text
// (the list's items), appended.
func writeAlertConfig(t *testing.T, cfg testkit.Config, path, rules string) {
	t.Helper()
	cfg.Write(t, path)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("alertRules:\n" + rules); err != nil {
		t.Fatal(err)
	}
}

// alertSetup returns a schema of the test's own, a configuration on it
// that samples four times a second, the configuration file's path, and its
// directory.
func alertSetup(t *testing.T) (*pgxpool.Pool, testkit.Config, string, string) {
	t.Helper()
	pool := pgtest.Schema(t)
	cfg, path := newConfig(t, testkit.SchemaURL(t, pool))
	cfg["alertInterval"] = "250ms"
	return pool, cfg, path, filepath.Dir(path)
}

// yamlList spells a command as a YAML flow sequence of quoted strings.
func yamlList(argv ...string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = strconv.Quote(a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// TestAlertRules runs the binary with simulated processors and a rule on
// processors_live below 1: it fires once when the processor stops (one
// WARNING, the command run once with its environment and its arguments
// passed literally), stays quiet while the episode lasts, across a
// restart, while a repeating rule repeats, and resolves once when a
// processor returns.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	pool, cfg, path, dir := alertSetup(t)
	cfg["processorCheckInTime"] = "00:00:02"
	record := testkit.AlertRecorder(t)
	pwned := filepath.Join(dir, "pwned")
	outOnce, outRepeat := filepath.Join(dir, "once.out"), filepath.Join(dir, "repeat.out")
	writeAlertConfig(t, cfg, path, fmt.Sprintf(`  - name: no-live-processor
    metric: processors_live
    below: 1
    window: 500ms
    command: %s
  - name: repeating
    metric: processors_live
    below: 1
    window: 500ms
    repeat: 2s
    command: %s
`, yamlList(record, outOnce, "a;b", "$(touch "+pwned+")", "it's"), yamlList(record, outRepeat)))

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	startProcessor := func(name string) *procsim.Processor {
		p := procsim.New(procsim.Config{Name: name, CheckIn: 2 * time.Second, Idle: 50 * time.Millisecond},
			procsim.NewSession(pool), slog.New(slog.DiscardHandler))
		wg.Go(func() {
			if err := p.Run(ctx); err != nil && !errors.Is(err, procsim.ErrCrashed) && ctx.Err() == nil {
				t.Errorf("processor %s: %v", name, err)
			}
		})
		return p
	}
	live := func() int {
		return testkit.QueryInt(t, pool, "SELECT count(*) FROM processors WHERE monitor_processor_state(lastseendatetime, interval '2 seconds') = 'live'")
	}
	first := startProcessor("sim-a")
	testkit.Eventually(t, "the processor to register", func() bool { return live() == 1 })

	d := startDaemon(t, path, cfg["logFilePathname"])
	d.WaitLog(t, "monitor started", 1)
	testkit.Eventually(t, "both rules remembered, not firing", func() bool {
		return testkit.QueryInt(t, pool, "SELECT count(*) FROM monitor_alerts WHERE NOT firing") == 2
	})
	if calls := testkit.AlertCalls(t, outOnce); len(calls) != 0 {
		t.Fatalf("notified with a live processor: %v", calls)
	}

	first.Crash() // its heartbeat stops: no live processor 2 s later
	testkit.Eventually(t, "the firing notice", func() bool { return len(testkit.AlertCalls(t, outOnce)) == 1 })
	call := testkit.AlertCalls(t, outOnce)[0]
	for _, want := range []string{"state=firing\n", "rule=no-live-processor\n", "metric=processors_live\n",
		"threshold=1\n", "message=Alert no-live-processor firing: processors_live averaged ",
		"arg=a;b\narg=$(touch " + pwned + ")\narg=it's\n"} {
		if !strings.Contains(call, want) {
			t.Errorf("the command got\n%s\nwant %q in it", call, want)
		}
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Error("an argument was run by a shell")
	}

	// What the operator sees while it fires: the metric, monitor status.
	addr := d.HTTPAddr(t)
	testkit.Eventually(t, "monitor_alerts_firing to say so", func() bool {
		v, ok := metricValue(scrape(t, addr), "monitor_alerts_firing", "rule=no-live-processor")
		return ok && v == 1
	})
	served := checkStatusAgrees(t, addr, path)
	if len(served.Alerts) != 2 || served.Alerts[0].Rule != "no-live-processor" || !served.Alerts[0].Below || served.Alerts[0].Threshold != 1 {
		t.Errorf("/api/status alerts_firing = %+v", served.Alerts)
	}
	if r := runMonitor(t, "status", "-c", path); r.code != 0 || !strings.Contains(r.stdout, "alerts firing: 2\n  no-live-processor since ") {
		t.Errorf("monitor status: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// The episode lasts: the repeating rule repeats, the other stays quiet.
	testkit.Eventually(t, "the repeats", func() bool { return len(testkit.AlertCalls(t, outRepeat)) >= 3 })

	// A restart in the middle of the episode notifies nothing new; the
	// repeats keep their pace.
	stopDaemon(t, d)
	repeats := len(testkit.AlertCalls(t, outRepeat))
	d = startDaemon(t, path, cfg["logFilePathname"])
	d.WaitLog(t, "monitor started", 2)
	testkit.Eventually(t, "a repeat after the restart", func() bool { return len(testkit.AlertCalls(t, outRepeat)) > repeats })
	if n := len(testkit.AlertCalls(t, outOnce)); n != 1 {
		t.Errorf("after the restart the command had run %d times, want 1", n)
	}

	startProcessor("sim-b")
	testkit.Eventually(t, "the resolved notice", func() bool { return len(testkit.AlertCalls(t, outOnce)) == 2 })
	if call := testkit.AlertCalls(t, outOnce)[1]; !strings.Contains(call, "state=resolved\n") || !strings.Contains(call, "value=1\n") {
		t.Errorf("the second call is not the resolution:\n%s", call)
	}
	stopDaemon(t, d)
	log := d.LogText()
	for _, want := range []string{"WARNING - alerts - Alert no-live-processor firing: ", "INFO - alerts - Alert no-live-processor resolved: "} {
		if n := strings.Count(log, want); n != 1 {
			t.Errorf("%d lines %q, want 1", n, want)
		}
	}
	if n := len(testkit.AlertCalls(t, outOnce)); n != 2 {
		t.Errorf("the command ran %d times in all, want 2", n)
	}
}

// TestAlertCommandHangs: a command that hangs is killed, with its process
// group, after 30 s, and the rules go on being evaluated meanwhile.
func TestAlertCommandHangs(t *testing.T) {
	t.Parallel()
	_, cfg, path, dir := alertSetup(t)
	pidFile, ticks := filepath.Join(dir, "child.pid"), filepath.Join(dir, "ticks.out")
	writeAlertConfig(t, cfg, path, fmt.Sprintf(`  - name: hangs
    metric: active
    above: 0.5
    window: 250ms
    command: %s
  - name: ticks
    metric: active
    above: 0.5
    window: 250ms
    repeat: 1s
    command: %s
`, yamlList(testkit.HangingCommand(pidFile)...), yamlList(testkit.AlertRecorder(t), ticks)))

	d := startDaemon(t, path, cfg["logFilePathname"])
	d.WaitLog(t, "monitor started", 1)
	testkit.EventuallyWithin(t, 45*time.Second, "the hanging command to be killed", func() bool {
		return strings.Contains(d.LogText(), "alert command killed with its process group: it ran longer than 30s")
	})
	if n := len(testkit.AlertCalls(t, ticks)); n < 20 {
		t.Errorf("the other rule ran its command %d times while the first hung 30 s; want a repeat every second", n)
	}
	testkit.WaitChildGone(t, pidFile)
	stopDaemon(t, d)
}

// TestAlertRulesMalformed: a malformed rule stops check-config and run with
// exit 2, naming the rule and the field.
func TestAlertRulesMalformed(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	cfg, path := newConfig(t, testkit.SchemaURL(t, pool))
	writeAlertConfig(t, cfg, path, `  - name: no-live-processor
    metric: processors_alive
    below: 1
`)
	const want = `alertRules: rule "no-live-processor" (line`
	for _, cmd := range []string{"check-config", "run"} {
		r := runMonitor(t, cmd, "-c", path)
		if r.code != 2 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, `field metric: "processors_alive" is not a metric`) {
			t.Errorf("%s: code %d, stderr %q; want 2 naming the rule and the field", cmd, r.code, r.stderr)
		}
	}

	// On a reload, the error is logged and the running rules stay.
	cfg["alertInterval"] = "250ms"
	good := `  - name: active
    metric: active
    above: 0.5
    window: 250ms
`
	writeAlertConfig(t, cfg, path, good)
	d := startDaemon(t, path, cfg["logFilePathname"])
	d.WaitLog(t, "Alert active firing", 1)
	writeAlertConfig(t, cfg, path, good+`  - name: active
    metric: active
    below: 0.5
`)
	d.WaitLog(t, "configuration not reloaded; the running settings stay", 1)
	if log := d.LogText(); !strings.Contains(log, `rule \"active\" (line`) || !strings.Contains(log, "field name: a rule of this name is already on line") {
		t.Errorf("the reload's error does not name the rule and the field:\n%s", d.Tail(5))
	}
	stopDaemon(t, d)
	if n := strings.Count(d.LogText(), "Alert active firing"); n != 1 {
		t.Errorf("the running rule notified %d times, want once", n)
	}
}
