package crashstore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// NewEntry stores a crash exactly as a collector does, so that tools, the
// demo and tests build the trees the monitor meets in production: first the
// links (CreateLinks), then the dump, then the json. Until both files are
// written the inbox therefore holds an incomplete pair, which is what
// Complete exists for. at is the submission time (zero means now); it picks
// the daily directory and the date slot, not the id's date. On failure the
// links and files it made are removed again.
func (s *Store) NewEntry(id, webhead string, at time.Time, dump, json []byte) (Entry, error) {
	e, err := s.CreateLinks(id, webhead, at)
	if err != nil {
		return Entry{}, err
	}
	if err = s.writeFile(e.DumpPath, dump); err == nil {
		err = s.writeFile(e.JSONPath, json)
	}
	if err != nil {
		// Leave no inbox entry for a pair that can never be complete.
		_ = unlink(e.DateLink)
		_ = unlink(e.NameLink)
		_ = unlink(e.DumpPath)
		_ = unlink(e.JSONPath)
		return Entry{}, fmt.Errorf("new entry %s: %w", id, err)
	}
	return e, nil
}

// CreateLinks is the first step of NewEntry alone: it creates the name and
// date directories (with the exact DirPerm, and GID) and the two relative
// links, the name->date link first and the inbox link last, and writes no
// file. Tests use it to leave pairs half-written. The daily layout puts the
// link in <day>/date/HH/MM/<webhead>_0; the flat layout in
// date/YYYY/MM/DD/HH/MM/<webhead>_N (five-minute slots), where N is the first
// webhead directory holding fewer than MaxDirEntries entries. A directory
// removed concurrently (an emptied one being pruned) is made again once.
func (s *Store) CreateLinks(id, webhead string, at time.Time) (Entry, error) {
	if !ValidID(id) {
		return Entry{}, fmt.Errorf("create links %q: %w", id, ErrInvalidID)
	}
	if !validWebhead(webhead) {
		return Entry{}, fmt.Errorf("create links %s: invalid webhead name %q", id, webhead)
	}
	if at.IsZero() {
		at = s.nowUTC()
	}
	at = at.UTC()
	slot := s.slotStart(at)
	base, slotRel := s.root, dateBranch+"/"+slot.Format("2006/01/02/15/04")
	if s.layout == LayoutDaily {
		base, slotRel = join(s.root, at.Format("20060102")), dateBranch+"/"+slot.Format("15/04")
	}
	nameRelPath := nameBranch + "/" + nameRel(id)
	dir := join(base, nameRelPath)

	var e Entry
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var leafRel string
		if leafRel, err = s.leafFor(base, slotRel, webhead); err != nil {
			break
		}
		leaf := join(base, leafRel)
		e = s.entry(id, dir, join(leaf, id), slot)
		if err = s.mkdirs(dir); err == nil {
			err = s.mkdirs(leaf)
		}
		if err == nil {
			err = symlink(up(nameRelPath)+leafRel, e.NameLink)
		}
		if err == nil {
			err = symlink(up(leafRel)+nameRelPath, e.DateLink)
		}
		if err == nil {
			return e, nil
		}
		if !notExist(err) {
			break
		}
	}
	if e.NameLink != "" {
		_ = unlink(e.NameLink)
	}
	return Entry{}, fmt.Errorf("create links %s: %w", id, err)
}

// up returns the "../" prefix that climbs out of a relative path.
func up(rel string) string { return strings.Repeat("../", strings.Count(rel, "/")+1) }

// leafFor returns the webhead directory (relative to base) that takes the
// next link of a slot. Flat: the overflow rule of socorro-classic 1.3,
// without the classic in-memory counter: count the entries of <webhead>_0,
// _1, ... until one is missing or not full. Collectors are tools and tests
// here, so the listing per insert is acceptable.
func (s *Store) leafFor(base, slotRel, webhead string) (string, error) {
	if s.layout == LayoutDaily {
		return slotRel + "/" + webhead + "_0", nil
	}
	for n := 0; ; n++ {
		leafRel := slotRel + "/" + webhead + "_" + strconv.Itoa(n)
		full, err := s.full(join(base, leafRel))
		if err != nil || !full {
			return leafRel, err
		}
	}
}

// full reports whether dir holds at least MaxDirEntries entries; a missing
// directory is not full.
func (s *Store) full(dir string) (bool, error) {
	f, err := os.Open(dir)
	if notExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	count := 0
	for count < s.maxDirEntries {
		names, err := f.Readdirnames(readChunk)
		count += len(names)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false, err
		}
	}
	return count >= s.maxDirEntries, nil
}

// mkdirs makes p and its missing parents up to the root (whose parent must
// exist), each with exactly DirPerm and the store's group. An existing
// non-directory in the way makes the next step fail with ENOTDIR.
func (s *Store) mkdirs(p string) error {
	err := os.Mkdir(p, s.dirPerm)
	if errors.Is(err, fs.ErrNotExist) && p != s.root {
		if err = s.mkdirs(filepath.Dir(p)); err != nil {
			return err
		}
		err = os.Mkdir(p, s.dirPerm)
	}
	switch {
	case err == nil:
		return s.own(p)
	case errors.Is(err, fs.ErrExist):
		return nil
	case p == s.root && errors.Is(err, fs.ErrNotExist):
		// Not even the directory holding the root is there.
		f := s.vanished("does not exist and cannot be made")
		f.Write = true
		return f
	}
	return err
}

// own gives a directory this package created its exact mode (the umask
// took bits away) and group.
func (s *Store) own(p string) error {
	if err := os.Chmod(p, s.dirPerm); err != nil {
		return err
	}
	if s.gid > 0 {
		return os.Chown(p, -1, s.gid)
	}
	return nil
}

// writeFile creates or truncates a data file with exactly FilePerm and the
// store's group, and writes data.
func (s *Store) writeFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, s.filePerm)
	if err != nil {
		return err
	}
	err = f.Chmod(s.filePerm)
	if err == nil && s.gid > 0 {
		err = f.Chown(-1, s.gid)
	}
	if err == nil {
		_, err = f.Write(data)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// symlink creates a link, replacing an existing link or file (as the
// classic newEntry did).
func symlink(target, path string) error {
	err := os.Symlink(target, path)
	if errors.Is(err, fs.ErrExist) {
		if err = unlink(path); err == nil {
			err = os.Symlink(target, path)
		}
	}
	return err
}
