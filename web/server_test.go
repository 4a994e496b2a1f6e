package web

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/queue"
)

// statusStub answers Status with err, or an empty status.
type statusStub struct{ err error }

func (s statusStub) Status(context.Context, time.Duration) (queue.Status, error) {
	return queue.Status{}, s.err
}

// TestReadyz: 200 only on the active monitor with its database answering;
// a standby says so, and an unreachable database is said first.
func TestReadyz(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		db       figures.StatusReader
		active   bool
		code     int
		wantBody string
	}{
		{"NotConnected", nil, false, http.StatusServiceUnavailable, "standby"},
		{"Standby", statusStub{}, false, http.StatusServiceUnavailable, "standby"},
		{"Active", statusStub{}, true, http.StatusOK, "active"},
		{"ActiveDatabaseDown", statusStub{errors.New("connection refused")}, true, http.StatusServiceUnavailable, "database unreachable: connection refused"},
		{"StandbyDatabaseDown", statusStub{errors.New("connection refused")}, false, http.StatusServiceUnavailable, "database unreachable: connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := figures.New(figures.Options{DB: tc.db})
			f.SetActive(tc.active)
			srv, err := New(Options{Figures: f})
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(srv.Handler())
			defer ts.Close()
			for _, path := range []string{"/readyz", "/-/ready", "/healthz"} {
				res, err := http.Get(ts.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if path == "/healthz" {
					if res.StatusCode != http.StatusOK {
						t.Errorf("%s = %d %q, want 200", path, res.StatusCode, body)
					}
					continue
				}
				if res.StatusCode != tc.code || strings.TrimSpace(string(body)) != tc.wantBody {
					t.Errorf("%s = %d %q, want %d %q", path, res.StatusCode, body, tc.code, tc.wantBody)
				}
			}
		})
	}
}
