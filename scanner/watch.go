package scanner

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"sync/atomic"

	"github.com/fsnotify/fsnotify"

	"github.com/crashmonitor/monitor/crashstore"
)

// watcher turns inotify events in the inbox (the date branch) into scanner
// wake-ups. fsnotify is not recursive, so it adds a watch for every
// date-branch directory, and for each new one as it appears. It is only a
// hint: a missed event (a full inotify queue, the watch limit, a directory
// created between two calls) costs at most one loop delay, because the
// periodic walk finds everything.
type watcher struct {
	w       *fsnotify.Watcher
	crashes *crashstore.Store
	logger  *slog.Logger
	wake    chan<- struct{}

	failedAdd atomic.Bool // a watch could not be added: said once
}

func newWatcher(ctx context.Context, crashes *crashstore.Store, logger *slog.Logger, wake chan<- struct{}) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := &watcher{w: fw, crashes: crashes, logger: logger, wake: wake}
	if err := w.sync(ctx); err != nil {
		fw.Close()
		return nil, err
	}
	return w, nil
}

// sync adds a watch for every date-branch directory that exists now. The
// scanner calls it at every full pass, so a root that appeared late, or a
// watch that failed for a while, is picked up; adding a watched directory
// again is a no-op.
func (w *watcher) sync(ctx context.Context) error {
	dirs, err := w.crashes.WatchDirs(ctx)
	for _, d := range dirs {
		w.add(d)
	}
	return err
}

// add watches dir, reporting the first failure (typically the inotify watch
// limit, fs.inotify.max_user_watches) once.
func (w *watcher) add(dir string) {
	if err := w.w.Add(dir); err != nil && !errors.Is(err, fs.ErrNotExist) && w.failedAdd.CompareAndSwap(false, true) {
		w.logger.Warn("cannot watch an inbox directory; crashes there wait for the periodic scan",
			"path", dir, "error", err)
	}
}

// addTree watches a new date-branch directory and the directories already
// made below it (a collector makes HH/MM/webhead in one go, before the
// watch on HH exists).
func (w *watcher) addTree(ctx context.Context, dir string) {
	dirs, err := w.crashes.WatchDirsUnder(ctx, dir)
	if err != nil {
		w.logger.Debug("cannot list a new inbox directory; the periodic scan will", "path", dir, "error", err)
	}
	for _, d := range dirs {
		w.add(d)
	}
}

// inDateBranch reports whether path is a directory of the date branch (or
// the root, where new daily directories appear).
func (w *watcher) inDateBranch(path string) bool {
	k, ok := w.crashes.DirKind(path)
	return ok && k != crashstore.KindLink
}

// run forwards events as wake-ups until ctx is done.
func (w *watcher) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() && w.inDateBranch(ev.Name) {
					w.addTree(ctx, ev.Name)
				}
			}
			if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Write) {
				w.signal()
			}
		case err, ok := <-w.w.Errors:
			if !ok {
				return
			}
			// An overflow means events were lost: a full walk finds them.
			w.logger.Debug("inbox watch error; scanning the whole inbox", "error", err)
			w.signal()
		}
	}
}

// signal wakes the scanner without blocking: wake-ups coalesce.
func (w *watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcher) close() { w.w.Close() }
