package scanner

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crashmonitor/monitor/crashstore"
)

// watcher turns inotify events into scanner wake-ups, watching only what can
// still change: the directories of the current slot and of the minute before
// (crashstore.SlotDirs: the root, the day, date, hour and minute directories
// of "now"), the webhead directories in those slots, and the name
// directories of the pairs whose links appear there, for their files'
// close-after-write. Old slots are never watched: start-up costs a handful
// of watches whatever the size of the tree, and every minute the set moves
// on with the clock (directories appear through events on their parent, or
// at the next minute's refresh).
//
// A pair whose two files have both been seen closed after writing (inotify's
// IN_CLOSE_WRITE, which fsnotify v1.10 does not export) is complete at once:
// the scanner queues it without waiting out the settle time. A file already
// there when its directory's watch was added (collectors write right after
// making the link) counts as closed when no process has it open for writing
// (preState) and it is not written since. Files whose closes were not seen
// and cannot be told (a restart, a full event queue, a network file system,
// files of another user) fall back on the settle time.
//
// It is only a hint: a missed event (a full inotify queue, the watch limit)
// costs at most one loop delay, because the periodic walk finds everything.
type watcher struct {
	f       *os.File // the inotify descriptor, non-blocking, read through the runtime poller
	fd      int
	crashes *crashstore.Store
	logger  *slog.Logger
	wake    chan<- struct{}
	expire  time.Duration // a pair watched this long without completing is dropped

	mu    sync.Mutex
	dirs  map[int]*watchedDir // by watch descriptor
	paths map[string]int      // watch descriptor by path
	want  map[string]bool     // the current slots' directories, root to slot
	slots map[string]bool     // the current slot directories themselves
	pairs map[string]*pairWatch
	done  chan struct{} // closed and replaced when a pair completes

	failedAdd atomic.Bool // a watch could not be added: said once
}

// watchedDir is a directory under watch.
type watchedDir struct {
	path  string
	name  bool // a name directory (pairs' files), not a date-branch one
	pairs int  // name directories: the pairs watched in it
}

// pairWatch is what the watcher knows of a pair being written.
type pairWatch struct {
	wd     int
	since  time.Time
	files  [2]fileWatch // json, dump
	closed time.Time    // when both files were seen closed after writing
}

// fileWatch is one file of a pair.
type fileWatch struct {
	pre     bool // there and open for writing by no one when the watch was added
	written bool // modified since the watch was added
	closed  bool // closed after its last write
}

// done reports whether the file counts as closed after writing.
func (f fileWatch) done() bool { return f.closed || f.pre && !f.written }

// maxPairWatches bounds the name directories watched: past it (a burst), new
// pairs wait out the settle time.
const maxPairWatches = 4096

// Event masks.
const (
	dateMask = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_ONLYDIR
	nameMask = unix.IN_CREATE | unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_ONLYDIR
)

func newWatcher(crashes *crashstore.Store, logger *slog.Logger, wake chan<- struct{}, expire time.Duration) (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	return &watcher{
		f: os.NewFile(uintptr(fd), "inotify"), fd: fd, crashes: crashes, logger: logger, wake: wake, expire: expire,
		dirs: map[int]*watchedDir{}, paths: map[string]int{}, pairs: map[string]*pairWatch{}, done: make(chan struct{}),
	}, nil
}

// run sets the watches up, then follows the clock and the events until ctx
// is done or the watcher is closed. The scanner's first pass does not wait
// for it; one more pass comes once the watches are in place, for what
// arrived meanwhile.
func (w *watcher) run(ctx context.Context) {
	read := make(chan struct{})
	go func() { defer close(read); w.read() }()
	defer func() { w.f.Close(); <-read }()
	w.refresh(time.Now())
	w.signal()
	for {
		now := time.Now()
		t := time.NewTimer(now.Truncate(time.Minute).Add(time.Minute).Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
			w.refresh(time.Now())
		}
	}
}

// refresh makes the watched date-branch directories those of the slots of
// now and of a minute ago, and drops pairs that never completed.
func (w *watcher) refresh(now time.Time) {
	want, slots := map[string]bool{}, map[string]bool{}
	for _, t := range []time.Time{now.Add(-time.Minute), now} {
		dirs := w.crashes.SlotDirs(t)
		for _, d := range dirs {
			want[d] = true
		}
		slots[dirs[len(dirs)-1]] = true
	}
	w.mu.Lock()
	w.want, w.slots = want, slots
	for wd, d := range w.dirs {
		if !d.name && !want[d.path] && !slots[dirOf(d.path)] {
			w.remove(wd)
		}
	}
	for id, p := range w.pairs {
		if now.Sub(p.since) > w.expire {
			w.dropPair(id, p)
		}
	}
	w.mu.Unlock()
	w.addDir(w.crashes.Root())
}

// addDir watches dir when it is one of the current slots' directories or a
// webhead directory in one of them, and then what it already holds (it may
// have filled before the watch existed): the next directory down, or the
// links of a webhead directory.
func (w *watcher) addDir(dir string) {
	w.mu.Lock()
	wanted, leaf := w.want[dir], w.slots[dirOf(dir)]
	slot := w.slots[dir]
	w.mu.Unlock()
	if !wanted && !leaf {
		return
	}
	if _, ok := w.add(dir, dateMask, false); !ok {
		return
	}
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(512)
		for _, n := range names {
			p := join(dir, n)
			switch {
			case leaf:
				if !w.watchPair(p) {
					w.signal()
				}
			case slot:
				w.addDir(p)
			default:
				w.mu.Lock()
				next := w.want[p]
				w.mu.Unlock()
				if next {
					w.addDir(p)
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// add watches path, reporting the first failure (typically the inotify watch
// limit, fs.inotify.max_user_watches) once. It returns the descriptor.
func (w *watcher) add(path string, mask uint32, name bool) (int, bool) {
	wd, err := unix.InotifyAddWatch(w.fd, path, mask)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTDIR) && w.failedAdd.CompareAndSwap(false, true) {
			w.logger.Warn("cannot watch a directory of the standard tree; its crashes wait for the periodic scan or the settle time",
				"path", path, "error", err)
		}
		return 0, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if d, ok := w.dirs[wd]; ok && d.path != path {
		delete(w.paths, d.path) // the inode was renamed: take the new name
		d.path = path
	} else if !ok {
		w.dirs[wd] = &watchedDir{path: path, name: name}
	}
	w.paths[path] = wd
	return wd, true
}

// remove drops the watch wd. w.mu is held.
func (w *watcher) remove(wd int) {
	if d, ok := w.dirs[wd]; ok {
		delete(w.paths, d.path)
		delete(w.dirs, wd)
	}
	_, _ = unix.InotifyRmWatch(w.fd, uint32(wd))
}

// watchPair watches the name directory of the pair whose inbox link is at
// link, to see its files closed after writing. It reports whether the
// watcher will wake the scanner when the pair is complete; when not (no
// watch, or both files were there already, maybe being written), the
// caller wakes it, and the pass waits out the settle time.
func (w *watcher) watchPair(link string) bool {
	e, err := w.crashes.EntryAt(link)
	if err != nil {
		return false // gone already, or not a link: the walk decides
	}
	w.mu.Lock()
	_, known := w.pairs[e.ID]
	full := len(w.pairs) >= maxPairWatches
	w.mu.Unlock()
	if known {
		return true
	}
	if full {
		return false
	}
	wd, ok := w.add(e.NameDir, nameMask, true)
	if !ok {
		return false
	}
	// Collectors write the files right after the link: they may be
	// written, even closed, before the watch existed.
	p := &pairWatch{wd: wd, since: time.Now()}
	known = true
	for i, f := range [2]string{e.JSONPath, e.DumpPath} {
		switch preState(f) {
		case fileClosed:
			p.files[i].pre = true
		case fileUnknown:
			known = false
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, dup := w.pairs[e.ID]; dup {
		return true
	}
	d, ok := w.dirs[wd]
	if !ok {
		return false // removed meanwhile: the settle time does
	}
	w.pairs[e.ID] = p
	d.pairs++
	w.check(p)
	return known
}

// check marks the pair complete, and wakes the scanner, when both its files
// are closed after writing. w.mu is held.
func (w *watcher) check(p *pairWatch) {
	if p.closed.IsZero() && p.files[0].done() && p.files[1].done() {
		p.closed = time.Now()
		close(w.done)
		w.done = make(chan struct{})
		w.signal()
	}
}

// dropPair forgets a pair, and its name directory's watch when no other
// pair is watched there. w.mu is held.
func (w *watcher) dropPair(id string, p *pairWatch) {
	delete(w.pairs, id)
	if d, ok := w.dirs[p.wd]; ok {
		if d.pairs--; d.pairs <= 0 {
			w.remove(p.wd)
		}
	}
}

// closed reports whether both files of pair id were seen closed after
// writing, and not modified later than latest says (the later of the two
// files' modification times, as a stat just saw them).
func (w *watcher) closed(id string, latest time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	p, ok := w.pairs[id]
	return ok && !p.closed.IsZero() && !latest.After(p.closed)
}

// completed returns a channel closed when a pair next completes.
func (w *watcher) completed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.done
}

// forget drops the pairs the scanner queued.
func (w *watcher) forget(ids []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		if p, ok := w.pairs[id]; ok {
			w.dropPair(id, p)
		}
	}
}

// watched returns the watched directories of the date branch and how many
// name directories are watched: for tests.
func (w *watcher) watched() (dateDirs []string, nameDirs int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range w.dirs {
		if d.name {
			nameDirs++
		} else {
			dateDirs = append(dateDirs, d.path)
		}
	}
	slices.Sort(dateDirs)
	return dateDirs, nameDirs
}

// watching reports whether the files of pair id are watched: for tests.
func (w *watcher) watching(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.pairs[id]
	return ok
}

// signal wakes the scanner without blocking: wake-ups coalesce.
func (w *watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// dirOf is the directory of a clean path.
func dirOf(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return ""
}

// join joins a directory and a name.
func join(dir, name string) string { return dir + "/" + name }
