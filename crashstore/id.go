package crashstore

import (
	"strings"
	"time"
)

// idLength is the length of a uuid-shaped crash id (8-4-4-4-12).
const idLength = 36

// ValidID reports whether s is a uuid-shaped crash id: 36 characters in
// 8-4-4-4-12 groups of hexadecimal digits (either case). Only ids that pass
// this check are ever used to build a path or a statement.
func ValidID(s string) bool {
	if len(s) != idLength {
		return false
	}
	for i := 0; i < idLength; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// defaultDepth is the name-branch depth of ids that carry no decodable
// depth: plain uuids, and the old ids ending in a full YYYYMMDD whose depth
// digit reads 0 (socorro-classic 1.1).
const defaultDepth = 4

// IDDate returns the crash date a Socorro ooid carries in its last six
// characters (YYMMDD, years 2000-2099), as midnight UTC. Collectors pick the
// daily directory from it and lookups by id start there. It reports false when
// the seven-character tail (depth digit and date) is not all digits or is not
// a real date, as for a plain random uuid: such an id is dated "today".
func IDDate(id string) (time.Time, bool) {
	date, _, ok := decodeTail(id)
	return date, ok
}

// IDDepth returns the number of two-character radix levels of the id's name
// directory: the depth digit before the date tail, where 0 means 4 (the old
// ids that end in a full YYYYMMDD). An id whose tail does not decode gets 4.
// Like the classic decoder it does not cap the digit: 5 to 9 are returned as
// such, so that this monitor finds files wherever a classic collector put them.
func IDDepth(id string) int {
	_, depth, ok := decodeTail(id)
	if !ok {
		return defaultDepth
	}
	return depth
}

// decodeTail decodes the "D YY MM DD" tail of an ooid.
func decodeTail(id string) (date time.Time, depth int, ok bool) {
	if len(id) < 7 {
		return time.Time{}, 0, false
	}
	tail := id[len(id)-7:]
	for i := 0; i < len(tail); i++ {
		if tail[i] < '0' || tail[i] > '9' {
			return time.Time{}, 0, false
		}
	}
	depth = int(tail[0] - '0')
	if depth == 0 {
		depth = defaultDepth
	}
	y, m, d := 2000+num2(tail[1:3]), num2(tail[3:5]), num2(tail[5:7])
	date, ok = makeDate(y, m, d)
	if !ok {
		return time.Time{}, 0, false
	}
	return date, depth, true
}

// num2 converts two ASCII digits already checked by the caller.
func num2(s string) int { return int(s[0]-'0')*10 + int(s[1]-'0') }

// makeDate returns midnight UTC of y-m-d, or false when that is not a real
// day (time.Date would silently normalise 2009-02-30 to March 2).
func makeDate(y, m, d int) (time.Time, bool) {
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if t.Year() != y || int(t.Month()) != m || t.Day() != d {
		return time.Time{}, false
	}
	return t, true
}

// nameRel returns the radix part of a valid id's name directory: the first
// IDDepth(id) pairs of characters joined by slashes ("4d/d2" for depth 2).
func nameRel(id string) string {
	depth := IDDepth(id)
	var b strings.Builder
	b.Grow(3 * depth)
	for i := range depth {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(id[2*i : 2*i+2])
	}
	return b.String()
}
