package crashstore

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// What a scanner needs beyond the walk: the state of a pair's files without
// a verdict (the scanner decides with what it knows of their writers), the
// directories of the slots that can still receive pairs (the only ones worth
// an inotify watch), the pruning of what a walk saw emptied, and the removal
// of many inbox links through their directories' descriptors.

// PairState is what the files of a pair look like on disk.
type PairState struct {
	// Written: both files exist as regular files (a zero-byte file
	// counts). Whether their writers are done is for the caller to judge.
	Written bool
	// Latest is the later of the two modification times, when Written.
	Latest time.Time
}

// Stat stats the two files of a pair: at most two lstats on the common path.
// A pair that can never become complete because its directory is gone (a
// dangling inbox link) or because a file is not a regular file gives an
// error satisfying errors.Is(err, ErrMalformed); a failure of the whole file
// system gives a TreeFault.
func (s *Store) Stat(e Entry) (PairState, error) {
	var st PairState
	for i, p := range [2]string{e.JSONPath, e.DumpPath} {
		fi, err := os.Lstat(p)
		switch {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist) && i == 0:
			// Not written yet, or the inbox link dangles: tell which only
			// now, off the common path (the json comes last).
			d, derr := os.Lstat(e.NameDir)
			switch {
			case derr == nil && d.IsDir():
				return PairState{}, nil
			case derr != nil && !notExist(derr):
				return PairState{}, treeFault(derr, s)
			}
			return PairState{}, malformed("complete", e.NameDir, "pair directory of crash "+e.ID+" is missing")
		case errors.Is(err, fs.ErrNotExist):
			return PairState{}, nil
		case errors.Is(err, syscall.ENOTDIR):
			return PairState{}, malformed("complete", e.NameDir, "pair directory of crash "+e.ID+" is not a directory")
		default:
			return PairState{}, treeFault(err, s)
		}
		if !fi.Mode().IsRegular() {
			return PairState{}, malformed("complete", p, "a "+typeName(fi.Mode().Type())+" where a crash file belongs")
		}
		if fi.ModTime().After(st.Latest) {
			st.Latest = fi.ModTime()
		}
	}
	st.Written = true
	return st, nil
}

// Settled reports whether the files of a written pair have been left alone
// for settle by the store's clock (Options.Now), and when not, how long
// remains: at most settle, also for a file modified "in the future" (a
// writer whose clock is ahead), which waits until the clock catches up.
func (s *Store) Settled(st PairState, settle time.Duration) (bool, time.Duration) {
	left := st.Latest.Add(settle).Sub(s.nowUTC())
	if left <= 0 {
		return true, 0
	}
	return false, min(left, settle)
}

// SlotDirs returns the directories of the date branch from the root down to
// the slot directory holding t (Options.Now's clock, in UTC), whether they
// exist or not: <root>, <root>/YYYYMMDD, .../date, .../date/HH, .../date/HH/MM
// (daily); <root>, <root>/date, .../YYYY, .../MM, .../DD, .../HH, .../MM
// (flat). Collectors put new links only in the webhead directories of the
// current slot, so a watcher of new crashes needs these (and those of the
// slot before, for the clock's edges), never the rest of the tree.
func (s *Store) SlotDirs(t time.Time) []string {
	t = t.UTC()
	slot := s.slotStart(t)
	rel := dateBranch + "/" + slot.Format("2006/01/02/15/04")
	if s.layout == LayoutDaily {
		rel = t.Format("20060102") + "/" + dateBranch + "/" + slot.Format("15/04")
	}
	dirs := []string{s.root}
	for p := s.root; rel != ""; {
		var name string
		name, rel, _ = strings.Cut(rel, "/")
		p = join(p, name)
		dirs = append(dirs, p)
	}
	return dirs
}

// pastDir reports whether the clean path p is a directory of the date
// branch that PruneDirs may remove: a removable level whose whole time range
// lies before the slot starting at cur.
func (s *Store) pastDir(p string, cur time.Time) bool {
	li, start, ok := s.parse(p)
	if !ok {
		return false
	}
	lv := s.levels[li]
	return lv.removable() && !s.end(lv, start).After(cur)
}

// PruneDirs removes those of dirs (from WalkPass's past, deepest first)
// that are empty, and does what PruneDateDirs does without listing the tree
// again: directories still holding something, gone, or not past date-branch
// directories of this tree are left alone. It returns how many it removed;
// a directory that cannot be removed for another reason is reported as by
// Walk, and a failure of the whole file system (TreeFault) stops it.
func (s *Store) PruneDirs(ctx context.Context, dirs []string) (int, error) {
	cur := s.slotStart(s.nowUTC())
	removed := 0
	for _, d := range dirs {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		if !s.pastDir(d, cur) {
			continue
		}
		switch err := rmdir(d); {
		case err == nil:
			removed++
		case notEmpty(err), errors.Is(err, fs.ErrNotExist):
		default:
			if f := treeFault(err, s); AsTreeFault(f) != nil {
				return removed, f
			}
			s.report(d, err)
		}
	}
	return removed, nil
}

// LinkRemover removes inbox links through a descriptor of their webhead
// directory (unlinkat), so that a batch whose links share a few directories
// resolves each long path once instead of once a link. It is the same as
// RemoveLinks otherwise: the date link, then the name link. Not safe for
// concurrent use; Close releases the descriptor.
type LinkRemover struct {
	s   *Store
	dir string // the webhead directory open as fd, "" for none
	fd  int
}

// NewLinkRemover returns a LinkRemover for the links of s.
func (s *Store) NewLinkRemover() *LinkRemover { return &LinkRemover{s: s, fd: -1} }

// Remove is RemoveLinks(e).
func (r *LinkRemover) Remove(e Entry) error {
	if err := r.s.checkEntry("remove links", e); err != nil {
		return err
	}
	if e.DateLink != "" {
		i := strings.LastIndexByte(e.DateLink, '/')
		if err := r.unlinkIn(e.DateLink[:i], e.DateLink[i+1:]); err != nil {
			return treeFault(err, r.s)
		}
	}
	return treeFault(unlink(e.NameLink), r.s)
}

// unlinkIn removes dir/name through a descriptor of dir; a missing link or
// directory is fine.
func (r *LinkRemover) unlinkIn(dir, name string) error {
	if r.dir != dir {
		r.Close()
		fd, err := openFD(dir)
		if notExist(err) {
			return nil
		}
		if err != nil {
			// No descriptor: the path works as well, only slower.
			return unlink(join(dir, name))
		}
		r.dir, r.fd = dir, fd
	}
	err := ignoreInterrupt(func() error { return unix.Unlinkat(r.fd, name, 0) })
	if err != nil && !errors.Is(err, syscall.ENOENT) {
		return &fs.PathError{Op: "unlink", Path: join(dir, name), Err: err}
	}
	return nil
}

// Close releases the directory descriptor held, if any.
func (r *LinkRemover) Close() {
	if r.fd >= 0 {
		_ = unix.Close(r.fd)
	}
	r.dir, r.fd = "", -1
}

// openFD opens a directory (not through a symlink) as a bare descriptor.
func openFD(dir string) (int, error) {
	var fd int
	err := ignoreInterrupt(func() error {
		var err error
		fd, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	return fd, nil
}
