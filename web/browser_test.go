package web

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"image/png"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

// EnvScreenshotDir names a directory where the browser test also saves its
// screenshots, for a look at the page (they always go to a temporary
// directory of the test's own).
const EnvScreenshotDir = "MONITOR_SCREENSHOT_DIR"

// browserTimeout bounds one run of the browser.
const browserTimeout = 90 * time.Second

// TestStatusPageInBrowser serves the status page of a real database and
// real figures and has headless Chromium render it: with 3 processors, with
// 100, with names meant to break the page, and with the database gone and a
// loop stuck. It checks the DOM the browser built and saves screenshots.
func TestStatusPageInBrowser(t *testing.T) {
	bin := chromium(t)
	pgtest.URL(t) // skips, or fails under CI, before any browser runs

	t.Run("3 processors", func(t *testing.T) {
		procs := []proc{{"crash-processor-1.example.net_4711", live, 230}, {"crash-processor-2.example.net_4712", live, 214},
			{"crash-processor-3.example.net_4713", live, 198}}
		url, pool, _ := serve(t, procs)
		_, err := pool.Exec(t.Context(), `INSERT INTO monitor_alerts (rule, definition, metric, below, threshold, firing, since, value)
VALUES ('oldest-job-30-minutes', 'd', 'oldest_queued_job_age_seconds', false, 1800, true, now() - interval '4 minutes', 2210.5),
       ('quiet', 'd', 'jobs_queued', false, 50000, false, now(), 3)`)
		if err != nil {
			t.Fatal(err)
		}
		dom := dumpDOM(t, bin, url)
		checkDOM(t, dom, procs)
		for _, want := range []string{">active<", ">healthy<", "3 live", "pass running for", "Throughput, last hour",
			"1 alert fires.", "<b>oldest-job-30-minutes</b> since", "oldest_queued_job_age_seconds averaged <b>2210.5</b>, above its threshold of 1800"} {
			if !strings.Contains(dom, want) {
				t.Errorf("the page lacks %q", want)
			}
		}
		screenshot(t, bin, url, "status-3-processors.png", 1280, 1600)
		screenshot(t, bin, url, "status-3-processors-readme.png", 1200, 1000)
	})

	t.Run("100 processors", func(t *testing.T) {
		var procs []proc
		for i := range 100 {
			state := live
			switch {
			case i%17 == 16:
				state = dead
			case i%9 == 8:
				state = stale
			}
			procs = append(procs, proc{fmt.Sprintf("crash-processor-%03d.dc%d.example.net_%d", i+1, i%3+1, 3000+i*7), state, (i * 37) % 120})
		}
		url, _, _ := serve(t, procs)
		dom := dumpDOM(t, bin, url)
		checkDOM(t, dom, procs)
		if !strings.Contains(dom, `class="procs many"`) {
			t.Error("100 processors are not in the compact list")
		}
		screenshot(t, bin, url, "status-100-processors.png", 1280, 1600)
		screenshot(t, bin, url, "status-100-processors-narrow.png", 400, 1600)
	})

	t.Run("hostile names", func(t *testing.T) {
		var procs []proc
		for i, name := range hostileNames() {
			// PostgreSQL text cannot hold NUL.
			procs = append(procs, proc{strings.ReplaceAll(name, "\x00", "\x07"), live, 10 * (i + 1)})
		}
		url, _, _ := serve(t, procs)
		dom := dumpDOM(t, bin, url)
		checkDOM(t, dom, procs)
		screenshot(t, bin, url, "status-hostile-names.png", 1280, 1200)
		screenshot(t, bin, url, "status-hostile-names-narrow.png", 400, 1600)
	})

	t.Run("database gone, loop stuck", func(t *testing.T) {
		procs := []proc{{"crash-processor-1.example.net_4711", live, 40}, {"crash-processor-2.example.net_4712", stale, 12},
			{"crash-processor-3.example.net_4713", dead, 7}}
		url, pool, clock := serve(t, procs)
		dumpDOM(t, bin, url) // the figures are read once
		pool.Close()
		clock.Add(12 * time.Minute) // the scanner's pass (delay 5 minutes) is now stuck
		dom := dumpDOM(t, bin, url)
		for _, want := range []string{"The database could not be read.", "Unhealthy.", "UNHEALTHY · monitor on", "1 live", "1 stale", "1 dead"} {
			if !strings.Contains(dom, want) {
				t.Errorf("the page lacks %q", want)
			}
		}
		screenshot(t, bin, url, "status-trouble.png", 1280, 1200)
	})
}

// The states a test processor is given, by when it was last seen (the
// figures' processorCheckInTime is 5 minutes).
const (
	live  = "live"
	stale = "stale"
	dead  = "dead"
)

// proc is a processor to register, its state and how many unfinished jobs
// it owns.
type proc struct {
	name    string
	state   string
	pending int
}

// serve fills a schema of its own with procs and their jobs, feeds figures
// an hour of throughput, passes and events, and serves the status page of
// both on a loopback port. It returns the page's URL, the pool the figures
// read through and their clock.
func serve(t *testing.T, procs []proc) (string, *pgxpool.Pool, *testkit.Clock) {
	t.Helper()
	pool := pgtest.Schema(t)
	fill(t, pool, procs)
	// The figures read through a pool of their own, which a test may close
	// to cut them off from the database.
	figPool, err := pgxpool.NewWithConfig(t.Context(), pool.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(figPool.Close)

	now := time.Now()
	clock := testkit.NewClock(time.Time{})
	f := figures.New(figures.Options{DB: queue.NewStore(figPool), Version: "test", Now: clock.Now})
	// An hour of a pipeline whose load swells and ebbs, cleanup trailing
	// the queue by a couple of minutes.
	rate := func(m int) float64 { return 520 + 170*math.Sin(float64(m)/8) + 40*math.Sin(float64(m)*1.7) }
	for m := 59; m >= 0; m-- {
		clock.Set(now.Add(-time.Duration(m) * time.Minute))
		f.Queued(figures.LoopScanner, int(rate(m)))
		if m%15 == 7 {
			f.Queued(figures.LoopPriority, 4)
		}
		f.Cleaned(figures.CleanedArchived, int(0.97*rate(m+2)))
		switch m {
		case 58:
			f.Event(figures.EventLifecycle, "monitor started")
		case 41:
			f.Event(figures.EventReload, "configuration reloaded: standardLoopDelay")
		case 23:
			f.Event(figures.EventNoLive, "no live processor: crashes wait in the inbox")
		case 22:
			f.Event(figures.EventNoLive, "a processor is live again: queuing resumed")
		case 6:
			f.Event(figures.EventReaped, "reaped 1 dead processor(s) [7]: 212 job(s) moved, 0 priority request(s) returned")
		}
	}
	clock.Set(now.Add(-95 * time.Second))
	f.PassStarted(figures.LoopCleanup, 2*time.Second)
	f.PassEnded(figures.LoopCleanup, 1400*time.Millisecond, nil)
	f.Waiting(figures.LoopCleanup)
	f.PassStarted(figures.LoopPriority, time.Minute)
	f.PassEnded(figures.LoopPriority, 30*time.Millisecond, nil)
	f.Waiting(figures.LoopPriority)
	clock.Set(now.Add(-14 * time.Second))
	f.PassStarted(figures.LoopScanner, 5*time.Minute)
	clock.Set(now)
	f.Progress(figures.LoopScanner, 1730)
	f.SetInbox(0, 3)
	f.SetActive(true)

	srv, err := New(Options{Figures: f, Identity: figures.Identity{Version: "v1.4.0", PID: 4711, Host: "monitor-1.example.net"},
		Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String() + "/", figPool, clock
}

// fill registers procs and gives each its pending jobs (some started),
// and adds finished jobs, priority requests and failing cleanups.
func fill(t *testing.T, pool *pgxpool.Pool, procs []proc) {
	t.Helper()
	ctx := t.Context()
	ago := map[string]string{live: "0 seconds", stale: "7 minutes", dead: "25 minutes"}
	for i, p := range procs {
		var id int64
		err := pool.QueryRow(ctx, `INSERT INTO processors (name, startdatetime, lastseendatetime)
VALUES ($1, localtimestamp - interval '1 day', localtimestamp - $2::interval) RETURNING id`, p.name, ago[p.state]).Scan(&id)
		if err != nil {
			t.Fatalf("register %q: %v", p.name, err)
		}
		_, err = pool.Exec(ctx, `INSERT INTO jobs (uuid, owner, queueddatetime, starteddatetime)
SELECT gen_random_uuid()::text, $1, localtimestamp - interval '252 seconds' + g * interval '10 ms',
       CASE WHEN g % 8 = 0 THEN localtimestamp END
FROM generate_series(1, $2::int) g`, id, p.pending)
		if err != nil {
			t.Fatalf("jobs of %q: %v", p.name, err)
		}
		if i == 0 {
			_, err = pool.Exec(ctx, `INSERT INTO jobs (uuid, owner, queueddatetime, starteddatetime, completeddatetime, success)
SELECT gen_random_uuid()::text, $1, localtimestamp, localtimestamp, localtimestamp, g % 13 <> 0
FROM generate_series(1, 160) g`, id)
			if err != nil {
				t.Fatalf("finished jobs: %v", err)
			}
		}
	}
	_, err := pool.Exec(ctx, `INSERT INTO priorityjobs (uuid) VALUES ('7b0e4c2a-3f61-4d2e-9a55-1c3e0b251122'), ('0f3a9d11-8e2b-4b7c-a1d4-52f9e7261122')`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `INSERT INTO monitor_cleanup_failures (uuid, attempts, last_error, first_failed_at, last_failed_at, retry_after)
VALUES ('4dd21cc0-49d9-46ae-a42b-fadb42261122', 3,
        'archive 4dd21cc0-49d9-46ae-a42b-fadb42261122: rename /srv/crashes/20261122/name/4d/d2/4dd21cc0-49d9-46ae-a42b-fadb42261122.dump: not a directory',
        localtimestamp - interval '7 minutes', localtimestamp - interval '1 minute', localtimestamp + interval '3 minutes')`)
	if err != nil {
		t.Fatal(err)
	}
}

// chromium returns the browser's path. Without one the test is skipped,
// except under CI=true, where it fails: `make test` installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (CI=true): run the tests through `make test`, which installs it")
	}
	t.Skip("chromium is not installed: install it (apt-get install chromium) to check the status page in a browser")
	return ""
}

// browse runs headless Chromium on url with args and returns its standard
// output. Its profile is a directory of the test's own, and it makes no
// request of its own beyond the page.
func browse(t *testing.T, bin, url string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), browserTimeout)
	defer cancel()
	all := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
		"--disable-background-networking", "--disable-component-update", "--disable-default-apps",
		"--user-data-dir=" + t.TempDir(),
	}, args...)
	cmd := exec.CommandContext(ctx, bin, append(all, url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, lastLines(stderr.String(), 20))
	}
	return stdout.Bytes()
}

// dumpDOM returns the DOM Chromium built from the page, serialised.
func dumpDOM(t *testing.T, bin, url string) string {
	t.Helper()
	dom := string(browse(t, bin, url, "--window-size=1280,1600", "--dump-dom"))
	if !strings.Contains(dom, "</html>") {
		t.Fatalf("chromium dumped no document:\n%s", lastLines(dom, 20))
	}
	return dom
}

// screenshot saves a w×h screenshot of url as name, in the test's
// temporary directory and in MONITOR_SCREENSHOT_DIR when set.
func screenshot(t *testing.T, bin, url, name string, w, h int) {
	t.Helper()
	file := filepath.Join(t.TempDir(), name)
	browse(t, bin, url, fmt.Sprintf("--window-size=%d,%d", w, h), "--screenshot="+file)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("chromium saved no screenshot: %v", err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if cfg.Width != w || cfg.Height != h {
		t.Errorf("screenshot %s is %dx%d, want %dx%d", name, cfg.Width, cfg.Height, w, h)
	}
	if dir := os.Getenv(EnvScreenshotDir); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot %s (%d bytes)", file, len(b))
}

// checkDOM checks that the browser's DOM holds one row per processor, each
// name as text and whole in its row's title, and nothing a name injected.
func checkDOM(t *testing.T, dom string, procs []proc) {
	t.Helper()
	checkNoInjection(t, dom)
	rows := regexp.MustCompile(`<li class="(live|stale|dead)" title="([^"]*)"`).FindAllStringSubmatch(dom, -1)
	if len(rows) != len(procs) {
		t.Fatalf("%d processor rows in the DOM, want %d", len(rows), len(procs))
	}
	text := html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(dom, ""))
	for i, p := range procs {
		name := printable(p.name)
		if rows[i][1] != p.state {
			t.Errorf("processor %q is shown %s, want %s", name, rows[i][1], p.state)
		}
		if title := html.UnescapeString(rows[i][2]); !strings.Contains(title, name) {
			t.Errorf("row %d's title %q lacks the whole name %q", i, title, name)
		}
		if !strings.Contains(text, name) {
			t.Errorf("the name %q is not in the page's text", name)
		}
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
