package crashstore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// FaultKind says what is wrong with a whole tree.
type FaultKind uint8

const (
	// FaultFull: the file system is out of space or inodes, or the user's
	// quota is spent (ENOSPC, EDQUOT).
	FaultFull FaultKind = iota + 1
	// FaultReadOnly: the file system is mounted read-only (EROFS).
	FaultReadOnly
	// FaultDenied: the tree's root refuses the monitor's user (EACCES,
	// EPERM, as access(2) on the root confirms: its mode, its owner, an
	// immutable flag). A refusal deeper in the tree is a problem of the
	// crashes there, not of the tree.
	FaultDenied
	// FaultIO: the device or the remote file system fails (EIO, a dead
	// network or FUSE mount, a corrupted file system). An I/O error reading
	// the content of one crash file (a bad block) is that crash's problem.
	FaultIO
	// FaultVanished: the root is gone, or is no longer the directory it
	// was (see CheckRoot).
	FaultVanished
)

// String names the kind for logs.
func (k FaultKind) String() string {
	switch k {
	case FaultFull:
		return "full"
	case FaultReadOnly:
		return "read-only"
	case FaultDenied:
		return "access denied"
	case FaultIO:
		return "I/O error"
	case FaultVanished:
		return "vanished"
	}
	return fmt.Sprintf("FaultKind(%d)", uint8(k))
}

// TreeFault is an error of a whole tree rather than of one crash: while it
// lasts no work on the tree can succeed, and nothing must be concluded from
// what the tree seems to hold. The methods of a Store return one (in the
// error chain) when an operation fails that way; errors.As finds it.
type TreeFault struct {
	Kind FaultKind
	// Root is the root of the tree at fault (Store.Root).
	Root string
	// Write says that the failing operation was one that changes the
	// tree: only a change that succeeds shows such a fault is over, since
	// reading may work meanwhile (a full or read-only file system).
	Write bool
	// Err is what failed.
	Err error
}

func (f *TreeFault) Error() string { return f.Err.Error() }
func (f *TreeFault) Unwrap() error { return f.Err }

// AsTreeFault returns the TreeFault in err's chain, or nil.
func AsTreeFault(err error) *TreeFault {
	var f *TreeFault
	if errors.As(err, &f) {
		return f
	}
	return nil
}

// treeFault returns err as a *TreeFault when its errno concerns a whole file
// system, of the first of stores whose tree holds the failing path (the
// first store when none does); any other error is returned unchanged.
func treeFault(err error, stores ...*Store) error {
	if err == nil || AsTreeFault(err) != nil {
		return err
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return err
	}
	path, op := failing(err)
	s := stores[0]
	for _, c := range stores {
		if c != nil && path != "" && c.contains(path) {
			s = c
			break
		}
	}
	write := writeOps[op]
	var kind FaultKind
	switch errno {
	case unix.ENOSPC, unix.EDQUOT:
		kind = FaultFull
	case unix.EROFS:
		kind = FaultReadOnly
	case unix.EIO, unix.EUCLEAN, unix.EBADMSG, unix.ENOTCONN, unix.ESTALE, unix.ENODEV,
		unix.ENXIO, unix.EREMOTEIO, unix.ETIMEDOUT, unix.EHOSTDOWN:
		if op == "read" && errno != unix.ENOTCONN && errno != unix.ESTALE {
			// The content of one file cannot be read (a bad block): a
			// problem of that crash, which must not hold up the others.
			return err
		}
		kind = FaultIO
	case unix.EACCES, unix.EPERM:
		if !s.rootRefuses(write) {
			return err
		}
		kind = FaultDenied
	default:
		return err
	}
	return &TreeFault{Kind: kind, Root: s.root, Write: write, Err: err}
}

// writeOps are the operations (as os and this package name them in their
// errors) that change a tree.
var writeOps = map[string]bool{
	"mkdir": true, "unlink": true, "rmdir": true, "rename": true, "chmod": true, "chown": true,
	"chtimes": true, "write": true, "sync": true, "syncfs": true, "create": true, "close": true,
	"truncate": true, "symlink": true, "link": true,
}

// failing returns the path and the operation of a failed system call.
func failing(err error) (path, op string) {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &le):
		return le.New, le.Op
	case errors.As(err, &pe):
		return pe.Path, pe.Op
	}
	return "", ""
}

// contains reports whether the clean path p is the root or lies below it.
func (s *Store) contains(p string) bool {
	return p == s.root || len(p) > len(s.prefix) && p[:len(s.prefix)] == s.prefix
}

// rootRefuses reports whether the tree's root itself refuses the process
// writing (or reading) in it.
func (s *Store) rootRefuses(write bool) bool {
	mode := uint32(unix.R_OK | unix.X_OK)
	if write {
		mode = unix.W_OK | unix.X_OK
	}
	return unix.Access(s.root, mode) != nil
}

// vanished is the fault of a tree whose root is gone or changed: why says
// how.
func (s *Store) vanished(why string) *TreeFault {
	return &TreeFault{Kind: FaultVanished, Root: s.root, Err: fmt.Errorf("%s %s", s.root, why)}
}

// rootState is what a Store last saw of its root, so that a file system
// unmounted under the monitor is not taken for a tree whose crashes are all
// gone.
type rootState struct {
	mu   sync.Mutex
	held bool   // the root held a tree (its layout's top directories)
	top  string // the top directory of the root's file system on the root's path
}

// sawTree reports whether the root was seen holding a tree.
func (rs *rootState) sawTree() bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.held
}

// CheckRoot reports whether the tree is still where it was, and whether its
// root holds a tree now (for the daily layout a daily directory, for the
// flat layout its name or date directory; collectors make them with the
// first crash and nothing removes them).
//
// Once the root has held a tree, it is a FaultVanished TreeFault for the
// root to be gone, to hold no tree any more, or to be on another file system
// than before (its file system's top directory on the root's path changed:
// a mount at or above the root went away, so the directory under it shows).
// A tree mounted again at the same place is back, whatever its device. A
// root that never held a tree (a new installation, a tree not used yet) is
// no fault whatever happens to it, nor is a root that does not exist (an
// empty tree). A root that cannot be looked at gives the TreeFault of that
// error. It is cheap (a stat per directory up the root's path and the first
// entries of the root) and safe for concurrent use.
func (s *Store) CheckRoot() (held bool, err error) {
	held, top, err := s.probeRoot()
	rs := s.rootState
	rs.mu.Lock()
	defer rs.mu.Unlock()
	switch {
	case err == nil:
	case notExist(err) && !rs.held:
		return false, nil
	case notExist(err):
		return false, s.vanished("does not exist any more")
	default:
		if f := treeFault(err, s); AsTreeFault(f) != nil {
			return false, f
		}
		return false, &TreeFault{Kind: FaultVanished, Root: s.root, Err: err}
	}
	if rs.held {
		switch {
		case top != rs.top:
			return held, s.vanished(fmt.Sprintf("is no longer on the file system mounted at %s (it is on %s's now)", rs.top, top))
		case !held:
			return false, s.vanished("holds no crash tree any more")
		}
	}
	rs.held, rs.top = held, top
	return held, nil
}

// ExpectTree is CheckRoot for a caller about to conclude that a crash is
// gone because the tree does not hold it: a root that holds no tree is then
// a FaultVanished TreeFault too, even if it never held one since the Store
// first looked (the monitor may have started while the file system was not
// mounted).
func (s *Store) ExpectTree() error {
	held, err := s.CheckRoot()
	if err == nil && !held {
		err = s.vanished("holds no crash tree")
	}
	return err
}

// probeRoot stats the root and finds the top directory of its file system
// on its path, and whether it holds a tree.
func (s *Store) probeRoot() (held bool, top string, err error) {
	var st unix.Stat_t
	if err := ignoreInterrupt(func() error { return unix.Stat(s.root, &st) }); err != nil {
		return false, "", &fs.PathError{Op: "stat", Path: s.root, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return false, "", &fs.PathError{Op: "stat", Path: s.root, Err: unix.ENOTDIR}
	}
	if top, err = fileSystemTop(s.root, st.Dev); err != nil {
		return false, "", err
	}
	held, err = s.holdsTree()
	return held, top, err
}

// fileSystemTop returns the highest directory on the path of root (symbolic
// links resolved) that is on the device dev: where the file system holding
// root is mounted, or "/".
func fileSystemTop(root string, dev uint64) (string, error) {
	abs, err := filepath.Abs(root)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return "", err
	}
	for dir := abs; ; {
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir, nil
		}
		var st unix.Stat_t
		if err := unix.Stat(parent, &st); err != nil {
			return "", &fs.PathError{Op: "stat", Path: parent, Err: err}
		}
		if st.Dev != dev {
			return dir, nil
		}
		dir = parent
	}
}

// holdsTree reports whether the root holds the top directories of its
// layout: a daily directory (daily), a name or date directory (flat).
func (s *Store) holdsTree() (bool, error) {
	f, err := openDir(s.root, false)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for {
		des, err := f.ReadDir(readChunk)
		for _, de := range des {
			if !de.IsDir() {
				continue
			}
			name := de.Name()
			if s.layout == LayoutFlat {
				if name == nameBranch || name == dateBranch {
					return true, nil
				}
			} else if _, ok := childStart(lvDay, time.Time{}, name); ok {
				return true, nil
			}
		}
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}
