package cleanup

import (
	"errors"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/crashmonitor/monitor/crashstore"
)

// syncTrees makes a batch's renames and removals durable before its rows
// are deleted: a same-filesystem archive is a rename, which the file system
// may still lose in a power failure after the commit, bringing back a pair
// whose row is gone. syncfs(2) commits a whole file system, so it is paid
// once per file system and batch: trees whose roots share a device (st_dev)
// are synced once. A root that does not exist (not made yet: nothing was
// done in it) is skipped; one that cannot be stat'ed otherwise is synced on
// its own, and Sync says what is wrong.
func (c *Cleaner) syncTrees() error {
	synced := make(map[uint64]bool, 4)
	for _, t := range []*crashstore.Store{c.trees.Standard, c.trees.Deferred, c.trees.Successful, c.trees.Failed} {
		if t == nil {
			continue
		}
		var st unix.Stat_t
		err := unix.Stat(t.Root(), &st)
		switch {
		case errors.Is(err, unix.ENOENT):
			continue // nothing was done in it (Sync would do nothing)
		case err != nil:
		case synced[st.Dev]:
			continue
		default:
			synced[st.Dev] = true
		}
		if err := c.sync(t); err != nil {
			return err
		}
	}
	return nil
}

// unsettled remembers the jobs whose inbox links the cleanup removed while
// the scanner's first pass was still running: that pass may have read a
// link before it went and may yet insert the crash, which is harmless while
// the row is there (the insert finds it) but would queue the crash again,
// its files gone, once the row is deleted. Their rows wait for the pass;
// nothing else does. Later inbox links are the scanner's own, removed after
// its commit, and are handled by the pass-to-pass rule in clean.
type unsettled struct {
	ready <-chan struct{} // closed when the scanner's first pass is done; nil: no such pass

	mu   sync.Mutex
	jobs map[string]struct{}
}

// settled reports whether the scanner's first pass is done, forgetting the
// jobs once it is.
func (u *unsettled) settled() bool {
	if u.ready == nil {
		return true
	}
	select {
	case <-u.ready:
		u.mu.Lock()
		u.jobs = nil
		u.mu.Unlock()
		return true
	default:
		return false
	}
}

// add remembers that the links of the job uuid are being removed.
func (u *unsettled) add(uuid string) {
	if u.settled() {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.jobs == nil {
		u.jobs = make(map[string]struct{})
	}
	u.jobs[uuid] = struct{}{}
}

// held reports whether the row of the job uuid waits for the scanner's first
// pass.
func (u *unsettled) held(uuid string) bool {
	if u.settled() {
		return false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.jobs[uuid]
	return ok
}
