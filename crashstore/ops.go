package crashstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Complete reports whether the entry's pair is ready to be queued: both
// files exist as regular files (a zero-byte file counts) and neither was
// modified within settle before now (Options.Now). Collectors create the
// inbox link before they write the files, so a pair a walk meets may still
// be being written; settle is the quiet time that tells a finished write
// from an ongoing one. A file modified "in the future" (a collector whose
// clock is ahead) waits until now catches up.
//
// It costs at most two stats. A pair that can never become complete because
// its directory is gone (a dangling inbox link) or because a file is not a
// regular file gives an error satisfying errors.Is(err, ErrMalformed).
func (s *Store) Complete(e Entry, settle time.Duration) (bool, error) {
	ok, _, err := s.Ready(e, settle)
	return ok, err
}

// Ready is Complete that also tells when the pair became complete: the
// later of its two files' modification times (zero when not complete).
func (s *Store) Ready(e Entry, settle time.Duration) (bool, time.Time, error) {
	st, err := s.Stat(e)
	if err != nil || !st.Written || st.Latest.After(s.nowUTC().Add(-settle)) {
		return false, time.Time{}, err
	}
	return true, st.Latest, nil
}

// RemoveLinks takes an entry out of the inbox: it removes the date link,
// then the name->date link, and leaves the pair alone. Missing links are
// fine, so repeating it is harmless. The scanner calls it only after the
// entry's job row is committed: a crash in between leaves a link whose id is
// already queued, which the next walk meets again and the idempotent insert
// ignores; the reverse order would lose the crash (socorro-classic 7.1 #1).
// A crash between the two removals leaves only the name link, which no walk
// reads: lookups take it as a hint and ArchivePair and RemovePair remove it
// with the pair. The other order would leave a date link that a cleanup
// reaching the crash first could not see (Lookup learns where the date link
// is from the name link), and that would dangle forever once the pair left.
// The Entry must come from this Store; one whose paths do not belong to the
// tree is refused with ErrMalformed (or ErrInvalidID) before anything is
// removed.
func (s *Store) RemoveLinks(e Entry) error {
	if err := s.checkEntry("remove links", e); err != nil {
		return err
	}
	if err := unlink(e.DateLink); err != nil {
		return treeFault(err, s)
	}
	return treeFault(unlink(e.NameLink), s)
}

// RemovePair deletes every trace of a crash that Lookup (or Walk) found:
// the inbox link first (so no walk ever meets a link to a half-deleted
// pair), the name link, the dump, the json; then the name directories that
// became empty, bottom-up, up to but excluding <day>/name (daily) or
// <root>/name (flat). Missing parts are fine. An inbox link whose place is
// unknown (DateLink empty because the name link was already gone) is not
// searched for. A collector creating a new entry in a directory being
// emptied may see it vanish; CreateLinks makes it again.
func (s *Store) RemovePair(e Entry) error {
	if err := s.checkEntry("remove pair", e); err != nil {
		return err
	}
	for _, p := range [...]string{e.DateLink, e.NameLink, e.DumpPath, e.JSONPath} {
		if err := unlink(p); err != nil {
			return treeFault(err, s)
		}
	}
	return treeFault(s.pruneNameDirs(e.NameDir), s)
}

// pruneNameDirs removes the name directory dir if it is empty, then its
// parents while they are empty, bottom-up, up to but excluding <day>/name
// (daily) or <root>/name (flat). dir must have passed checkEntry; "" does
// nothing. A missing directory is fine.
func (s *Store) pruneNameDirs(dir string) error {
	if dir == "" {
		return nil
	}
	top, _ := s.nameTop(dir)
	for ; len(dir) > len(top); dir = filepath.Dir(dir) {
		err := rmdir(dir)
		switch {
		case err == nil, errors.Is(err, fs.ErrNotExist):
		case notEmpty(err):
			return nil
		default:
			return err
		}
	}
	return nil
}

// PruneDateDirs removes the empty date-branch directories whose whole time
// range lies before the current slot (Options.Now): webhead directories of
// past slots, then minute, hour (and flat day, month, year) directories that
// became empty, bottom-up. The current slot is left to the collectors, and a
// directory still holding an entry is simply kept. It never removes the root,
// a daily directory or its date directory (daily), nor <root>/date (flat).
// It returns how many directories it removed; malformed things are reported
// as by Walk, directories that cannot be read are passed over (the walk
// reports them), and a failure of the whole file system (TreeFault) stops it.
func (s *Store) PruneDateDirs(ctx context.Context) (int, error) {
	cur := s.slotStart(s.nowUTC())
	removed := 0
	var rec func(n node) error
	rec = func(n node) error {
		lv := s.levels[n.li]
		if n.li > 0 && !n.start.Before(cur) {
			return nil // the current slot or later: nothing to remove
		}
		if lv != lvLeaf {
			kids, err := s.list(ctx, n, s.report, nil) // the walk reports what cannot be read
			if err != nil {
				return err
			}
			for _, k := range kids {
				if err := rec(k); err != nil {
					return err
				}
			}
		}
		if !lv.removable() || s.end(lv, n.start).After(cur) {
			return nil
		}
		switch err := rmdir(n.path); {
		case err == nil:
			removed++
		case notEmpty(err), errors.Is(err, fs.ErrNotExist):
		default:
			if f := treeFault(err, s); AsTreeFault(f) != nil {
				return f
			}
			s.report(n.path, err)
		}
		return nil
	}
	err := rec(node{path: s.root})
	return removed, err
}

// Lookup finds a crash by id, for priority requests and cleanup. The daily
// layout tries the name directory computed from the id first (under the day
// of the id's date, or today for an id without one), then the same
// directory under every other daily directory, newest first, and takes the
// first where the json or the dump exists: the directory alone proves
// nothing, another id may have made it (socorro-classic 7.1 #11). The flat
// layout has a single place to look. The Entry has the pair's paths whether
// or not both files exist; DateLink and Slot come from the name link when it
// is still there (the inbox link may be gone), else they are empty. An
// invalid id is refused with ErrInvalidID without touching the disk; a crash
// with neither file anywhere gives ErrNotFound, unless the tree vanished
// (CheckRoot) or cannot be read: a TreeFault then, never ErrNotFound.
func (s *Store) Lookup(ctx context.Context, id string) (Entry, error) {
	if !ValidID(id) {
		return Entry{}, fmt.Errorf("lookup %q: %w", id, ErrInvalidID)
	}
	rel := nameBranch + "/" + nameRel(id)
	if s.layout == LayoutFlat {
		e, found, err := s.probe(join(s.root, rel), id)
		return s.lookupResult(id, e, found, err)
	}
	day, ok := IDDate(id)
	if !ok {
		day = s.nowUTC()
	}
	first := day.Format("20060102")
	if e, found, err := s.probe(join(join(s.root, first), rel), id); found || err != nil {
		return s.lookupResult(id, e, found, err)
	}
	days, err := s.list(ctx, node{path: s.root}, s.report, s.report)
	if err != nil {
		return Entry{}, fmt.Errorf("lookup %s: %w", id, err)
	}
	for i := len(days) - 1; i >= 0; i-- {
		if days[i].name == first {
			continue
		}
		if err := ctx.Err(); err != nil {
			return Entry{}, err
		}
		if e, found, err := s.probe(join(days[i].path, rel), id); found || err != nil {
			return s.lookupResult(id, e, found, err)
		}
	}
	return s.lookupResult(id, Entry{}, false, nil)
}

// lookupResult is Lookup's answer. Before it says a crash is not there it
// checks the root: a tree whose file system vanished holds nothing, which
// says nothing about the crash (the TreeFault is returned instead).
func (s *Store) lookupResult(id string, e Entry, found bool, err error) (Entry, error) {
	switch {
	case err == nil && !found:
		if _, err = s.CheckRoot(); err == nil {
			return Entry{}, fmt.Errorf("lookup %s: %w", id, ErrNotFound)
		}
	case err == nil && !s.rootState.sawTree():
		// The first crash found: remember where the tree is, so that its
		// vanishing is told from its emptiness later.
		_, _ = s.CheckRoot()
	}
	if err != nil {
		return Entry{}, fmt.Errorf("lookup %s: %w", id, treeFault(err, s))
	}
	return e, nil
}

// probe looks for a crash's files in one name directory: one stat when the
// json is there, two otherwise, and a readlink of the name link when found.
func (s *Store) probe(dir, id string) (Entry, bool, error) {
	e := s.entry(id, dir, "", time.Time{})
	_, err := os.Lstat(e.JSONPath)
	if notExist(err) {
		_, err = os.Lstat(e.DumpPath)
	}
	switch {
	case notExist(err):
		return Entry{}, false, nil
	case err != nil:
		return Entry{}, false, err
	}
	target, err := os.Readlink(e.NameLink)
	switch {
	case err == nil:
		leaf := filepath.Join(dir, target)
		if filepath.IsAbs(target) {
			leaf = filepath.Clean(target)
		}
		if li, start, ok := s.parse(leaf); ok && s.levels[li] == lvLeaf {
			e.DateLink, e.Slot = join(leaf, id), start
		} else {
			s.report(e.NameLink, malformed("lookup", e.NameLink, "target "+target+" is not a webhead directory"))
		}
	case !notExist(err):
		s.report(e.NameLink, err)
	}
	return e, true, nil
}

// Sync commits to stable storage everything written to the file system that
// holds the tree's root (syncfs(2)): the renames, unlinks and directory
// changes done so far, by this process and any other. Cleanup calls it before
// it deletes the rows of the pairs it moved, so that a power loss cannot
// bring back a pair whose row is gone. A root that does not exist is fine.
func (s *Store) Sync() error {
	f, err := os.Open(s.root)
	if notExist(err) {
		return nil
	}
	if err != nil {
		return treeFault(err, s)
	}
	defer f.Close()
	if err := ignoreInterrupt(func() error { return unix.Syncfs(int(f.Fd())) }); err != nil {
		return treeFault(&fs.PathError{Op: "syncfs", Path: s.root, Err: err}, s)
	}
	return nil
}
