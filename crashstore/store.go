package crashstore

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Layout names one of the two on-disk arrangements of a storage tree. The
// monitor, the collectors and the processors must agree on it; nothing on
// disk records it.
type Layout string

const (
	// LayoutDaily is the 2009-11+ layout (socorro-classic 1.2): one
	// YYYYMMDD directory per day holding a name branch and a date branch
	// with one-minute slots. It is the default.
	LayoutDaily Layout = "daily"
	// LayoutFlat is the 2008-10..2009-11 layout (socorro-classic 1.3): one
	// name branch and one date branch under the root, five-minute slots,
	// and overflow webhead directories.
	LayoutFlat Layout = "flat"
)

// Default values of the Options fields, the classic ones.
const (
	DefaultJSONSuffix    = ".json"
	DefaultDumpSuffix    = ".dump"
	DefaultDirPerm       = fs.FileMode(0o770)
	DefaultFilePerm      = fs.FileMode(0o660)
	DefaultMaxDirEntries = 1024
)

// Names of the two branches, fixed by the contract (the classic dateName and
// indexName options were never changed in production).
const (
	dateBranch = "date"
	nameBranch = "name"
)

// readChunk is how many directory entries are read at once: a leaf directory
// may hold hundreds of thousands of links after an outage, and none of the
// walks ever holds a whole leaf in memory.
const readChunk = 512

// Options configures a Store. The zero value is the classic default: daily
// layout, .json/.dump, 0770/0660, group left alone, wall clock.
type Options struct {
	// Layout is LayoutDaily (also for "") or LayoutFlat.
	Layout Layout
	// JSONSuffix and DumpSuffix name the two files of a pair; a missing
	// leading dot is added, empty means .json and .dump.
	JSONSuffix, DumpSuffix string
	// DirPerm and FilePerm are the exact modes (whatever the umask) of the
	// directories and files this package creates: the collector side
	// (NewEntry, CreateLinks) in any tree, ArchivePair in an archive tree
	// (whose files get FilePerm whether moved or copied). Zero means 0770
	// and 0660.
	DirPerm, FilePerm fs.FileMode
	// GID, when positive, is the group given to every directory and file
	// this package creates. Zero or negative (config's -1) leaves the group
	// alone, so that a zero Options never chowns: group 0 is what a root
	// process gets anyway.
	GID int
	// MaxDirEntries is the flat layout's overflow threshold: a webhead
	// directory holding this many links is full and the next link goes to
	// <webhead>_N+1. Zero means 1024. The daily layout ignores it, as the
	// classic one did.
	MaxDirEntries int
	// Now is the clock that decides "today" for ids without a date and the
	// current slot of PruneDateDirs and Complete; nil means time.Now. Its
	// result is used in UTC.
	Now func() time.Time
	// AlwaysCopy, on an archive tree, makes ArchivePair copy files into it
	// even when a rename would do, as it does across file systems: for
	// tests of that path, and for file systems where a rename into the
	// archive must not be used.
	AlwaysCopy bool
	// Problem, when not nil, is told about each malformed thing a walk or a
	// lookup meets and skips: names that are not crash ids, links that lead
	// outside the name branch, files or symlinks where directories belong,
	// unreadable directories. The walk goes on after it. The same path is
	// reported again on every pass, so the caller logs each one once. It is
	// called on the goroutine running the method.
	Problem func(path string, err error)
}

// Store is one crash storage tree: the standard tree, the deferred tree or an
// archive. It holds its configuration and, to tell a vanished file system
// from an empty tree, what CheckRoot last saw of its root; never state about
// the crashes. A Store is safe for concurrent use and several processes may
// share a tree.
type Store struct {
	root   string // clean
	prefix string // root plus a separator: "" for ".", "/" for "/"
	layout Layout
	levels []level

	// rootState is what CheckRoot last saw of the root.
	rootState *rootState

	jsonSuffix, dumpSuffix string
	dirPerm, filePerm      fs.FileMode
	gid                    int
	maxDirEntries          int
	alwaysCopy             bool
	slotLen                time.Duration
	now                    func() time.Time
	problem                func(string, error)
	// tmpTag and tmpSeq name the temporary files of copies into this tree:
	// a tag no other Store shares, and a count.
	tmpTag string
	tmpSeq atomic.Uint64
	// walkAhead is whether walks read webhead directories ahead: when they
	// seem to wait for the disk (aheadAuto, always but in tests), always,
	// or never (walkahead.go); tests check that both ways walk alike.
	walkAhead aheadMode
}

// New returns the Store of the tree at root. Nothing is touched on disk: the
// root may not exist yet (a walk then finds nothing). The root is cleaned
// (trailing slashes stripped). An unknown layout is a programming error
// (configuration validates it) and panics.
func New(root string, opts Options) *Store {
	s := &Store{
		root:          filepath.Clean(root),
		rootState:     &rootState{},
		layout:        opts.Layout,
		jsonSuffix:    suffix(opts.JSONSuffix, DefaultJSONSuffix),
		dumpSuffix:    suffix(opts.DumpSuffix, DefaultDumpSuffix),
		dirPerm:       opts.DirPerm.Perm(),
		filePerm:      opts.FilePerm.Perm(),
		gid:           opts.GID,
		maxDirEntries: opts.MaxDirEntries,
		alwaysCopy:    opts.AlwaysCopy,
		now:           opts.Now,
		problem:       opts.Problem,
		tmpTag:        strings.ToLower(rand.Text()[:8]),
	}
	switch s.root {
	case ".":
		s.prefix = ""
	case "/":
		s.prefix = "/"
	default:
		s.prefix = s.root + "/"
	}
	switch s.layout {
	case "", LayoutDaily:
		s.layout = LayoutDaily
		s.levels = []level{lvRoot, lvDay, lvDate, lvHour, lvMinute, lvLeaf, lvLink}
		s.slotLen = time.Minute
	case LayoutFlat:
		s.levels = []level{lvRoot, lvDate, lvYear, lvMonth, lvMDay, lvHour, lvMinute, lvLeaf, lvLink}
		s.slotLen = 5 * time.Minute
	default:
		panic(fmt.Sprintf("crashstore: unknown layout %q", opts.Layout))
	}
	if s.dirPerm == 0 {
		s.dirPerm = DefaultDirPerm
	}
	if s.filePerm == 0 {
		s.filePerm = DefaultFilePerm
	}
	if s.maxDirEntries <= 0 {
		s.maxDirEntries = DefaultMaxDirEntries
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

func suffix(s, def string) string {
	switch {
	case s == "":
		return def
	case s[0] != '.':
		return "." + s
	}
	return s
}

// Root returns the tree's root directory as cleaned by New.
func (s *Store) Root() string { return s.root }

// JSONSuffix and DumpSuffix return the suffixes of a pair's two files, with
// their leading dot.
func (s *Store) JSONSuffix() string { return s.jsonSuffix }
func (s *Store) DumpSuffix() string { return s.dumpSuffix }

// Layout returns the tree's layout (LayoutDaily for an empty Options.Layout).
func (s *Store) Layout() Layout { return s.layout }

// Entry locates one crash: its pair of files in the name branch and its inbox
// link in the date branch. Paths are clean and inside Root(); this package
// builds them by joining, so they compare equal whichever method made them.
type Entry struct {
	// ID is the crash id, valid by ValidID.
	ID string
	// DateLink is the inbox link <...>/date/.../<webhead>_N/<id>. Lookup
	// leaves it empty when the name link that tells where it is is gone.
	DateLink string
	// NameDir is the directory holding the pair and the name link. Walk
	// takes it from the date link's target, never from the id, so crashes
	// stored under a day other than their id's date are found.
	NameDir string
	// JSONPath and DumpPath are the pair's files; NameLink is the name->date
	// link beside them.
	JSONPath, DumpPath, NameLink string
	// Slot is the start of the submission time slot (UTC) the date path
	// encodes: the minute (daily) or five minutes (flat). Zero when the
	// date link is unknown.
	Slot time.Time
}

var (
	// ErrNotFound is returned by Lookup when neither file of the crash
	// exists anywhere in the tree.
	ErrNotFound = errors.New("crash not found")
	// ErrInvalidID is returned when an id fails ValidID; such an id is never
	// used to build a path.
	ErrInvalidID = errors.New("invalid crash id")
	// ErrMalformed marks a tree or an Entry that does not have the layout's
	// shape: a link outside the name branch, a directory where a file
	// belongs, a pair whose directory vanished under its inbox link. Such
	// an entry can never become complete; callers report it and go on.
	ErrMalformed = errors.New("malformed crash storage")
)

// malformedError says what is wrong; errors.Is(err, ErrMalformed) holds.
type malformedError struct{ why string }

func (e *malformedError) Error() string        { return e.why }
func (e *malformedError) Is(target error) bool { return target == ErrMalformed }

// malformed returns the error for a path that breaks the layout.
func malformed(op, path, why string) error {
	return &fs.PathError{Op: op, Path: path, Err: &malformedError{why}}
}

// report hands a skipped path to the Problem callback.
func (s *Store) report(path string, err error) {
	if s.problem != nil {
		s.problem(path, err)
	}
}

// nowUTC is the store's clock in UTC.
func (s *Store) nowUTC() time.Time { return s.now().UTC() }

// entry builds the Entry of a pair living in the clean directory dir.
func (s *Store) entry(id, dir, dateLink string, slot time.Time) Entry {
	base := join(dir, id)
	return Entry{
		ID:       id,
		DateLink: dateLink,
		NameDir:  dir,
		JSONPath: base + s.jsonSuffix,
		DumpPath: base + s.dumpSuffix,
		NameLink: base,
		Slot:     slot,
	}
}

// checkEntry makes sure an Entry handed back by a caller describes paths of
// this tree, so that a zero or stale Entry can never make RemoveLinks or
// RemovePair delete something else.
func (s *Store) checkEntry(op string, e Entry) error {
	if !ValidID(e.ID) {
		return fmt.Errorf("%s %q: %w", op, e.ID, ErrInvalidID)
	}
	if e.DateLink != "" {
		li, _, ok := s.parse(e.DateLink)
		if !ok || s.levels[li] != lvLink || !strings.HasSuffix(e.DateLink, "/"+e.ID) {
			return malformed(op, e.DateLink, "not an inbox link of crash "+e.ID)
		}
	}
	if e.NameDir == "" {
		if e.NameLink != "" || e.JSONPath != "" || e.DumpPath != "" {
			return malformed(op, e.ID, "entry has file paths but no name directory")
		}
		return nil
	}
	if _, ok := s.nameTop(e.NameDir); !ok {
		return malformed(op, e.NameDir, "not a name directory")
	}
	if want := s.entry(e.ID, e.NameDir, "", time.Time{}); e.NameLink != want.NameLink ||
		e.JSONPath != want.JSONPath || e.DumpPath != want.DumpPath {
		return malformed(op, e.NameDir, "entry paths do not match crash "+e.ID)
	}
	return nil
}

// notExist reports whether err says a path (or one of its parents) is not
// there: ENOTDIR counts, since a file where a directory belongs hides the
// rest of the path just as well.
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// notEmpty reports whether a rmdir failed because the directory holds
// something (EEXIST on some systems).
func notEmpty(err error) bool {
	return errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)
}

// unlink removes a file or a link, never a directory; a missing one is fine.
func unlink(path string) error {
	if path == "" {
		return nil
	}
	if err := ignoreInterrupt(func() error { return syscall.Unlink(path) }); err != nil && !errors.Is(err, syscall.ENOENT) {
		return &fs.PathError{Op: "unlink", Path: path, Err: err}
	}
	return nil
}

// rmdir removes an empty directory, never a file.
func rmdir(path string) error {
	if err := ignoreInterrupt(func() error { return syscall.Rmdir(path) }); err != nil {
		return &fs.PathError{Op: "rmdir", Path: path, Err: err}
	}
	return nil
}

// ignoreInterrupt retries a system call interrupted by a signal, as the os
// package does for its own calls.
func ignoreInterrupt(f func() error) error {
	for {
		if err := f(); !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
