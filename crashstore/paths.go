package crashstore

import (
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// How the paths of a tree are read: the role of each component below the
// root (the levels of the date and name branches), the time slot a date
// path encodes, and the checks that tell a path of the layout from anything
// else found in a tree.

// slotStart returns the start of the date-branch slot holding t.
func (s *Store) slotStart(t time.Time) time.Time {
	t = t.UTC()
	m := t.Minute()
	m -= m % int(s.slotLen/time.Minute)
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), m, 0, 0, time.UTC)
}

// level is the role of a path component below the root.
type level uint8

const (
	lvRoot   level = iota
	lvDay          // daily: YYYYMMDD
	lvDate         // the fixed "date" directory
	lvYear         // flat: YYYY
	lvMonth        // flat: MM
	lvMDay         // flat: DD
	lvHour         // HH
	lvMinute       // MM, the slot
	lvLeaf         // <webhead>_N
	lvLink         // <id>
)

// Kind classifies a path of the tree for a file-system watcher.
type Kind uint8

const (
	// KindRoot is the root: new daily directories (daily) or the date
	// branch (flat) appear in it.
	KindRoot Kind = iota + 1
	// KindDay is a daily directory <root>/YYYYMMDD (daily layout only).
	KindDay
	// KindDateDir is a directory of the date branch above the webhead
	// directories: <day>/date, its hours and minutes (daily); <root>/date
	// and its year to minute directories (flat).
	KindDateDir
	// KindLeaf is a webhead directory <slot>/<webhead>_N holding links.
	KindLeaf
	// KindLink is an inbox link <leaf>/<id>.
	KindLink
)

// String returns the kind's name, for logs.
func (k Kind) String() string {
	switch k {
	case KindRoot:
		return "root"
	case KindDay:
		return "day"
	case KindDateDir:
		return "date-dir"
	case KindLeaf:
		return "leaf"
	case KindLink:
		return "link"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

func (lv level) kind() Kind {
	switch lv {
	case lvRoot:
		return KindRoot
	case lvDay:
		return KindDay
	case lvLeaf:
		return KindLeaf
	case lvLink:
		return KindLink
	}
	return KindDateDir
}

// removable reports whether PruneDateDirs may remove a directory of this
// level: never the root, a daily directory or a date directory.
func (lv level) removable() bool { return lv >= lvYear && lv <= lvLeaf }

// childStart checks the name of a path component at level lv below a parent
// whose time range starts at parent, and returns the component's own start.
func childStart(lv level, parent time.Time, name string) (time.Time, bool) {
	switch lv {
	case lvDay:
		if len(name) != 8 || !digits(name) {
			return time.Time{}, false
		}
		y, _ := strconv.Atoi(name[:4])
		return makeDate(y, num2(name[4:6]), num2(name[6:8]))
	case lvDate:
		return parent, name == dateBranch
	case lvYear:
		if len(name) != 4 || !digits(name) {
			return time.Time{}, false
		}
		y, _ := strconv.Atoi(name)
		return time.Date(y, time.January, 1, 0, 0, 0, 0, time.UTC), true
	case lvMonth:
		m, ok := twoDigits(name, 1, 12)
		return time.Date(parent.Year(), time.Month(m), 1, 0, 0, 0, 0, time.UTC), ok
	case lvMDay:
		d, ok := twoDigits(name, 1, 31)
		if !ok {
			return time.Time{}, false
		}
		return makeDate(parent.Year(), int(parent.Month()), d)
	case lvHour:
		h, ok := twoDigits(name, 0, 23)
		return parent.Add(time.Duration(h) * time.Hour), ok
	case lvMinute:
		m, ok := twoDigits(name, 0, 59)
		return parent.Add(time.Duration(m) * time.Minute), ok
	case lvLeaf:
		_, _, ok := splitLeaf(name)
		return parent, ok
	case lvLink:
		return parent, ValidID(name)
	}
	return time.Time{}, false
}

// end returns the end of the time range of a removable directory.
func (s *Store) end(lv level, start time.Time) time.Time {
	switch lv {
	case lvYear:
		return start.AddDate(1, 0, 0)
	case lvMonth:
		return start.AddDate(0, 1, 0)
	case lvMDay:
		return start.AddDate(0, 0, 1)
	case lvHour:
		return start.Add(time.Hour)
	}
	return start.Add(s.slotLen)
}

func twoDigits(s string, lo, hi int) (int, bool) {
	if len(s) != 2 || !digits(s) {
		return 0, false
	}
	n := num2(s)
	return n, lo <= n && n <= hi
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// splitLeaf splits a webhead directory name "<webhead>_<N>".
func splitLeaf(name string) (webhead, n string, ok bool) {
	i := strings.LastIndexByte(name, '_')
	if i <= 0 || hidden(name) || !digits(name[i+1:]) {
		return "", "", false
	}
	return name[:i], name[i+1:], true
}

// validWebhead reports whether a collector's host name can name a leaf.
func validWebhead(w string) bool {
	return w != "" && !hidden(w) && !strings.ContainsAny(w, "/\x00")
}

// hidden reports whether a name is skipped without a word: collectors never
// write dot files, but NFS (.nfsXXXX) and snapshots add them, and a root that
// is a mount point holds lost+found.
func hidden(name string) bool { return name != "" && name[0] == '.' || name == "lost+found" }

// join joins a clean directory and a name or a clean relative path.
func join(dir, name string) string {
	switch {
	case dir == ".":
		return name
	case strings.HasSuffix(dir, "/"):
		return dir + name
	}
	return dir + "/" + name
}

// rel returns p relative to the root ("" for the root itself), or false
// when p is not inside the tree. p must be clean.
func (s *Store) rel(p string) (string, bool) {
	if p == s.root {
		return "", true
	}
	if s.prefix == "" {
		if filepath.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") {
			return "", false
		}
		return p, true
	}
	r, ok := strings.CutPrefix(p, s.prefix)
	return r, ok && r != ""
}

// parse classifies a clean path of the date branch lexically: the index of
// its level in s.levels and the start of its time range.
func (s *Store) parse(p string) (li int, start time.Time, ok bool) {
	r, ok := s.rel(p)
	if !ok {
		return 0, time.Time{}, false
	}
	for r != "" {
		var name string
		name, r, _ = strings.Cut(r, "/")
		if li+1 >= len(s.levels) {
			return 0, time.Time{}, false
		}
		if start, ok = childStart(s.levels[li+1], start, name); !ok {
			return 0, time.Time{}, false
		}
		li++
	}
	return li, start, true
}

// nameTop returns the top of the name branch holding the clean directory
// dir (<root>/<day>/name or <root>/name), or false when dir is not strictly
// below such a top.
func (s *Store) nameTop(dir string) (string, bool) {
	r, ok := s.rel(dir)
	if !ok {
		return "", false
	}
	if s.layout == LayoutDaily {
		day, rest, _ := strings.Cut(r, "/")
		if _, ok := childStart(lvDay, time.Time{}, day); !ok {
			return "", false
		}
		r = rest
	}
	top, rest, _ := strings.Cut(r, "/")
	if top != nameBranch || rest == "" {
		return "", false
	}
	return dir[:len(dir)-len(rest)-1], true
}
