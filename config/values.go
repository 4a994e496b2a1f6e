package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os/user"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/crashmonitor/monitor/internal/logging"
)

// kind is how a value of type T is read from a key's text and printed back
// for Settings. parse returns an error worded to follow the quoted value,
// such as "is not a duration"; it never quotes the value itself.
type kind[T any] struct {
	parse  func(s string) (T, error)
	format func(T) string
	trim   bool // parse, and an error quotes, the text without surrounding space
	// items, when set, makes the key a list: a YAML sequence of strings
	// in the file is read by items, a string (the environment's form) by
	// parse.
	items func(items []string) (T, error)
	// node, when set, makes the key structured: its YAML value in the
	// file (a sequence of mappings) is read by node, a string (the
	// environment's form) by parse.
	node func(n *yaml.Node) (T, error)
}

var (
	asText     = kind[string]{parse: func(s string) (string, error) { return s, nil }, format: itself}
	asDir      = kind[string]{parse: parseDir, format: itself}
	asLayout   = kind[string]{parse: parseLayout, format: itself}
	asSuffix   = kind[string]{parse: parseSuffix, format: itself}
	asDuration = kind[time.Duration]{parse: parseDuration, format: formatDuration}
	asMode     = kind[fs.FileMode]{parse: parseMode, format: formatMode}
	asLevel    = kind[int]{parse: parseLevel, format: strconv.Itoa}
	// asLineFormat is a line format of internal/logging, such as
	// "%(asctime)s %(message)s", or json.
	asLineFormat = kind[string]{parse: parseLineFormat, format: itself}
	// asGID is a group, by number or name; empty is -1, which leaves the
	// group unchanged and prints as empty.
	asGID = kind[int]{parse: parseGID, format: formatGID, trim: true}
	// asBool is true or false (also yes/no, on/off, 1/0, any case).
	asBool = kind[bool]{parse: parseBool, format: strconv.FormatBool, trim: true}
	// asListenAddress is empty (no server) or a host:port to listen on.
	asListenAddress = optional(kind[string]{parse: parseListenAddress, format: itself, trim: true})
	// asDatabaseURL is empty, a postgres:// URL or a libpq key=value string.
	asDatabaseURL = optional(kind[string]{
		parse:  func(s string) (string, error) { return s, checkDatabaseURL(s) },
		format: itself,
	})
)

// asInteger is a decimal integer in lo..hi.
func asInteger[T int | int64](lo, hi int64) kind[T] {
	return kind[T]{
		parse: func(s string) (T, error) {
			n, err := parseInteger(s, lo, hi)
			return T(n), err
		},
		format: func(n T) string { return strconv.FormatInt(int64(n), 10) },
	}
}

// optional is k, except that an empty value is accepted as T's zero value.
func optional[T any](k kind[T]) kind[T] {
	parse := k.parse
	k.parse = func(s string) (T, error) {
		if s == "" {
			var zero T
			return zero, nil
		}
		return parse(s)
	}
	return k
}

func itself(s string) string { return s }

// parseInteger reads a decimal integer in lo..hi.
func parseInteger(s string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, errors.New("is not an integer")
	}
	huge := hi == math.MaxInt64 || hi == math.MaxInt32
	switch {
	case err == nil && n >= lo && n <= hi:
		return n, nil
	case huge && (n > hi || (err != nil && n > 0)):
		return 0, errors.New("is too large")
	case huge:
		return 0, fmt.Errorf("must be at least %d", lo)
	default:
		return 0, fmt.Errorf("must be between %d and %d", lo, hi)
	}
}

// parseDir strips trailing slashes ("/" stays "/"); the path is otherwise
// kept as given, relative paths being relative to the working directory.
func parseDir(s string) (string, error) {
	if t := strings.TrimRight(s, "/"); t != "" {
		return t, nil
	}
	if s != "" {
		return "/", nil
	}
	return "", nil
}

// parseListenAddress reads host:port (host may be empty for every
// interface, or a bracketed IPv6 address; the port a number or a service
// name).
func parseListenAddress(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil || port == "" || strings.ContainsAny(host, "/ ") {
		return s, errors.New("is not a listen address (use host:port, such as 127.0.0.1:9661)")
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return s, errors.New("has an unknown port")
	}
	return s, nil
}

func parseLayout(s string) (string, error) {
	if s != "daily" && s != "flat" {
		return s, errors.New("must be daily or flat")
	}
	return s, nil
}

// parseSuffix adds a missing leading dot.
func parseSuffix(s string) (string, error) {
	switch {
	case s == "":
		return "", errors.New("must not be empty")
	case strings.ContainsAny(s, "/\x00"):
		return "", errors.New("must not contain a slash")
	case !strings.HasPrefix(s, "."):
		return "." + s, nil
	}
	return s, nil
}

func parseLineFormat(s string) (string, error) {
	if err := logging.ValidateFormat(s); err != nil {
		return s, fmt.Errorf("is not a line format: %w", err)
	}
	return s, nil
}

// parseGID reads a gid: empty is -1 (unchanged), digits are a gid, anything
// else is a group name.
func parseGID(s string) (int, error) {
	if s == "" {
		return -1, nil
	}
	if strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n > math.MaxInt32 {
			return -1, errors.New("is out of range for a gid")
		}
		return int(n), nil
	}
	if strings.HasPrefix(s, "-") {
		return -1, errors.New("is neither a group name nor a gid (leave it empty to keep the group)")
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		if _, ok := errors.AsType[user.UnknownGroupError](err); ok {
			return -1, errors.New("is not a known group")
		}
		return -1, fmt.Errorf("cannot look up group: %w", err)
	}
	n, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("group has a non-numeric gid %q", g.Gid)
	}
	return n, nil
}

// formatGID prints -1 (unchanged) as empty.
func formatGID(n int) string {
	if n < 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// errDurationSyntax is the complaint about a value that is not a duration.
var errDurationSyntax = errors.New("is not a duration (use HH:MM:SS, 90s or 5m)")

// parseDuration reads the classic colon forms S, M:S, H:M:S and D:H:M:S
// (counted from the right), Go durations (90s, 5m, 1h30m) and bare integers
// (seconds). The result must be greater than zero.
func parseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("is empty (use HH:MM:SS, 90s or 5m)")
	}
	var d time.Duration
	if strings.Trim(t, "0123456789:") == "" {
		parts := strings.Split(t, ":")
		if len(parts) > 4 {
			return 0, errDurationSyntax
		}
		unit := []int64{1, 60, 3600, 86400}
		var secs int64
		for i, p := range parts {
			n, err := strconv.ParseUint(p, 10, 32)
			if err != nil {
				return 0, errDurationSyntax
			}
			secs += int64(n) * unit[len(parts)-1-i]
		}
		if secs > math.MaxInt64/int64(time.Second) {
			return 0, errors.New("is too long")
		}
		d = time.Duration(secs) * time.Second
	} else {
		var err error
		if d, err = time.ParseDuration(t); err != nil {
			return 0, errDurationSyntax
		}
	}
	if d <= 0 {
		return 0, errors.New("must be greater than zero")
	}
	return d, nil
}

// formatDuration prints whole seconds as HH:MM:SS or D:HH:MM:SS, anything
// finer in Go's form.
func formatDuration(d time.Duration) string {
	if d%time.Second != 0 || d < 0 {
		return d.String()
	}
	s := int64(d / time.Second)
	if s >= 86400 {
		return fmt.Sprintf("%d:%02d:%02d:%02d", s/86400, s/3600%24, s/60%60, s%60)
	}
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}

// parseMode reads a permission mode: a leading 0 or 0o means octal ("0660",
// "0o660"), anything else is the classic decimal ("432" = 0660).
func parseMode(s string) (fs.FileMode, error) {
	t := strings.TrimSpace(s)
	var n uint64
	var err error
	switch {
	case t == "":
		return 0, errors.New("is empty (use an octal mode such as 0660)")
	case strings.HasPrefix(t, "0o") || strings.HasPrefix(t, "0O"):
		n, err = strconv.ParseUint(t[2:], 8, 32)
	case strings.HasPrefix(t, "0"):
		n, err = strconv.ParseUint(t, 8, 32)
	default:
		n, err = strconv.ParseUint(t, 10, 32)
	}
	if err != nil {
		return 0, errors.New("is not a mode (use octal such as 0660, or the classic decimal such as 432)")
	}
	if n > 0o777 {
		return 0, fmt.Errorf("is above 0777 (read as %#o)", n)
	}
	return fs.FileMode(n), nil
}

// formatMode prints a mode as four octal digits, such as 0660.
func formatMode(m fs.FileMode) string {
	return fmt.Sprintf("%04o", uint32(m))
}

// parseLevel reads a threshold 0..50 or a level name (case-insensitive).
func parseLevel(s string) (int, error) {
	t := strings.TrimSpace(s)
	switch strings.ToUpper(t) {
	case "DEBUG":
		return 10, nil
	case "INFO":
		return 20, nil
	case "WARNING", "WARN":
		return 30, nil
	case "ERROR":
		return 40, nil
	case "CRITICAL":
		return 50, nil
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < 0 || n > 50 {
		return 0, errors.New("is not a level (use 0..50 or DEBUG, INFO, WARNING, ERROR, CRITICAL)")
	}
	return n, nil
}

// parseBool reads true or false, and the YAML 1.1 words for them.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, errors.New("is not true or false")
}
