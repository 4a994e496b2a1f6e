package priority

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/loop"
	"github.com/crashmonitor/monitor/internal/treefault"
)

// Reasons a request is kept.
const (
	keptIncomplete = "incomplete pair"
	keptLookup     = "lookup failed"
	keptWaiting    = "no live processor"
	keptNoTable    = "owner has no priority table"
	keptTell       = "telling the owner failed"
	keptRetry      = "changed meanwhile"
	keptFault      = "tree at fault"
)

// keptRequest is what the loop remembers of a request it could not resolve.
type keptRequest struct {
	reason   string
	since    time.Time // first kept for this reason
	next     time.Time // not looked at again before
	attempts int       // for this reason
	warned   bool      // logged for this reason
}

// settleKept forgets the kept requests that are no longer in priorityjobs
// (resolved by someone else, or deleted) and computes when the next one is
// due.
func (l *Loop) settleKept() {
	l.kept.EndPass()
	l.nextDue = time.Time{}
	for _, k := range l.kept.All() {
		if l.nextDue.IsZero() || k.next.Before(l.nextDue) {
			l.nextDue = k.next
		}
	}
}

// retryDelay is the wait before the next look at a request whose lookup or
// telling failed n times in a row.
func retryDelay(n int) time.Duration {
	return loop.Backoff{Min: MinRetry, Max: MaxRetry}.Delay(n)
}

// truncate cuts a request to at most maxLogged bytes, on a character
// boundary, for a log line. The log handlers quote a value that needs it
// (strconv.Quote, as %q does: quotes, spaces, control and unprintable
// characters are escaped), so a hostile request can neither forge a line nor
// hide in one.
func truncate(s string) string {
	if len(s) <= maxLogged {
		return s
	}
	cut := 0
	for i := range s {
		if i > maxLogged {
			break
		}
		cut = i
	}
	return s[:cut]
}

// ownerName renders a previous owner for the logs: 0 stands for NULL.
func ownerName(id int64) string {
	if id == 0 {
		return "none"
	}
	return strconv.FormatInt(id, 10)
}

// keep records that the request id is kept for reason and looked at again
// after wait. A new reason starts a new stretch.
func (l *Loop) keep(id, reason string, now time.Time, wait time.Duration) *keptRequest {
	k := l.kept.Get(id)
	if k == nil || k.reason != reason {
		k = &keptRequest{reason: reason, since: now}
		l.kept.Replace(id, k)
	}
	k.attempts++
	k.next = now.Add(wait)
	return k
}

// attempts returns how many times the request id was kept for reason in a
// row.
func (l *Loop) attempts(id, reason string) int {
	if k := l.kept.Get(id); k != nil && k.reason == reason {
		return k.attempts
	}
	return 0
}

// errWaits is the lookup of a crash in a tree that waits for its fault to
// clear (the board's next try of it).
type errWaits struct{ until time.Time }

func (e *errWaits) Error() string { return "the tree waits for its fault to clear" }

// find looks for the crash id in the trees in order (crashstore.Find), but
// does not look in a tree waiting for its fault to clear: the request waits
// with it (errWaits). A lookup that works tells the board.
func (l *Loop) find(ctx context.Context, id string) (*crashstore.Store, crashstore.Entry, error) {
	stores := make([]*crashstore.Store, len(l.trees))
	for i, t := range l.trees {
		stores[i] = t.store
	}
	held := func(s *crashstore.Store) error {
		if until, waiting := l.faults.Waiting(s.Root(), false); waiting {
			return &errWaits{until}
		}
		return nil
	}
	s, e, err := crashstore.Find(ctx, id, held, stores...)
	if err == nil {
		l.faults.Succeed(ctx, l.logger, s.Root(), false)
	}
	return s, e, err
}

// fault records err on the board when it is a fault of a whole tree, and
// reports whether it was.
func (l *Loop) fault(ctx context.Context, err error) bool {
	f := crashstore.AsTreeFault(err)
	if f != nil {
		l.faults.Fail(ctx, l.logger, f)
	}
	return f != nil
}

// faultWait reports whether err says that store waits for its fault to
// clear, and until when the request should wait.
func (l *Loop) faultWait(ctx context.Context, store *crashstore.Store, err error) (time.Time, bool) {
	var w *errWaits
	switch {
	case errors.As(err, &w):
		return w.until, true
	case crashstore.AsTreeFault(err) != nil:
		l.fault(ctx, err)
		until, waiting := l.faults.Waiting(store.Root(), false)
		if !waiting {
			until = time.Now().Add(treefault.MinRetry)
		}
		return until, true
	}
	return time.Time{}, false
}
