package web

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/figures"
)

// hostileNames are processor names meant to break the page: markup,
// attribute breakers, a name as long as the column allows, control and
// bidirectional-override characters.
func hostileNames() []string {
	return []string{
		`<script>alert("pwned")</script>`,
		`"><img src=x onerror=alert(1)>`,
		`' onmouseover='alert(2)' x='`,
		`</style><iframe src="https://example.invalid/"></iframe>`,
		"very-long-" + strings.Repeat("processor-name-", 16) + "end",
		"ctrl\x1b[31mred\x00nul\ttab",
		"bidi\u202eevil\u202c.exe",
	}
}

// sampleReport is a daemon's report with n processors (every seventh
// stale, every eleventh dead), an hour of throughput, passes, events and
// failing cleanups, as of now.
func sampleReport(n int, now time.Time) figures.Report {
	age := 252.0
	rep := figures.Report{
		Jobs:                   figures.JobsReport{Queued: 12345, Started: 48, Succeeded: 310, Failed: 17},
		PriorityRequests:       2,
		OldestQueuedAgeSeconds: &age,
		ReadAt:                 now,
	}
	seen := now.Add(-3 * time.Second).UTC()
	for i := range n {
		state := "live"
		switch {
		case i%11 == 10:
			state = "dead"
		case i%7 == 6:
			state = "stale"
		}
		rep.Processors = append(rep.Processors, figures.ProcessorReport{
			ID: int64(i + 1), Name: fmt.Sprintf("crash-processor-%02d.example.net_%d", i+1, 4000+i),
			State: state, LastSeen: &seen, Pending: int64((i * 37) % 250),
		})
	}
	rep.ActiveMonitor = &figures.MonitorReport{Instance: "monitor-1.example.net:4711:x", Host: "monitor-1.example.net", PID: 4711,
		Since: now.Add(-time.Hour), Term: 7}
	rep.StandbyMonitors = []figures.MonitorReport{
		{Instance: "monitor-2:4712:y", Host: "monitor-2.example.net", PID: 4712, Since: now.Add(-time.Hour), LastSeen: now},
		{Instance: "evil:1:z", Host: "<script>evil</script>", PID: 1, Since: now, LastSeen: now},
	}
	rep.Cleanup = figures.CleanupReport{Failing: 3}
	for i := range 3 {
		rep.Cleanup.Recent = append(rep.Cleanup.Recent, figures.CleanupFailureReport{
			UUID: fmt.Sprintf("4dd21cc0-49d9-46ae-a42b-fadb4209092%d", i), Attempts: 3 + i,
			LastError: "archive: rename /srv/crashes/x: not a directory", LastFailed: now.Add(-time.Minute).UTC(),
			RetryInSeconds: 240,
		})
	}
	d := &figures.DaemonReport{Version: "v1.2.3", PID: 4711, Host: "monitor-1.example.net", Active: true, Healthy: true,
		Inbox: &figures.Inbox{Complete: 12, Incomplete: 3, At: now.Add(-2 * time.Second)}}
	start := now.Truncate(time.Minute).Add(-59 * time.Minute)
	for i := range 60 {
		d.Throughput = append(d.Throughput, figures.MinuteReport{Start: start.Add(time.Duration(i) * time.Minute),
			Queued: int64(400 + (i*53)%300), Cleaned: int64(380 + (i*71)%280)})
	}
	d.Passes = []figures.PassState{
		{Loop: figures.LoopScanner, Running: true, Started: now.Add(-12 * time.Second), Done: 340, Passes: 41, LastDuration: 850 * time.Millisecond},
		{Loop: figures.LoopCleanup, Waiting: true, Passes: 120, LastDuration: 2 * time.Second},
	}
	for i := range 30 {
		d.Events = append(d.Events, figures.Event{At: now.Add(time.Duration(i-30) * time.Minute),
			Kind: figures.EventReaped, Text: fmt.Sprintf("event number %d", i)})
	}
	rep.Daemon = d
	return rep
}

func renderPage(t testing.TB, rep figures.Report, now time.Time) string {
	t.Helper()
	p, err := newPage()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := p.render(&b, rep, now); err != nil {
		t.Fatalf("render: %v", err)
	}
	return b.String()
}

// tagPattern finds the start of every element in a document in which text
// and attribute values have < escaped (html/template's output, Chromium's
// serialisation of the DOM).
func tagPattern() *regexp.Regexp { return regexp.MustCompile(`<([a-zA-Z][a-zA-Z0-9-]*)`) }

// elements returns the names of the elements in doc, lower case, the style
// sheet's text left out.
func elements(doc string) map[string]int {
	if i := strings.Index(doc, "<style>"); i >= 0 {
		if j := strings.Index(doc[i:], "</style>"); j >= 0 {
			doc = doc[:i+len("<style>")] + doc[i+j:]
		}
	}
	out := map[string]int{}
	for _, m := range tagPattern().FindAllStringSubmatch(doc, -1) {
		out[strings.ToLower(m[1])]++
	}
	return out
}

// pageElements are the elements the status page's template writes: any
// other in a rendered page was injected (add an element the template comes
// to use here).
func pageElements() map[string]bool {
	return map[string]bool{
		"html": true, "head": true, "meta": true, "link": true, "title": true, "style": true, "body": true,
		"header": true, "main": true, "section": true, "div": true, "p": true, "span": true, "h1": true, "h2": true,
		"b": true, "strong": true, "code": true, "time": true, "ol": true, "ul": true, "li": true,
		"table": true, "tbody": true, "tr": true, "th": true, "td": true,
		"svg": true, "line": true, "polygon": true, "polyline": true,
	}
}

// checkNoInjection fails when doc holds an element or an attribute a name
// could have injected.
func checkNoInjection(t *testing.T, doc string) {
	t.Helper()
	known := pageElements()
	for el, n := range elements(doc) {
		if !known[el] {
			t.Errorf("the page holds %d <%s> element(s)", n, el)
		}
	}
	for _, a := range attributes(doc) {
		if strings.HasPrefix(a, "on") || a == "src" || a == "srcdoc" || a == "action" || a == "formaction" {
			t.Errorf("the page holds the attribute %s", a)
		}
	}
}

// attributes returns the names of the attributes of every element in doc,
// lower case: values are skipped whole, quoted or not.
func attributes(doc string) []string {
	var out []string
	for _, loc := range tagPattern().FindAllStringIndex(doc, -1) {
		i := loc[1]
		for i < len(doc) && doc[i] != '>' {
			switch c := doc[i]; {
			case c == '"' || c == '\'':
				j := strings.IndexByte(doc[i+1:], c)
				if j < 0 {
					return append(out, "<unterminated>")
				}
				i += j + 2
			case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '/' || c == '=':
				i++
			default:
				j := i
				for j < len(doc) && !strings.ContainsRune(" \t\n\r/=>", rune(doc[j])) {
					j++
				}
				if doc[i-1] != '=' {
					out = append(out, strings.ToLower(doc[i:j]))
				}
				i = j
			}
		}
	}
	return out
}

func TestAttributes(t *testing.T) {
	got := strings.Join(attributes(`<p title="a onerror=b &gt;" class='c onload=d'><br/><svg viewBox="0 0 1 1" onclick=x>`), " ")
	if want := "title class viewbox onclick"; got != want {
		t.Errorf("attributes: %q, want %q", got, want)
	}
	els := elements(`<p>&lt;script&gt;<IMG src=x></p><style>a<b>c{}</style>`)
	if len(els) != 3 || els["p"] != 1 || els["img"] != 1 || els["style"] != 1 {
		t.Errorf("elements: %v, want p, img and style once each", els)
	}
}

func TestPageContent(t *testing.T) {
	now := time.Date(2026, 11, 22, 14, 3, 7, 0, time.Local)
	rep := sampleReport(12, now)
	names := hostileNames()
	for i, name := range names {
		rep.Processors[i].Name = name
	}
	out := renderPage(t, rep, now)
	text := html.UnescapeString(out)

	checkNoInjection(t, out)
	for _, name := range names {
		if !strings.Contains(text, printable(name)) {
			t.Errorf("the page does not show the name %q as text", printable(name))
		}
	}
	for _, raw := range []string{"\x1b", "\x00", "\u202e"} {
		if strings.Contains(out, raw) {
			t.Errorf("the page holds the raw character %q", raw)
		}
	}
	if !strings.Contains(out, `title="processor 5: very-long-processor-name-`) {
		t.Error("the long name is not in a title attribute")
	}
	for _, want := range []string{
		`<meta http-equiv="refresh" content="5">`,
		"monitor-1.example.net · pid 4711 · v1.2.3", ">active<", ">healthy<",
		">12,345<", ">4m 12s<", // queued, oldest queued
		"10 live", "1 stale", "1 dead",
		"pass running for <b>12s</b>, <b>340</b> done", "120 passes ended, the last took 2s", "not started",
		"4dd21cc0-49d9-46ae-a42b-fadb42090920", "retry in 4m",
		"10 older events are not shown.",
		"<svg", "<polyline", "minutes ago", "jobs / minute",
		"active monitor: <b>monitor-1.example.net · pid 4711 · since 13:03:07</b>",
		"standing by: <b>monitor-2.example.net · pid 4712</b>, <b><script>evil</script> · pid 1</b>",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(out, "role=\"alert\"") {
		t.Error("a healthy report shows an alert")
	}
	// Events newest first.
	if i, j := strings.Index(out, "event number 29"), strings.Index(out, "event number 28"); i < 0 || j < 0 || i > j {
		t.Errorf("events are not newest first (29 at %d, 28 at %d)", i, j)
	}
	if strings.Contains(out, "event number 9<") {
		t.Error("an event beyond the first 20 is listed")
	}
	if n := strings.Count(out, `<li class="live"`) + strings.Count(out, `<li class="stale"`) + strings.Count(out, `<li class="dead"`); n != 12 {
		t.Errorf("%d processor rows, want 12", n)
	}
	if strings.Contains(out, "ZgotmplZ") {
		t.Error("html/template rejected a value (ZgotmplZ)")
	}
}

func TestPageTrouble(t *testing.T) {
	now := time.Date(2026, 11, 22, 14, 3, 7, 0, time.Local)
	rep := sampleReport(3, now)
	rep.DatabaseError = `read status: connection refused <b>`
	rep.ReadAt = now.Add(-90 * time.Second)
	rep.Daemon.Healthy = false
	rep.Daemon.Unhealthy = "the scanner loop has made no progress for 12m0s"
	rep.Daemon.Active = false
	out := renderPage(t, rep, now)
	for _, want := range []string{
		"<title>UNHEALTHY · monitor on monitor-1.example.net</title>",
		"<strong>Unhealthy.</strong> the scanner loop has made no progress for 12m0s",
		"<strong>The database could not be read.</strong> The database figures below are the last that could be read",
		`<div class="detail">read status: connection refused &lt;b&gt;</div>`, ">standby<", "Standby: this monitor is not running the loops",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

func TestPageAlerts(t *testing.T) {
	now := time.Date(2026, 11, 22, 14, 3, 7, 0, time.Local)
	rep := sampleReport(3, now)
	rep.Alerts = []figures.AlertReport{
		{Rule: "no-live-processor", Metric: "processors_live", Since: now.Add(-95 * time.Second), Average: 0, Below: true, Threshold: 1},
		{Rule: "<b>x</b>", Metric: "jobs_queued", Since: now.Add(-time.Hour), Average: 51234.25, Threshold: 50000},
	}
	out := renderPage(t, rep, now)
	for _, want := range []string{
		"<title>ALERT · monitor on monitor-1.example.net</title>",
		"<strong>2 alerts fire.</strong>",
		"<b>no-live-processor</b> since <span title=",
		"(1m 35s ago): processors_live averaged <b>0</b>, below its threshold of 1</li>",
		"<b>&lt;b&gt;x&lt;/b&gt;</b>", "jobs_queued averaged <b>51234.2</b>, above its threshold of 50000",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	checkNoInjection(t, out)
}

func TestPageEmpty(t *testing.T) {
	out := renderPage(t, figures.Report{DatabaseError: "no database connection yet"}, time.Now())
	for _, want := range []string{"No processor has registered.", "nothing waits", "There are no database figures to show.",
		"no database connection yet"} {
		if !strings.Contains(out, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

// TestStatusPageHandler serves the page of figures without a database: it
// says so, and the headers keep the page to itself.
func TestStatusPageHandler(t *testing.T) {
	f := figures.New(figures.Options{Version: "test"})
	srv, err := New(Options{Figures: f, Identity: figures.Identity{Version: "test", PID: 1, Host: "h"}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	res, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": statusPageCSP,
		"Cache-Control":           "no-store",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(string(body), "no database connection yet") {
		t.Error("the page does not say the database could not be read")
	}
}

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 0: "0s", 300 * time.Microsecond: "<1ms", 850 * time.Millisecond: "850ms", 42 * time.Second: "42s",
		252 * time.Second: "4m 12s", 4 * time.Minute: "4m", 2*time.Hour + 5*time.Minute + 9*time.Second: "2h 5m",
		76 * time.Hour: "3d 4h",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 12345: "12,345", 1234567: "1,234,567", -4321: "-4,321"} {
		if got := num(n); got != want {
			t.Errorf("num(%d) = %q, want %q", n, got, want)
		}
	}
	for raw, want := range map[int64]int64{0: 1, 1: 1, 3: 5, 7: 10, 11: 20, 260: 500} {
		if got := niceStep(raw); got != want {
			t.Errorf("niceStep(%d) = %d, want %d", raw, got, want)
		}
	}
}

// BenchmarkStatusPage renders the page of a report with 100 processors
// (the target: well under 50 ms).
func BenchmarkStatusPage(b *testing.B) {
	now := time.Now()
	rep := sampleReport(100, now)
	p, err := newPage()
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := p.render(&buf, rep, now); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}
