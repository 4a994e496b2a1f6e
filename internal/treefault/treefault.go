// Package treefault keeps the work on a storage tree waiting while the tree's
// whole file system is at fault: full, read-only, refusing the monitor,
// failing with I/O errors, or vanished (crashstore.TreeFault). The loops share
// one Board: a fault is logged once when it begins, saying what to do, and
// once when it clears, whichever loop meets it; meanwhile the work that needs
// the tree waits, as a whole, and is tried again after a backoff of MinRetry
// doubling to MaxRetry, so that it resumes within MaxRetry of the fault
// clearing. The work itself is the test: the first try after the wait either
// works (the fault is over) or fails the same way (the wait doubles).
//
// Per-crash problems (a file in the way, a malformed entry) are not faults of
// a tree and never come here.
package treefault

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/loop"
)

// The backoff between tries while a fault lasts.
const (
	MinRetry = time.Second
	MaxRetry = 20 * time.Second
)

// Names of the trees, as the configuration calls them.
const (
	StorageRoot         = "storageRoot"
	DeferredStorageRoot = "deferredStorageRoot"
	SuccessfulArchive   = "saveSuccessfulMinidumpsTo"
	FailedArchive       = "saveFailedMinidumpsTo"
)

// Board is the state of the storage trees' faults, shared by the loops. It is
// safe for concurrent use.
type Board struct {
	fig *figures.Figures

	mu     sync.Mutex
	names  map[string]string   // tree name by root
	faults map[string]*stretch // the trees at fault, by root
}

// stretch is a fault of one tree, from its start until it clears.
type stretch struct {
	kind  crashstore.FaultKind
	write bool // only a change of the tree that works shows it is over
	since time.Time
	tries int       // failed tries so far
	next  time.Time // the work waits until then
}

// New returns an empty Board that records the faults' start and end as
// events of fig (nil: none).
func New(fig *figures.Figures) *Board {
	return &Board{fig: fig, names: map[string]string{}, faults: map[string]*stretch{}}
}

// Register names the tree s (one of the names above) for the log lines. A
// root registered twice keeps its first name.
func (b *Board) Register(name string, s *crashstore.Store) {
	if s == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.names[s.Root()]; !ok {
		b.names[s.Root()] = name
	}
}

// Waiting reports whether work on the tree at root waits for its fault to
// clear, and until when: once that time has come the work is tried again
// (and Waiting says false). Work that only reads (write false) does not wait
// for a fault that only concerns changes (a full or read-only file system).
func (b *Board) Waiting(root string, write bool) (until time.Time, waiting bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.faults[root]
	if st == nil || st.write && !write || !time.Now().Before(st.next) {
		return time.Time{}, false
	}
	return st.next, true
}

// NextTry returns when the work on the first due of the trees at roots that
// are at fault is to be tried again; zero when none is at fault.
func (b *Board) NextTry(roots ...string) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	var next time.Time
	for _, r := range roots {
		if st := b.faults[r]; st != nil && (next.IsZero() || st.next.Before(next)) {
			next = st.next
		}
	}
	return next
}

// Fail records that work on a tree failed with f. A new fault is logged (a
// WARNING on logger, the line of the loop that met it) with what to do and
// what waits, and the work waits MinRetry; a try that fails when its time
// had come doubles the wait, up to MaxRetry. Work tried before its time (a
// loop that did not ask) changes nothing. A fault of another kind while one
// lasts is logged too.
func (b *Board) Fail(ctx context.Context, logger *slog.Logger, f *crashstore.TreeFault) {
	now := time.Now()
	b.mu.Lock()
	st := b.faults[f.Root]
	name := b.nameOf(f.Root)
	var began, changed bool
	switch {
	case st == nil:
		st = &stretch{kind: f.Kind, write: f.Write, since: now, tries: 1}
		st.next = now.Add(backoff(1))
		b.faults[f.Root] = st
		began = true
	default:
		if !now.Before(st.next) {
			st.tries++
			st.next = now.Add(backoff(st.tries))
		}
		if st.kind != f.Kind {
			st.kind, st.write, changed = f.Kind, f.Write, true
		}
	}
	b.mu.Unlock()
	if !began && !changed {
		return
	}
	msg := describe(name, f)
	attrs := []any{"tree", name, "root", f.Root, "error", f.Err, "retry_within", MaxRetry}
	if changed {
		msg = "storage fault changed: " + msg
	} else {
		msg = "storage fault: " + msg
	}
	logger.WarnContext(ctx, msg, attrs...)
	b.fig.Event(figures.EventStorage, msg)
}

// Succeed records that work on the tree at root worked: a change of the
// tree when write, else a read. It ends the tree's fault, logged once at
// INFO, unless the fault is one only a change shows to be over (a full or
// read-only file system, a refused write) and this was a read.
func (b *Board) Succeed(ctx context.Context, logger *slog.Logger, root string, write bool) {
	b.mu.Lock()
	st := b.faults[root]
	if st == nil || st.write && !write {
		b.mu.Unlock()
		return
	}
	delete(b.faults, root)
	name := b.nameOf(root)
	b.mu.Unlock()
	took := time.Since(st.since).Round(time.Second)
	msg := fmt.Sprintf("storage fault cleared: %s %s works again after %s (%s); the work that waited resumes",
		label(name), root, took, faultPhrase(st.kind))
	logger.InfoContext(ctx, msg, "tree", name, "root", root, "lasted", took)
	b.fig.Event(figures.EventStorage, msg)
}

// nameOf is the name of the tree at root. b.mu must be held.
func (b *Board) nameOf(root string) string {
	if n, ok := b.names[root]; ok {
		return n
	}
	return root
}

// backoff is the wait after n failed tries.
func backoff(n int) time.Duration {
	return loop.Backoff{Min: MinRetry, Max: MaxRetry}.Delay(n)
}

// describe says what is wrong with the tree, what to do, and what waits.
func describe(name string, f *crashstore.TreeFault) string {
	var todo string
	switch f.Kind {
	case crashstore.FaultFull:
		todo = "free space on " + f.Root + space(f.Root)
	case crashstore.FaultReadOnly:
		todo = "remount " + f.Root + " read-write (a file system also turns read-only after errors: see the kernel log)"
	case crashstore.FaultDenied:
		todo = "let the monitor's user read and write " + f.Root + " (owner, mode, or an immutable flag: lsattr -d)"
	case crashstore.FaultIO:
		todo = "check the device or the network mount of " + f.Root + " (kernel log)"
	default:
		return fmt.Sprintf("%s vanished (%s): mount its file system again, or restore it; %s", label(name), f.Err, waits(name))
	}
	return fmt.Sprintf("%s %s: %s; %s", label(name), faultPhrase(f.Kind), todo, waits(name))
}

// faultPhrase names a kind of fault in a sentence.
func faultPhrase(k crashstore.FaultKind) string {
	switch k {
	case crashstore.FaultFull:
		return "file system full"
	case crashstore.FaultReadOnly:
		return "file system read-only"
	case crashstore.FaultDenied:
		return "not permitted"
	case crashstore.FaultIO:
		return "I/O error"
	}
	return "vanished"
}

// label names a tree in a sentence.
func label(name string) string {
	switch name {
	case StorageRoot:
		return "storage root"
	case DeferredStorageRoot:
		return "deferred storage root"
	case SuccessfulArchive:
		return "archive of successful crashes"
	case FailedArchive:
		return "archive of failed crashes"
	}
	return "tree " + name
}

// waits says what waits while the tree is at fault.
func waits(name string) string {
	switch name {
	case StorageRoot:
		return "queuing new crashes, priority lookups and cleanups wait and retry"
	case DeferredStorageRoot:
		return "priority lookups and cleanups of crashes not in storageRoot wait and retry"
	case SuccessfulArchive:
		return "cleanups of successful crashes wait and retry; failed ones go on"
	case FailedArchive:
		return "cleanups of failed crashes wait and retry; successful ones go on"
	}
	return "the work on it waits and retries"
}

// space tells how much room the file system of root has left.
func space(root string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return ""
	}
	free := st.Bavail * uint64(st.Bsize)
	return fmt.Sprintf(" (%s free of %s, %d inodes free)", size(free), size(st.Blocks*uint64(st.Bsize)), st.Ffree)
}

// size renders a byte count for people.
func size(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
