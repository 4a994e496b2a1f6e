package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
)

// get fetches url and returns the status code and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// scrape fetches /metrics from addr and parses it.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, "http://"+addr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// metricValue returns the value of the series of name whose labels are
// labels ("k=v" pairs), and whether it exists: a counter's or gauge's
// value, a histogram's sample count.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	fam, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// wantMetric is one series the endpoint checks expect: its value exactly,
// or at least min when atLeast.
type wantMetric struct {
	name    string
	labels  []string
	value   float64
	atLeast bool
}

// checkMetrics compares the series of /metrics with want.
func checkMetrics(t *testing.T, fams map[string]*dto.MetricFamily, want []wantMetric) {
	t.Helper()
	for _, w := range want {
		got, ok := metricValue(fams, w.name, w.labels...)
		switch {
		case !ok:
			t.Errorf("%s%v: no such series", w.name, w.labels)
		case w.atLeast && got < w.value:
			t.Errorf("%s%v = %v, want at least %v", w.name, w.labels, got, w.value)
		case !w.atLeast && got != w.value:
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.value)
		}
	}
}

// checkStatusAgrees: /api/status and `monitor status --json` show the same
// database figures, and the daemon's part is in the document it serves.
func checkStatusAgrees(t *testing.T, addr, configPath string) figures.Report {
	t.Helper()
	code, body := get(t, "http://"+addr+"/api/status")
	if code != http.StatusOK {
		t.Fatalf("/api/status: %d\n%s", code, body)
	}
	var served figures.Report
	if err := json.Unmarshal([]byte(body), &served); err != nil {
		t.Fatalf("/api/status: %v\n%s", err, body)
	}
	if served.Daemon == nil || !served.Daemon.Active || !served.Daemon.Healthy {
		t.Errorf("/api/status daemon part: %+v", served.Daemon)
	}
	// The daemon listens on a port it picked: `monitor status` finds it
	// through a configuration that names it, as an operator's does.
	data, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	statusConfig := filepath.Join(t.TempDir(), "status.yaml")
	named := strings.Replace(string(data), `httpListenAddress: "127.0.0.1:0"`, `httpListenAddress: "`+addr+`"`, 1)
	if err := os.WriteFile(statusConfig, []byte(named), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runMonitor(t, "status", "-c", statusConfig, "--json")
	if r.code != 0 {
		t.Fatalf("status --json: code %d, stderr %s", r.code, r.stderr)
	}
	var printed figures.Report
	if err := json.Unmarshal([]byte(r.stdout), &printed); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	if printed.Jobs != served.Jobs || printed.PriorityRequests != served.PriorityRequests || len(printed.Processors) != len(served.Processors) {
		t.Errorf("monitor status and /api/status differ:\nstatus: %+v\napi:    %+v", printed, served)
	}
	if printed.Daemon == nil || printed.Daemon.PID != served.Daemon.PID {
		t.Errorf("monitor status did not add the daemon's part: %+v", printed.Daemon)
	}
	return served
}

// TestReadyzDuringOutage: with the database stopped /readyz turns 503 and
// /healthz stays 200 (waiting out an outage is not being stuck); once the
// database is back, /readyz is 200 again.
func TestReadyzDuringOutage(t *testing.T) {
	t.Parallel()
	cluster := testkit.NewCluster(t)
	cluster.Migrated(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "monitor.yaml")
	cfg := testkit.BaseConfig(dir, cluster.URL())
	cfg["standardLoopDelay"] = "00:00:01"
	cfg["priorityLoopDelay"] = "00:00:01"
	cfg["cleanupJobsLoopDelay"] = "00:00:01"
	cfg.Write(t, path)
	d := startDaemon(t, path, cfg["logFilePathname"])
	d.WaitLog(t, "monitor started", 1)
	addr := d.HTTPAddr(t)
	base := "http://" + addr

	ready := func() (int, string) { return get(t, base+"/readyz") }
	testkit.Eventually(t, "/readyz 200 active", func() bool {
		code, body := ready()
		return code == http.StatusOK && strings.TrimSpace(body) == "active"
	})
	for _, p := range []string{"/-/ready", "/healthz", "/-/healthy"} {
		if code, body := get(t, base+p); code != http.StatusOK {
			t.Errorf("%s = %d %q, want 200", p, code, body)
		}
	}

	cluster.Stop(t, "fast")
	testkit.Eventually(t, "/readyz 503 with the database stopped", func() bool {
		code, body := ready()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "database")
	})
	if code, body := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz during the outage = %d %q, want 200", code, body)
	}
	// The page and the metrics still answer.
	if code, _ := get(t, base+"/"); code != http.StatusOK {
		t.Errorf("/ during the outage = %d", code)
	}
	scrape(t, addr)

	cluster.Start(t)
	testkit.EventuallyWithin(t, 2*testkit.WaitTimeout(), "/readyz 200 again", func() bool {
		code, _ := ready()
		return code == http.StatusOK
	})
	if code, body := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz after the outage = %d %q", code, body)
	}
	// The outage is among the notable events, its start and its end once.
	_, body := get(t, base+"/api/status")
	var rep figures.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	var outage []string
	for _, e := range rep.Daemon.Events {
		if e.Kind == figures.EventDatabase {
			outage = append(outage, e.Text)
		}
	}
	if len(outage) != 2 || !strings.Contains(outage[0], "does not answer") || !strings.Contains(outage[1], "answers again") {
		t.Errorf("database events %q, want its loss and its return", outage)
	}
	if code := d.Stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
}

// TestHealthzStuckLoop: a loop that makes no progress for longer than twice
// its delay plus a minute turns /healthz 503, naming it; /healthz is 200
// again once it moves. The loops are made to hang on a lock of jobs.
func TestHealthzStuckLoop(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "monitor.yaml")
	cfg := testkit.BaseConfig(dir, testkit.SchemaURL(t, pool))
	cfg["standardLoopDelay"] = "00:00:01"
	cfg["priorityLoopDelay"] = "00:00:01"
	cfg["cleanupJobsLoopDelay"] = "00:00:01"
	cfg["processorCheckInTime"] = "00:00:01"
	cfg.Write(t, path)
	d := startDaemon(t, path, cfg["logFilePathname"])
	d.WaitLog(t, "monitor started", 1)
	base := "http://" + d.HTTPAddr(t)

	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(t.Context()))
	if _, err := tx.Exec(t.Context(), `LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	// Twice the delay plus a minute, and a pass or two of slack.
	limit := 2*time.Second + figures.StuckGrace + 10*time.Second + testkit.WaitTimeout()
	var body string
	testkit.EventuallyWithin(t, limit, "/healthz 503 with the loops hanging", func() bool {
		var code int
		code, body = get(t, base+"/healthz")
		return code == http.StatusServiceUnavailable
	})
	if !strings.Contains(body, "loop has made no progress") {
		t.Errorf("/healthz reason %q does not name the stuck loop", body)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "/healthz 200 once the loops move again", func() bool {
		code, _ := get(t, base+"/healthz")
		return code == http.StatusOK
	})
	if code := d.Stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
}

// TestPortTaken: a port already in use stops the start with exit 1, naming
// the address, before the database is tried.
func TestPortTaken(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "monitor.yaml")
	cfg := testkit.BaseConfig(dir, "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
	cfg["httpListenAddress"] = ln.Addr().String()
	cfg.Write(t, path)
	r := runMonitor(t, "run", "-c", path)
	if r.code != exitFailure || !strings.Contains(r.stderr, ln.Addr().String()) {
		t.Errorf("run with its port taken: code %d, stderr %q; want 1 naming %s", r.code, r.stderr, ln.Addr())
	}
	if strings.Contains(r.stderr, "database unreachable") {
		t.Errorf("the database was tried before the port: %s", r.stderr)
	}
}
