package scanner

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/loop"
	"github.com/crashmonitor/monitor/internal/treefault"
)

// How the scanner deals with storage faults. A fault of the whole standard
// tree (crashstore.TreeFault: its file system vanished, failing, or refusing
// to be read) stops the pass where it is, with nothing concluded from what
// the walk saw: no pruning, no inbox figures, and the cleanup is not told
// that the inbox is settled. The fault goes on the shared board (logged once
// there) and the next pass comes on its backoff. A tree that cannot be
// changed (read-only, full) does not stop the queuing: the links of queued
// crashes stay until it can, and the walks meanwhile find those crashes
// queued.
//
// A directory of the inbox that cannot be read (permissions, an I/O error, a
// dead mount over it) is a problem of that directory only: the walk goes on
// without it, it is logged once, and passes come every MinRetry doubling to
// MaxRetry until it can be read (logged once too), so that its crashes are
// queued within seconds.

// unreadableDir is what the scanner remembers of an inbox directory it could
// not read.
type unreadableDir struct {
	since time.Time
}

// walkFaults is what a pass met that a fault explains, collected from the
// walk and the unlinkers.
type walkFaults struct {
	unreadable map[string]error // inbox paths the walk could not read (the walk's goroutine)

	mu       sync.Mutex
	unlink   *crashstore.TreeFault // the first unlink that failed for the whole tree
	unlinked bool                  // an unlink worked
}

// noteUnreadable records a path the walk could not read.
func (w *walkFaults) noteUnreadable(path string, err error) {
	if w.unreadable == nil {
		w.unreadable = map[string]error{}
	}
	w.unreadable[path] = err
}

// unlinkDone records the outcome of an entry's link removal: it reports
// whether err is a fault of the whole tree (recorded, not to be logged per
// crash).
func (w *walkFaults) unlinkDone(err error) bool {
	f := crashstore.AsTreeFault(err)
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil:
		w.unlinked = true
	case f != nil && w.unlink == nil:
		w.unlink = f
	}
	return f != nil
}

// soon asks for the next pass within d.
func (s *Scanner) soon(d time.Duration) {
	if s.next == 0 || d < s.next {
		s.next = d
	}
}

// treeFault records a fault of the standard tree on the board and asks for
// the next pass when it is due. It reports whether err was one.
func (s *Scanner) treeFault(ctx context.Context, err error) bool {
	f := crashstore.AsTreeFault(err)
	if f == nil {
		return false
	}
	s.faults.Fail(ctx, s.logger, f)
	if until, waiting := s.faults.Waiting(s.crashes.Root(), false); waiting {
		s.soon(max(time.Until(until), s.cfg.Recheck))
	}
	return true
}

// settleFaults tells the board what a pass that walked the whole inbox met:
// the tree read (and changed, when a link went), or could not be changed.
func (s *Scanner) settleFaults(ctx context.Context, w *walkFaults, held bool) {
	root := s.crashes.Root()
	if held {
		s.faults.Succeed(ctx, s.logger, root, false)
	}
	w.mu.Lock()
	f, unlinked := w.unlink, w.unlinked
	w.mu.Unlock()
	if f != nil {
		s.faults.Fail(ctx, s.logger, f)
	} else if unlinked {
		s.faults.Succeed(ctx, s.logger, root, true)
	}
}

// settleUnreadable logs the inbox paths the walk could not read for the first
// time, and, when the walk was complete (every readable directory visited),
// those it read again; while any stays unreadable the next pass comes soon.
func (s *Scanner) settleUnreadable(ctx context.Context, found map[string]error, complete bool) {
	now := time.Now()
	for p, err := range found {
		s.unreadable.Seen(p)
		if u, added := s.unreadable.Remember(p); added {
			u.since = now
			s.logger.WarnContext(ctx, "inbox directory unreadable: its crashes wait, the rest of the inbox is queued; make it readable by the monitor's user, or check its file system",
				"path", p, "error", err, "retry_within", treefault.MaxRetry)
		}
	}
	if !complete {
		for p := range s.unreadable.All() {
			s.unreadable.Seen(p) // not looked at: still remembered
		}
	} else {
		for p, u := range s.unreadable.All() {
			if _, still := found[p]; still {
				continue
			}
			state := "readable again: its crashes are queued"
			if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
				state = "gone"
			}
			s.logger.InfoContext(ctx, "inbox directory "+state, "path", p, "unreadable_for", now.Sub(u.since).Round(time.Second))
		}
	}
	s.unreadable.EndPass()
	if s.unreadable.Len() == 0 {
		s.unreadableTries = 0
		return
	}
	s.unreadableTries++
	s.soon(loop.Backoff{Min: treefault.MinRetry, Max: treefault.MaxRetry}.Delay(s.unreadableTries))
}
