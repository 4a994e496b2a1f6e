package apmon

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/internal/testkit"
)

// pageServer serves an ApMon configuration page whose body and status the
// test sets, counting the reads.
type pageServer struct {
	mu     sync.Mutex
	body   string
	status int
	reads  int
}

func (p *pageServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reads++
	w.WriteHeader(p.status)
	w.Write([]byte(p.body))
}

func (p *pageServer) set(status int, body string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status, p.body = status, body
}

func (p *pageServer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reads
}

// TestPages: a page is read when it first appears and every 10 minutes; a
// failed read keeps the last good list and is logged once, its end once;
// a page dropped from the list is forgotten.
func TestPages(t *testing.T) {
	t.Parallel()
	srv := &pageServer{status: http.StatusOK, body: "# crash monitors\nml1.example.org:9000 s3cret\nxApMon_sys_monitoring = on\n"}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	u := strings.Replace(ts.URL, "http://", "http://reader:hunter2@", 1)

	clock := testkit.NewClock(time.Unix(1767225600, 0))
	var log testkit.SyncBuffer
	p := NewPages(slog.New(slog.NewTextHandler(&log, nil)), clock.Now)
	ctx := context.Background()
	first := []Destination{{Host: "ml1.example.org", Port: 9000, Password: "s3cret"}}

	if got := p.Destinations(ctx, []string{u}); !reflect.DeepEqual(got, first) {
		t.Fatalf("first read: %+v, want %+v", got, first)
	}
	clock.Add(PageRecheck - time.Second)
	p.Destinations(ctx, []string{u})
	if srv.count() != 1 {
		t.Errorf("read %d times within 10 minutes, want once", srv.count())
	}

	// Due again, the page fails: the last good list stays, logged once.
	srv.set(http.StatusServiceUnavailable, "down")
	for range 3 {
		clock.Add(PageRecheck)
		if got := p.Destinations(ctx, []string{u}); !reflect.DeepEqual(got, first) {
			t.Fatalf("after a failed read: %+v, want the last good %+v", got, first)
		}
	}
	if srv.count() != 4 {
		t.Errorf("%d reads, want 4", srv.count())
	}
	if n := strings.Count(log.String(), "cannot read the ApMon configuration page"); n != 1 {
		t.Errorf("the failure logged %d times, want once:\n%s", n, log.String())
	}

	// A failed page is tried again within a minute, not ten.
	srv.set(http.StatusOK, "ml2.example.org\nnot a destination:x\n")
	clock.Add(pageRetry)
	want := []Destination{{Host: "ml2.example.org", Port: 8884}}
	if got := p.Destinations(ctx, []string{u}); !reflect.DeepEqual(got, want) {
		t.Errorf("after the page came back: %+v, want %+v", got, want)
	}
	for _, line := range []string{"reads again", "lines that are not destinations", "ml2.example.org:8884"} {
		if !strings.Contains(log.String(), line) {
			t.Errorf("log lacks %q:\n%s", line, log.String())
		}
	}
	if strings.Contains(log.String(), "hunter2") || strings.Contains(log.String(), "s3cret") {
		t.Errorf("a password in the log:\n%s", log.String())
	}

	// Gone from the list: forgotten, not read.
	if got := p.Destinations(ctx, nil); got != nil {
		t.Errorf("no pages: %+v", got)
	}
	if len(p.pages) != 0 {
		t.Errorf("%d pages remembered after they left the list", len(p.pages))
	}
}

func TestPagesUnreachable(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.NotFoundHandler())
	ts.Close() // nothing listens there any more
	var log testkit.SyncBuffer
	p := NewPages(slog.New(slog.NewTextHandler(&log, nil)), nil)
	if got := p.Destinations(context.Background(), []string{ts.URL}); got != nil {
		t.Errorf("an unreachable page gave %+v", got)
	}
	if !strings.Contains(log.String(), "cannot read the ApMon configuration page") {
		t.Errorf("not logged:\n%s", log.String())
	}
}
