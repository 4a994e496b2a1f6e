package config

import (
	"errors"
	"net/url"
	"strings"
)

// isURL reports whether s is in the URL form (postgres:// or postgresql://).
func isURL(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// checkDatabaseURL accepts a postgres:// or postgresql:// URL or a libpq
// key=value string. The error never quotes s: it may hold a password.
func checkDatabaseURL(s string) error {
	if isURL(s) {
		if _, err := url.Parse(s); err != nil {
			return errors.New("is not a valid URL (value not shown: it may hold a password)")
		}
		return nil
	}
	if strings.Contains(s, "://") {
		return errors.New("must be a postgres:// or postgresql:// URL or a key=value string")
	}
	pairs, ok := parseKeyValues(s)
	if !ok || len(pairs) == 0 {
		return errors.New("is neither a postgres:// URL nor a key=value string (value not shown: it may hold a password)")
	}
	return nil
}

// maskDatabaseURL replaces the password in s, a URL's user information or
// password= query parameter or a key=value password, with the mask. Anything
// else is kept byte for byte. A string that cannot be read is masked whole.
func maskDatabaseURL(s string) string {
	if s == "" {
		return ""
	}
	if isURL(s) {
		return maskURL(s)
	}
	pairs, ok := parseKeyValues(s)
	if !ok {
		return mask
	}
	var b strings.Builder
	last := 0
	for _, p := range pairs {
		if p.key == "password" {
			b.WriteString(s[last:p.start])
			b.WriteString(mask)
			last = p.end
		}
	}
	b.WriteString(s[last:])
	return b.String()
}

// maskURL masks the password of a postgres URL by splicing, so that the rest
// of the string is not re-escaped.
func maskURL(s string) string {
	if _, err := url.Parse(s); err != nil {
		return mask
	}
	scheme := strings.Index(s, "://") + len("://")
	rest := s[scheme:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority := rest[:end]
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		if colon := strings.Index(authority[:at], ":"); colon >= 0 {
			authority = authority[:colon+1] + mask + authority[at:]
		}
	}
	tail := rest[end:]
	if q := strings.Index(tail, "?"); q >= 0 {
		query, fragment, hasFragment := strings.Cut(tail[q+1:], "#")
		params := strings.Split(query, "&")
		for i, p := range params {
			k, _, found := strings.Cut(p, "=")
			if uk, err := url.QueryUnescape(k); found && err == nil && uk == "password" {
				params[i] = k + "=" + mask
			}
		}
		tail = tail[:q+1] + strings.Join(params, "&")
		if hasFragment {
			tail += "#" + fragment
		}
	}
	return s[:scheme] + authority + tail
}

// keyValue is one key=value pair of a libpq connection string; start and end
// delimit the value as written (quotes included).
type keyValue struct {
	key        string
	start, end int
}

// parseKeyValues splits a libpq key=value string: keys are followed by "=",
// optionally surrounded by spaces; a value is either single-quoted (with \'
// and \\ escapes) or runs to the next space (with backslash escapes).
func parseKeyValues(s string) ([]keyValue, bool) {
	var pairs []keyValue
	i := 0
	skipSpace := func() {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	for {
		skipSpace()
		if i == len(s) {
			return pairs, true
		}
		k := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[k:i]
		skipSpace()
		if key == "" || i == len(s) || s[i] != '=' {
			return nil, false
		}
		i++
		skipSpace()
		start := i
		if i < len(s) && s[i] == '\'' {
			i++
			for {
				if i >= len(s) {
					return nil, false // unterminated quote
				}
				if s[i] == '\\' {
					i += 2
					continue
				}
				if s[i] == '\'' {
					i++
					break
				}
				i++
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i > len(s) {
				return nil, false // trailing backslash
			}
		}
		pairs = append(pairs, keyValue{key: key, start: start, end: i})
	}
}

func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f' || b == '\v'
}

// quoteConnValue single-quotes v for a libpq key=value string, escaping ' and
// \ with a backslash.
func quoteConnValue(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}
