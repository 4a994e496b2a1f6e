package crashstore

import (
	"cmp"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// node is a directory of the date branch met by a walk.
type node struct {
	path  string
	name  string
	li    int       // index of its level in Store.levels
	start time.Time // start of its time range
}

// Walk calls fn for every inbox link of the tree, in submission order: day,
// hour, minute, then webhead directory by name and overflow number; links of
// one webhead directory come in directory order. It streams: directories
// are read in chunks and only the small upper levels are sorted, so a leaf
// of any size walks in bounded memory.
//
// Each link is read once (one readlink) and its target, relative to the
// link's directory, gives the pair's directory: the id is never used to
// recompute it. Walk checks the target lexically (it must lie in a name
// branch of this tree) but does not stat anything: the caller decides
// whether the pair is complete (Complete, which also tells a link whose
// directory is gone). Walk removes nothing.
//
// Things that do not fit the layout (names that are not crash ids, links
// leading outside the name branch or looping back into the date branch,
// files or symlinks where directories belong, unreadable directories) are
// handed to Options.Problem and skipped; the walk goes on. A missing root or
// date branch is an empty tree, but a root that vanished (CheckRoot, called
// first) gives its TreeFault, and so does a failure to read the root that
// concerns its whole file system. fn returning an error stops the walk and
// Walk returns that error; so does the cancellation of ctx, checked before
// every link.
func (s *Store) Walk(ctx context.Context, fn func(Entry) error) error {
	return s.WalkInbox(ctx, fn, s.report)
}

// WalkInbox is Walk handing what it cannot read below the root (a directory
// or link whose opening or reading fails: permissions, an I/O error, a dead
// mount) to unreadable instead of Options.Problem, so that the caller can
// look again soon and tell when it can be read again. Malformed things still
// go to Options.Problem. unreadable is called on the goroutine running the
// walk.
func (s *Store) WalkInbox(ctx context.Context, fn func(Entry) error, unreadable func(path string, err error)) error {
	return s.WalkPass(ctx, fn, unreadable, nil)
}

// WalkPass is WalkInbox that also hands to past (when not nil), deepest
// first, each directory of the date branch it walked to the end whose whole
// time range lies before the current slot (Options.Now) and that
// PruneDateDirs would remove once empty. A scanner that has removed the
// links it queued gives them to PruneDirs: the pruning then costs no second
// listing of the tree.
func (s *Store) WalkPass(ctx context.Context, fn func(Entry) error, unreadable func(path string, err error), past func(dir string)) error {
	if _, err := s.CheckRoot(); err != nil {
		return err
	}
	w := walker{s: s, fn: fn, unreadable: unreadable, past: past, cur: s.slotStart(s.nowUTC()), ahead: s.walkAhead == aheadAlways}
	err := w.walk(ctx, node{path: s.root})
	if err == nil {
		err = w.drainWindow(ctx)
	}
	w.abandon()
	return err
}

// walker is one walk's callbacks.
type walker struct {
	s          *Store
	fn         func(Entry) error
	unreadable func(string, error)
	past       func(string)
	cur        time.Time // the current slot's start, for past
	// Reading leaves ahead (walkahead.go): the leaves being read and the
	// calls after them, in walk order, and how many of them are leaves;
	// the first error handing them out met outside handOut's callers;
	// whether the walk reads ahead; the slow leaves of the run probed.
	window             []ahead
	reading            int
	err                error
	ahead              bool
	probed, slowLeaves int
}

func (w *walker) walk(ctx context.Context, n node) error {
	s := w.s
	lv := s.levels[n.li]
	if lv == lvLeaf {
		if err := w.readAhead(ctx, n); err != nil {
			return err
		}
	} else {
		// What the listing finds wrong is told after the leaves before
		// it, which may still be being read.
		report := func(p string, err error) { w.later(ctx, func() { s.report(p, err) }) }
		unreadable := func(p string, err error) { w.later(ctx, func() { skip(w.unreadable, p, err) }) }
		kids, err := s.list(ctx, n, report, unreadable)
		if err == nil {
			err = w.err
		}
		if err != nil {
			return err
		}
		for _, k := range kids {
			if err := w.walk(ctx, k); err != nil {
				return err
			}
		}
	}
	if w.past != nil && n.li > 0 && lv.removable() && !s.end(lv, n.start).After(w.cur) {
		w.later(ctx, func() { w.past(n.path) })
		return w.err
	}
	return nil
}

// skip hands a path that cannot be read to unreadable (nil drops it).
func skip(unreadable func(string, error), path string, err error) {
	if unreadable != nil {
		unreadable(path, err)
	}
}

// linkEntry reads the inbox link leaf/id and returns its Entry. A link that
// vanished meanwhile gives an error satisfying notExist.
func (s *Store) linkEntry(leaf, id string, slot time.Time) (Entry, error) {
	link := join(leaf, id)
	target, err := os.Readlink(link)
	if err != nil {
		if errors.Is(err, syscall.EINVAL) {
			return Entry{}, malformed("readlink", link, "not a symbolic link")
		}
		return Entry{}, err
	}
	var dir string
	if filepath.IsAbs(target) {
		dir = filepath.Clean(target)
	} else {
		dir = filepath.Join(leaf, target)
	}
	if _, ok := s.nameTop(dir); !ok {
		return Entry{}, malformed("readlink", link, "target "+strconv.Quote(target)+" is not a directory of the name branch")
	}
	return s.entry(id, dir, link, slot), nil
}

// list returns the subdirectories of the non-leaf directory n that belong to
// the next level, sorted chronologically. Only failures of the root itself
// (a TreeFault when they concern its file system) and cancellation are
// errors; a directory below that cannot be read is handed to unreadable,
// anything malformed is reported, and both are skipped.
func (s *Store) list(ctx context.Context, n node, report, unreadable func(string, error)) ([]node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	next := s.levels[n.li+1]
	if next == lvDate {
		p := join(n.path, dateBranch)
		fi, err := os.Lstat(p)
		switch {
		case err == nil && fi.IsDir():
			return []node{{path: p, name: dateBranch, li: n.li + 1, start: n.start}}, nil
		case err == nil:
			report(p, malformed("walk", p, "a "+typeName(fi.Mode().Type())+" where the date directory belongs"))
		case errors.Is(err, fs.ErrNotExist):
		case n.li == 0:
			return nil, treeFault(err, s)
		default:
			skip(unreadable, p, err)
		}
		return nil, nil
	}

	f, err := openDir(n.path, n.li > 0)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case n.li == 0:
		return nil, treeFault(err, s)
	default:
		skip(unreadable, n.path, err)
		return nil, nil
	}
	defer f.Close()
	var kids []node
	for {
		des, rerr := f.ReadDir(readChunk)
		for _, de := range des {
			name := de.Name()
			if hidden(name) {
				continue
			}
			p := join(n.path, name)
			if !de.IsDir() {
				report(p, malformed("walk", p, "a "+typeName(de.Type())+" where a directory belongs"))
				continue
			}
			start, ok := childStart(next, n.start, name)
			if !ok {
				report(p, malformed("walk", p, "unexpected directory name"))
				continue
			}
			kids = append(kids, node{path: p, name: name, li: n.li + 1, start: start})
		}
		if errors.Is(rerr, io.EOF) || n.li > 0 && notExist(rerr) {
			break // removed while it was read (see streamLeaf)
		}
		if rerr != nil {
			if n.li == 0 {
				return nil, treeFault(rerr, s)
			}
			skip(unreadable, n.path, rerr)
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(kids, compareNodes)
	return kids, nil
}

// compareNodes orders siblings: by time, then (webhead directories of one
// slot) by webhead name and numerically by overflow number.
func compareNodes(a, b node) int {
	if c := a.start.Compare(b.start); c != 0 {
		return c
	}
	aw, an, _ := splitLeaf(a.name)
	bw, bn, _ := splitLeaf(b.name)
	if c := strings.Compare(aw, bw); c != 0 {
		return c
	}
	if c := cmp.Compare(len(an), len(bn)); c != 0 {
		return c
	}
	if c := strings.Compare(an, bn); c != 0 {
		return c
	}
	return strings.Compare(a.name, b.name)
}

// openDir opens a directory for reading. Directories below the root are
// not followed when they are symlinks: the tree must not lead elsewhere.
func openDir(path string, noFollow bool) (*os.File, error) {
	flag := os.O_RDONLY | syscall.O_DIRECTORY
	if noFollow {
		flag |= syscall.O_NOFOLLOW
	}
	return os.OpenFile(path, flag, 0)
}

// EntryAt returns the Entry of the inbox link at linkPath, as Walk would
// have: for a watcher that saw a new link appear (DirKind says KindLink).
// A link that is gone again gives an error satisfying
// errors.Is(err, fs.ErrNotExist); a path that is not an inbox link of this
// tree or whose target is not in the name branch gives ErrMalformed.
func (s *Store) EntryAt(linkPath string) (Entry, error) {
	p := filepath.Clean(linkPath)
	li, start, ok := s.parse(p)
	if !ok || s.levels[li] != lvLink {
		return Entry{}, malformed("entry", linkPath, "not an inbox link path of "+s.root)
	}
	i := strings.LastIndexByte(p, '/')
	return s.linkEntry(p[:i], p[i+1:], start)
}

// DirKind classifies a path of the date branch by its shape alone, without
// touching the disk, for a watcher deciding what an event is about: a new
// KindRoot, KindDay, KindDateDir or KindLeaf directory is one to watch (and
// to list, since it may have filled before the watch was added); a KindLink
// is a new inbox link for EntryAt. The caller checks that
// a path of a directory kind is a directory. It reports false for anything
// else: the name branch, the pair's files, names the layout does not allow,
// paths outside the tree.
func (s *Store) DirKind(path string) (Kind, bool) {
	li, _, ok := s.parse(filepath.Clean(path))
	if !ok {
		return 0, false
	}
	return s.levels[li].kind(), true
}

// typeName names a file type for a problem report.
func typeName(t fs.FileMode) string {
	switch {
	case t.IsRegular():
		return "regular file"
	case t&fs.ModeSymlink != 0:
		return "symbolic link"
	case t.IsDir():
		return "directory"
	}
	return "special file"
}
