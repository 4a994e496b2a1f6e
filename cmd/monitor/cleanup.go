package main

import (
	"log/slog"
	"time"

	"github.com/crashmonitor/monitor/cleanup"
	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/queue"
)

// newCleaner builds the cleanup loop from the running configuration. The
// storage roots and the archive settings (saveSuccessfulMinidumpsTo,
// saveFailedMinidumpsTo, dumpPermissions, dirPermissions, dumpGID) need a
// restart, so they are read once here; cleanupJobsLoopDelay is read before
// every wait.
// Its first pass waits for ready (the scanner's first pass).
func (d *daemon) newCleaner(store *queue.Store, ready <-chan struct{}, logger *slog.Logger) *cleanup.Cleaner {
	cfg := d.cfg.Load()
	trees := cleanup.Trees{Standard: d.crashStore(cfg.StorageRoot, logger)}
	if cfg.DeferredStorageRoot != "" {
		trees.Deferred = d.crashStore(cfg.DeferredStorageRoot, logger)
	}
	archive := func(root string) *crashstore.Store {
		if root == "" {
			return nil // empty setting: delete the pairs
		}
		return crashstore.New(root, d.storeOptions(cfg.DumpGID, logger))
	}
	trees.Successful = archive(cfg.SaveSuccessfulMinidumpsTo)
	trees.Failed = archive(cfg.SaveFailedMinidumpsTo)
	return cleanup.New(cleanup.Config{
		DelayFunc: func() time.Duration { return d.cfg.Load().CleanupJobsLoopDelay },
		Changed:   d.changed.C,
		Ready:     ready,
	}, trees, store, logger)
}
