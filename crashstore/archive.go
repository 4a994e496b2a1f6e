package crashstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// FileOutcome tells what ArchivePair did with one file of a pair.
type FileOutcome uint8

const (
	// FileMissing means the file is neither in the source tree nor in the
	// archive: it was lost before the cleanup (or never written).
	FileMissing FileOutcome = iota
	// FileMoved means the file was renamed into the archive (same file
	// system).
	FileMoved
	// FileCopied means the file was copied into the archive (another file
	// system), made durable there, and then removed from the source.
	FileCopied
	// FileArchived means the file was already in the archive and no longer
	// in the source: an earlier attempt that was interrupted before its job
	// row was removed had moved it.
	FileArchived
)

// String returns the outcome's name, for logs.
func (o FileOutcome) String() string {
	switch o {
	case FileMissing:
		return "missing"
	case FileMoved:
		return "moved"
	case FileCopied:
		return "copied"
	case FileArchived:
		return "already archived"
	}
	return fmt.Sprintf("FileOutcome(%d)", uint8(o))
}

// ArchiveResult reports what ArchivePair did.
type ArchiveResult struct {
	// Target is the pair's place in the archive tree: NameDir, JSONPath and
	// DumpPath (no links are ever made there).
	Target Entry
	// JSON and Dump tell what happened to each file.
	JSON, Dump FileOutcome
}

// Complete reports whether both files are now in the archive.
func (r ArchiveResult) Complete() bool { return r.JSON != FileMissing && r.Dump != FileMissing }

// Found reports whether at least one file of the pair is in the archive.
func (r ArchiveResult) Found() bool { return r.JSON != FileMissing || r.Dump != FileMissing }

// ArchivePair moves the pair of e, found in this tree by Lookup, into the
// archive tree archive (saveSuccessfulMinidumpsTo, saveFailedMinidumpsTo):
// same layout, no links, dated by the crash id's date (today, UTC, for an id
// without one), files with the archive's FilePerm and directories with its
// DirPerm, both with its GID when positive.
//
// The steps, each safe to repeat:
//
//  1. The inbox links, if still there, are removed first, so no walk ever
//     meets a link to a pair that is leaving.
//  2. Each file (dump, then json) is placed in the archive. On the same file
//     system it is renamed: atomic, so the file is at exactly one of its two
//     places at any instant. Across file systems (EXDEV, or Options.AlwaysCopy
//     on the archive) it is copied to a hidden temporary file of its own
//     beside its target (.<name>.<tag>.tmp; those interrupted attempts left
//     are removed once the copy is in place), fsynced, given its mode, group
//     and modification time, and renamed into place; so a target that exists
//     is always complete.
//  3. If anything was copied, the target directory is fsynced, and only then
//     are the copied sources removed.
//  4. The pair's name directories that became empty are removed, bottom-up,
//     as RemovePair does.
//
// The rules that make a repeat after a crash at any instant finish the job
// exactly once: a source that still exists is the truth and is placed again
// (a rename or a copy replaces whatever an interrupted attempt left at the
// target, with the same bytes); a source that is gone while its target
// exists was archived by that attempt (FileArchived; its mode and group are
// set again, in case the crash came between the rename and the chmod); a file
// at neither place is FileMissing, and the rest of the pair is still
// archived. A pair therefore never exists twice in the archive and is never
// lost, whatever the order of the kill and the restart; a power failure
// after a same-file-system rename can at worst put a pair back in the source
// tree, intact.
//
// Two attempts at one pair may also run at once (a monitor that has just lost
// its lease, and the one that took over): each copies through a temporary file
// of its own, and an attempt whose source vanished under it (the other moved
// it) finds the file archived instead of failing. A lost race costs nothing.
//
// e may hold only ID (the crash was found in no source tree): ArchivePair
// then only looks in the archive and reports what is there. For an id without
// a date, when a source file is gone and today's place in the archive does not
// hold it, the pair's place is looked up in the whole archive (an attempt
// interrupted on another day put it there), so the two files stay together.
//
// Errors (a file in the way of a directory, permissions, a full disk, a
// source that is not a regular file) leave everything as it was or half done
// in a way the next call finishes; they say which path failed. One that
// concerns a whole file system is a TreeFault of the tree (the archive or
// this one) holding the failing path.
func (s *Store) ArchivePair(ctx context.Context, e Entry, archive *Store) (ArchiveResult, error) {
	res, err := s.archivePair(ctx, e, archive)
	return res, treeFault(err, archive, s)
}

func (s *Store) archivePair(ctx context.Context, e Entry, archive *Store) (ArchiveResult, error) {
	var res ArchiveResult
	if err := s.checkEntry("archive", e); err != nil {
		return res, err
	}
	target, err := archive.archiveTarget(ctx, e)
	if err != nil {
		return res, fmt.Errorf("archive %s: %w", e.ID, err)
	}
	res.Target = target
	for _, p := range [...]string{e.DateLink, e.NameLink} {
		if err := unlink(p); err != nil {
			return res, fmt.Errorf("archive %s: %w", e.ID, err)
		}
	}
	var copied []string
	for _, f := range [...]struct {
		src, dst string
		out      *FileOutcome
	}{
		{e.DumpPath, target.DumpPath, &res.Dump},
		{e.JSONPath, target.JSONPath, &res.JSON},
	} {
		out, err := archive.place(f.src, f.dst)
		if err != nil {
			return res, fmt.Errorf("archive %s: %w", e.ID, err)
		}
		*f.out = out
		if out == FileCopied {
			copied = append(copied, f.src)
		}
	}
	if len(copied) > 0 {
		// The copies are complete and durable under their final names before
		// a source goes.
		if err := syncDir(target.NameDir); err != nil {
			return res, fmt.Errorf("archive %s: %w", e.ID, err)
		}
		for _, p := range copied {
			if err := unlink(p); err != nil {
				return res, fmt.Errorf("archive %s: %w", e.ID, err)
			}
		}
	}
	if err := s.pruneNameDirs(e.NameDir); err != nil {
		return res, fmt.Errorf("archive %s: remove emptied directories: %w", e.ID, err)
	}
	return res, nil
}

// archiveTarget returns the place in this archive tree of the pair of e:
// computed from the id, or for an id without a date whose source is not
// whole, wherever an earlier attempt put part of it.
func (s *Store) archiveTarget(ctx context.Context, e Entry) (Entry, error) {
	rel := nameBranch + "/" + nameRel(e.ID)
	if s.layout == LayoutFlat {
		return s.entry(e.ID, join(s.root, rel), "", time.Time{}), nil
	}
	day, dated := IDDate(e.ID)
	if !dated {
		day = s.nowUTC()
	}
	t := s.entry(e.ID, join(join(s.root, day.Format("20060102")), rel), "", time.Time{})
	if dated || (present(e.JSONPath) && present(e.DumpPath)) {
		return t, nil
	}
	if present(t.JSONPath) || present(t.DumpPath) {
		return t, nil
	}
	found, err := s.Lookup(ctx, e.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		return t, nil
	case err != nil:
		return Entry{}, err
	}
	return s.entry(e.ID, found.NameDir, "", time.Time{}), nil
}

// present reports whether something is at path p ("" is never present).
// An error other than "not there" counts as present, so that the operation
// that follows meets it and reports it.
func present(p string) bool {
	if p == "" {
		return false
	}
	_, err := os.Lstat(p)
	return !notExist(err)
}

// place puts the source file src (of another tree) at dst in this archive
// tree and says how; src "" means the pair's place in the source is unknown.
func (s *Store) place(src, dst string) (FileOutcome, error) {
	var fi fs.FileInfo
	err := fs.ErrNotExist
	if src != "" {
		fi, err = os.Lstat(src)
	}
	switch {
	case notExist(err):
		return s.alreadyPlaced(dst)
	case err != nil:
		return FileMissing, err
	case !fi.Mode().IsRegular():
		return FileMissing, malformed("archive", src, "a "+typeName(fi.Mode().Type())+" where a crash file belongs")
	}
	if !s.alwaysCopy {
		err := rename(src, dst)
		if errors.Is(err, fs.ErrNotExist) {
			// The target's directory is not there yet (src was there a
			// moment ago: no lstat to tell, on the common path of a pair
			// that makes a directory; a vanished src is told below).
			if err = s.mkdirs(filepath.Dir(dst)); err != nil {
				if !present(src) {
					return s.alreadyPlaced(dst)
				}
				return FileMissing, err
			}
			err = rename(src, dst)
		}
		switch {
		case err == nil:
			// A crash before the chmod is repaired by alreadyPlaced.
			return FileMoved, s.ownFile(dst, fi)
		case errors.Is(err, fs.ErrNotExist) && !present(src):
			// Another attempt at the same pair (a monitor that has just
			// lost its lease) moved it a moment ago.
			return s.alreadyPlaced(dst)
		case !errors.Is(err, syscall.EXDEV):
			return FileMissing, err
		}
	}
	err = s.copyFile(src, dst, fi)
	switch {
	case err == nil:
		return FileCopied, nil
	case !errors.Is(err, fs.ErrNotExist):
		return FileMissing, err
	case !present(src):
		// Another attempt at the same pair archived it meanwhile.
		return s.alreadyPlaced(dst)
	case regularFile(dst):
		// Another attempt placed its complete copy and removed the
		// temporary file of this one as a leftover: the caller removes the
		// source once the directory is synced, as after a copy of its own.
		return FileCopied, nil
	}
	return FileMissing, err
}

// regularFile reports whether p is a regular file.
func regularFile(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode().IsRegular()
}

// alreadyPlaced handles a source file that is gone: the file is archived if
// dst holds a regular file (whose mode and group are then set again), else it
// is missing.
func (s *Store) alreadyPlaced(dst string) (FileOutcome, error) {
	fi, err := os.Lstat(dst)
	switch {
	case notExist(err):
		return FileMissing, nil
	case err != nil:
		return FileMissing, err
	case !fi.Mode().IsRegular():
		return FileMissing, malformed("archive", dst, "a "+typeName(fi.Mode().Type())+" where an archived crash file belongs")
	}
	return FileArchived, s.ownFile(dst, fi)
}

// ownFile gives an archived file the archive's file mode and group, when it
// does not have them already (fi is its stat).
func (s *Store) ownFile(p string, fi fs.FileInfo) error {
	if fi.Mode().Perm() != s.filePerm {
		if err := os.Chmod(p, s.filePerm); err != nil {
			return err
		}
	}
	if s.gid > 0 {
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Gid) != s.gid {
			return os.Chown(p, -1, s.gid)
		}
	}
	return nil
}
