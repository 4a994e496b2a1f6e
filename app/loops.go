package app

import (
	"context"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/crashmonitor/monitor/alert"
	"github.com/crashmonitor/monitor/cleanup"
	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/logging"
	"github.com/crashmonitor/monitor/internal/treefault"
	"github.com/crashmonitor/monitor/priority"
	"github.com/crashmonitor/monitor/queue"
	"github.com/crashmonitor/monitor/scanner"
)

// startLoops builds the scanner, priority and cleanup loops and the
// evaluation of the threshold rules on store and runs each in g until ctx is
// done. Their delays and processorCheckInTime are read from the running
// configuration before every wait, and a reload wakes them. They share one board of the storage trees' faults, so that a
// fault is logged once whichever loop meets it.
func (a *App) startLoops(ctx context.Context, g *errgroup.Group, store *queue.Store) {
	cfg := a.cfg.Load()
	faults := treefault.New(a.figures)
	scanLog := a.loggerFor("scanner")
	sc := scanner.New(scanner.Config{
		DelayFunc:   func() time.Duration { return a.cfg.Load().StandardLoopDelay },
		CheckInFunc: func() time.Duration { return a.cfg.Load().ProcessorCheckInTime },
		Faults:      faults,
		Changed:     a.changed.C,
		Figures:     a.figures,
		Outage:      a.outage,
		NoEvents:    !cfg.InboxEvents,
	}, a.crashStore(cfg.StorageRoot, scanLog), store, scanLog)
	g.Go(func() error { return sc.Run(ctx) })

	prioLog := a.loggerFor("priority")
	var deferred *crashstore.Store
	if cfg.DeferredStorageRoot != "" {
		deferred = a.crashStore(cfg.DeferredStorageRoot, prioLog)
	}
	pr := priority.New(priority.Config{
		DelayFunc:   func() time.Duration { return a.cfg.Load().PriorityLoopDelay },
		CheckInFunc: func() time.Duration { return a.cfg.Load().ProcessorCheckInTime },
		Faults:      faults,
		Changed:     a.changed.C,
		Figures:     a.figures,
		Outage:      a.outage,
		Listener:    a.listenOutage,
		Listen:      a.listenPriority,
	}, a.crashStore(cfg.StorageRoot, prioLog), deferred, store, prioLog)
	g.Go(func() error { return pr.Run(ctx) })

	cl := a.newCleaner(store, sc.FirstPassDone(), faults, a.loggerFor("cleanup"))
	g.Go(func() error { return cl.Run(ctx) })

	// The threshold rules are evaluated by the active monitor only, and
	// their memory is written through the same fenced store.
	ev := alert.New(alert.Options{
		Figures:  a.figures,
		Store:    store,
		Rules:    func() []alert.Rule { return a.cfg.Load().AlertRules },
		Interval: func() time.Duration { return a.cfg.Load().AlertInterval },
		Changed:  a.changed.C,
		Outage:   a.outage,
		Logger:   a.loggerFor("alerts"),
	})
	g.Go(func() error { return ev.Run(ctx) })
}

// newCleaner builds the cleanup loop from the running configuration. The
// storage roots and the archive settings (saveSuccessfulMinidumpsTo,
// saveFailedMinidumpsTo, dumpPermissions, dirPermissions, dumpGID) need a
// restart, so they are read once here; cleanupJobsLoopDelay is read before
// every wait. It starts at once; ready (the scanner's first pass) only holds
// the rows of the crashes whose leftover inbox links it removes meanwhile.
func (a *App) newCleaner(store *queue.Store, ready <-chan struct{}, faults *treefault.Board, logger *slog.Logger) *cleanup.Cleaner {
	cfg := a.cfg.Load()
	trees := cleanup.Trees{Standard: a.crashStore(cfg.StorageRoot, logger)}
	if cfg.DeferredStorageRoot != "" {
		trees.Deferred = a.crashStore(cfg.DeferredStorageRoot, logger)
	}
	archive := func(root string) *crashstore.Store {
		if root == "" {
			return nil // empty setting: delete the pairs
		}
		return crashstore.New(root, a.storeOptions(cfg.DumpGID, logger))
	}
	trees.Successful = archive(cfg.SaveSuccessfulMinidumpsTo)
	trees.Failed = archive(cfg.SaveFailedMinidumpsTo)
	return cleanup.New(cleanup.Config{
		DelayFunc: func() time.Duration { return a.cfg.Load().CleanupJobsLoopDelay },
		Faults:    faults,
		Changed:   a.changed.C,
		Ready:     ready,
		Figures:   a.figures,
		Outage:    a.outage,
	}, trees, store, logger)
}

// loggerFor returns the logger of a loop: its lines carry the loop's name.
func (a *App) loggerFor(name string) *slog.Logger {
	return a.logger.With(logging.LoopKey, name)
}

// crashStore opens a storage tree with the configured layout; problems met
// in it (malformed names, dangling links) are logged once per path.
func (a *App) crashStore(root string, logger *slog.Logger) *crashstore.Store {
	return crashstore.New(root, a.storeOptions(-1, logger))
}

// storeOptions are the crashstore options of the running configuration:
// layout, suffixes and modes; files and directories made get the group gid
// when it is positive; problems are logged once per path.
func (a *App) storeOptions(gid int, logger *slog.Logger) crashstore.Options {
	cfg := a.cfg.Load()
	return crashstore.Options{
		Layout:     crashstore.Layout(cfg.StorageLayout),
		JSONSuffix: cfg.JSONFileSuffix,
		DumpSuffix: cfg.DumpFileSuffix,
		DirPerm:    cfg.DirPermissions,
		FilePerm:   cfg.DumpPermissions,
		GID:        gid,
		Problem:    logging.NewProblemLog(logger, 10000).Report,
	}
}
