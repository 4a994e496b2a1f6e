// Package web is the monitor's HTTP server: Prometheus metrics, the health
// and readiness checks, the status document and the status page. Every
// endpoint reads the figures (package figures) and changes nothing; none
// runs SQL of its own.
//
//	GET /metrics              Prometheus text exposition (OpenMetrics when asked)
//	GET /healthz, /-/healthy  200 "ok" while every loop makes progress or waits on purpose; 503 and why
//	GET /readyz,  /-/ready    200 "active" when this monitor runs the loops and its database answers; 503 and why
//	GET /api/status           the JSON document `monitor status --json` prints
//	GET /                     the status page
package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/crashmonitor/monitor/figures"
)

// shutdownTimeout bounds the graceful stop: requests in flight get that
// long to finish.
const shutdownTimeout = 5 * time.Second

// Options is what the server shows.
type Options struct {
	Figures  *figures.Figures
	Identity figures.Identity
	Logger   *slog.Logger
	// Now is the clock the status page measures durations against
	// (time.Now when nil); tests set it to the figures' clock.
	Now func() time.Time
}

// Server is the monitor's HTTP server.
type Server struct {
	opts     Options
	registry *prometheus.Registry
	mux      *http.ServeMux
	page     *page
}

// New returns the server of opts.Figures, with a metrics registry of its
// own: the monitor's metrics, and the Go runtime's and the process's.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	reg := prometheus.NewRegistry()
	if err := opts.Figures.Register(reg); err != nil {
		return nil, fmt.Errorf("register the monitor's metrics: %w", err)
	}
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("register the Go metrics: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("register the process metrics: %w", err)
	}
	pg, err := newPage()
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, registry: reg, mux: http.NewServeMux(), page: pg}
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelError),
	})
	s.mux.Handle("GET /metrics", metrics)
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /-/healthy", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /-/ready", s.readyz)
	s.mux.HandleFunc("GET /api/status", s.apiStatus)
	s.mux.HandleFunc("GET /{$}", s.statusPage)
	return s, nil
}

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler { return s.mux }

// Listen opens the listening socket on addr; a port already in use is an
// error naming the address.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for HTTP on %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves HTTP on ln until ctx is done, then stops gracefully (requests
// in flight get a few seconds to finish). It returns nil after a stop.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// Slow or stuck clients cannot hold connections: every phase of a
	// request is bounded (a page or a scrape is written well within them).
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve HTTP: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve HTTP: %w", err)
	}
	return nil
}

// healthz: 200 while every loop makes progress or waits on purpose.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if ok, why := s.opts.Figures.Health(); !ok {
		plain(w, http.StatusServiceUnavailable, why)
		return
	}
	plain(w, http.StatusOK, "ok")
}

// readyz: 200 when this monitor runs the loops and its database answers.
// An unreachable database is said first: a monitor that loses its database
// also stands by, and the outage is the reason.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	f := s.opts.Figures
	_, _, err := f.DB(r.Context())
	switch {
	case err != nil && (f.Active() || !errors.Is(err, figures.ErrNoDatabase)):
		plain(w, http.StatusServiceUnavailable, "database unreachable: "+err.Error())
	case !f.Active():
		plain(w, http.StatusServiceUnavailable, "standby")
	default:
		plain(w, http.StatusOK, "active")
	}
}

// apiStatus serves the report as JSON.
func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request) {
	rep := s.opts.Figures.Report(r.Context(), s.opts.Identity)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		s.opts.Logger.DebugContext(r.Context(), "writing /api/status failed", "error", err)
	}
}

// statusPageCSP allows the page nothing but its inline style sheet (and
// data: images): no script, no request to anywhere, no framing.
const statusPageCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// statusPage serves the status page. It is rendered whole before anything
// is sent, so that a failure is a 500 rather than half a page.
func (s *Server) statusPage(w http.ResponseWriter, r *http.Request) {
	rep := s.opts.Figures.Report(r.Context(), s.opts.Identity)
	var buf bytes.Buffer
	if err := s.page.render(&buf, rep, s.opts.Now()); err != nil {
		s.opts.Logger.ErrorContext(r.Context(), "rendering the status page failed", "error", err)
		plain(w, http.StatusInternalServerError, "the status page could not be rendered: see the monitor's log")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", statusPageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if _, err := buf.WriteTo(w); err != nil {
		s.opts.Logger.DebugContext(r.Context(), "writing the status page failed", "error", err)
	}
}

// plain writes a one-line text answer.
func plain(w http.ResponseWriter, code int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, text)
}
