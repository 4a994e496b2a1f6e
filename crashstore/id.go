// Package crashstore owns the on-disk crash storage trees: crash ids and
// their dates, the daily and flat layouts, the inbox walk, lookups, and
// moving or removing pairs. It knows nothing about the database.
package crashstore

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
