package app

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/crashmonitor/monitor/config"
	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/logging"
	"github.com/crashmonitor/monitor/internal/loop"
	"github.com/crashmonitor/monitor/queue"
	"github.com/crashmonitor/monitor/web"
)

// shutdownTimeout bounds the stop: the loops must have returned by then.
const shutdownTimeout = 15 * time.Second

// Options is what the caller knows that the configuration does not say.
type Options struct {
	// Version is the build's version, logged at start.
	Version string
	// ConfigPath is the configuration file: logged at start, watched for
	// edits and re-read by a reload. Empty means no file: a reload then
	// reads the defaults and the environment.
	ConfigPath string
}

// App is the monitor daemon: its configuration, logger and loops.
type App struct {
	logger *logging.Logger
	opts   Options
	// cfg is the running configuration; a reload swaps in a copy whose
	// hot-reloadable settings changed and then notifies changed.
	cfg     atomic.Pointer[config.Config]
	changed loop.Broadcast
	// reloads holds at most one pending reload request.
	reloads chan struct{}
	// figures are the daemon's figures, which its loops feed and its HTTP
	// server shows.
	figures *figures.Figures
	// notify tells a service manager what the daemon does.
	notify *notifier
	// outage is told by the loops whether the database answers, and
	// listenOutage by the priority listener (the same tracker unless
	// databaseURL goes through a pooler); each logs an outage once.
	outage, listenOutage *outage
}

// New returns the daemon for cfg, logging to logger. It starts nothing; the
// caller keeps ownership of logger and closes it after Run has returned.
func New(cfg *config.Config, logger *logging.Logger, opts Options) *App {
	a := &App{logger: logger, opts: opts, reloads: make(chan struct{}, 1)}
	a.cfg.Store(cfg)
	a.figures = figures.New(figures.Options{
		Version: opts.Version,
		CheckIn: func() time.Duration { return a.cfg.Load().ProcessorCheckInTime },
	})
	a.notify = newNotifier(logger.Logger, a.figures)
	a.outage, a.listenOutage = newOutageTrackers(logger.Logger, a.figures, cfg.Pooled())
	return a
}

// Reload asks the running daemon to re-read its configuration file; the
// settings that can change without a restart take effect at once. It does
// not wait: requests made before the watcher runs (while Run still connects)
// are kept, several pending requests make one reload, and a request made
// after Run has returned is ignored. It is safe to call from any goroutine.
func (a *App) Reload() {
	select {
	case a.reloads <- struct{}{}:
	default: // one is pending already
	}
}

// Run runs the daemon until ctx is done or a loop fails, then stops what it
// started and returns. The loops run while this monitor is the active one;
// it stands by otherwise. It returns nil when ctx ends it, even before the
// database could be reached; an error when the database cannot be used (a
// schema missing, older or newer than this build expects, unparsable
// connection settings) or a loop fails. The stop is bounded: loops still
// running 15 seconds after the end of ctx are left behind and Run returns an
// error saying so. Run is called at most once.
func (a *App) Run(ctx context.Context) error {
	cfg := a.cfg.Load()
	log := a.logger.Logger
	log.Info("monitor starting", "version", a.opts.Version, "pid", os.Getpid(), "config", a.opts.ConfigPath)
	for _, s := range cfg.Settings() {
		log.Info("config", s.Key, s.Value)
	}
	for _, w := range cfg.Warnings() {
		log.Warn("config: " + w)
	}
	stopNotify := a.notify.start(ctx)
	defer stopNotify()

	// The HTTP server comes first: it answers (not ready) while the
	// database is out of reach, and a port already taken stops the start.
	var serving sync.WaitGroup
	defer serving.Wait()
	if addr := cfg.HTTPListenAddress; addr != "" {
		srv, ln, err := a.listen(addr)
		if err != nil {
			return err
		}
		sctx, stopServing := context.WithCancel(ctx)
		defer stopServing()
		serving.Go(func() {
			if err := srv.Serve(sctx, ln); err != nil {
				log.Error("HTTP server failed", "error", err)
			}
		})
		log.Info("serving HTTP", "address", ln.Addr().String())
	}

	scfg, err := a.sessionConfig()
	if err != nil {
		return err
	}
	pool, err := a.connect(ctx)
	if err != nil {
		if ctx.Err() != nil {
			log.Info("monitor stopped before the database was reachable")
			return nil
		}
		return err
	}
	// pool.Close waits until every connection is back; after a stop that
	// timed out a loop may still hold one, so the pool is then closed in the
	// background instead, and Run keeps its bound.
	closePool := pool.Close
	defer func() { closePool() }()
	store := queue.NewStore(pool)
	if err := store.CheckSchema(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("check schema: %w", err)
	}

	a.figures.SetDB(store)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.reportApMon(gctx) })
	watching := make(chan struct{})
	g.Go(func() error { return a.watchConfig(gctx, watching) })
	// The loops run only while this monitor is the active one.
	el := a.newElector(scfg)
	g.Go(func() error { return el.Run(gctx, a.lead(store, el)) })
	// "monitor started" promises that an edit of the file from now on is
	// applied, and that the monitor knows whether it is active or standing
	// by: wait for the watch to be in place and for the first election.
	for _, c := range []<-chan struct{}{watching, el.Decided()} {
		select {
		case <-c:
		case <-gctx.Done():
		}
	}
	a.figures.Event(figures.EventLifecycle, "monitor started")
	log.Info("monitor started")
	a.notify.ready()

	<-gctx.Done()
	a.notify.stopping()
	if ctx.Err() != nil {
		log.Info("monitor stopping", "timeout", shutdownTimeout)
	}
	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	select {
	case err = <-done:
	case <-time.After(shutdownTimeout):
		closePool = func() { go pool.Close() }
		return fmt.Errorf("loops still running %s after the stop signal; exiting anyway", shutdownTimeout)
	}
	if err != nil {
		return err
	}
	log.Info("monitor stopped")
	return nil
}

// listen opens the HTTP server's socket on addr and builds the server.
func (a *App) listen(addr string) (*web.Server, net.Listener, error) {
	host, _ := os.Hostname()
	srv, err := web.New(web.Options{
		Figures:  a.figures,
		Identity: figures.Identity{Version: a.opts.Version, PID: os.Getpid(), Host: host},
		Logger:   a.loggerFor("http"),
	})
	if err != nil {
		return nil, nil, err
	}
	ln, err := web.Listen(addr)
	if err != nil {
		return nil, nil, err
	}
	return srv, ln, nil
}
