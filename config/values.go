package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/crashmonitor/monitor/internal/logging"
)

// decoder converts raw string values into a Config, collecting one error per
// bad key.
type decoder struct {
	get  func(key string) string
	errs []error
}

func (d *decoder) fail(key, value string, err error) {
	d.errs = append(d.errs, &KeyError{Key: key, Value: value, Err: err})
}

// decode builds a Config from get, which returns each key's raw value.
func decode(get func(key string) string) (*Config, []error) {
	d := &decoder{get: get}
	c := &Config{
		DatabaseHost:     get("databaseHost"),
		DatabasePort:     int(d.integer("databasePort", 1, 65535)),
		DatabaseName:     get("databaseName"),
		DatabaseUserName: get("databaseUserName"),
		DatabasePassword: get("databasePassword"),
		DatabaseURL:      d.databaseURL("databaseURL"),

		StorageRoot:         d.dir("storageRoot"),
		DeferredStorageRoot: d.dir("deferredStorageRoot"),
		StorageLayout:       d.layout("storageLayout"),

		JSONFileSuffix: d.suffix("jsonFileSuffix"),
		DumpFileSuffix: d.suffix("dumpFileSuffix"),

		ProcessorCheckInTime: d.duration("processorCheckInTime"),
		StandardLoopDelay:    d.duration("standardLoopDelay"),
		PriorityLoopDelay:    d.duration("priorityLoopDelay"),
		CleanupJobsLoopDelay: d.duration("cleanupJobsLoopDelay"),

		SaveSuccessfulMinidumpsTo: d.dir("saveSuccessfulMinidumpsTo"),
		SaveFailedMinidumpsTo:     d.dir("saveFailedMinidumpsTo"),
		DumpPermissions:           d.mode("dumpPermissions"),
		DirPermissions:            d.mode("dirPermissions"),
		DumpGID:                   d.gid("dumpGID"),

		LogFilePathname:             get("logFilePathname"),
		LogFileMaximumSize:          d.integer("logFileMaximumSize", 1, math.MaxInt64),
		LogFileMaximumBackupHistory: int(d.integer("logFileMaximumBackupHistory", 0, math.MaxInt32)),
		LogFileLineFormatString:     d.format("logFileLineFormatString"),
		LogFileErrorLoggingLevel:    d.level("logFileErrorLoggingLevel"),
		StderrLineFormatString:      d.format("stderrLineFormatString"),
		StderrErrorLoggingLevel:     d.level("stderrErrorLoggingLevel"),
	}
	if c.StorageRoot == "" {
		d.fail("storageRoot", "", errors.New("required"))
	}
	if get("stderrLineFormatString") == "" {
		c.StderrLineFormatString = c.LogFileLineFormatString
	}
	if c.JSONFileSuffix != "" && c.JSONFileSuffix == c.DumpFileSuffix {
		d.fail("dumpFileSuffix", get("dumpFileSuffix"), errors.New("is the same as jsonFileSuffix"))
	}
	return c, d.errs
}

// integer reads a decimal integer in lo..hi.
func (d *decoder) integer(key string, lo, hi int64) int64 {
	s := d.get(key)
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		d.fail(key, s, errors.New("is not an integer"))
		return 0
	}
	huge := hi == math.MaxInt64 || hi == math.MaxInt32
	switch {
	case err == nil && n >= lo && n <= hi:
		return n
	case huge && (n > hi || (err != nil && n > 0)):
		d.fail(key, s, errors.New("is too large"))
	case huge:
		d.fail(key, s, fmt.Errorf("must be at least %d", lo))
	default:
		d.fail(key, s, fmt.Errorf("must be between %d and %d", lo, hi))
	}
	return 0
}

// dir strips trailing slashes ("/" stays "/"); the path is otherwise kept as
// given, relative paths being relative to the working directory.
func (d *decoder) dir(key string) string {
	s := d.get(key)
	if t := strings.TrimRight(s, "/"); t != "" {
		return t
	}
	if s != "" {
		return "/"
	}
	return ""
}

func (d *decoder) layout(key string) string {
	s := d.get(key)
	if s != "daily" && s != "flat" {
		d.fail(key, s, errors.New("must be daily or flat"))
	}
	return s
}

// suffix adds a missing leading dot.
func (d *decoder) suffix(key string) string {
	s := d.get(key)
	switch {
	case s == "":
		d.fail(key, s, errors.New("must not be empty"))
		return ""
	case strings.ContainsAny(s, "/\x00"):
		d.fail(key, s, errors.New("must not contain a slash"))
		return ""
	case !strings.HasPrefix(s, "."):
		return "." + s
	}
	return s
}

func (d *decoder) duration(key string) time.Duration {
	s := d.get(key)
	v, err := parseDuration(s)
	if err != nil {
		d.fail(key, s, err)
	}
	return v
}

func (d *decoder) mode(key string) fs.FileMode {
	s := d.get(key)
	v, err := parseMode(s)
	if err != nil {
		d.fail(key, s, err)
	}
	return v
}

func (d *decoder) level(key string) int {
	s := d.get(key)
	v, err := parseLevel(s)
	if err != nil {
		d.fail(key, s, err)
	}
	return v
}

func (d *decoder) format(key string) string {
	s := d.get(key)
	if s == "" && key == "stderrLineFormatString" {
		return "" // as the file's; filled in by decode
	}
	if err := logging.ValidateFormat(s); err != nil {
		d.fail(key, s, fmt.Errorf("is not a line format: %w", err))
	}
	return s
}

// gid resolves dumpGID: empty is -1 (unchanged), digits are a gid, anything
// else is a group name.
func (d *decoder) gid(key string) int {
	s := strings.TrimSpace(d.get(key))
	if s == "" {
		return -1
	}
	if strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n > math.MaxInt32 {
			d.fail(key, s, errors.New("is out of range for a gid"))
			return -1
		}
		return int(n)
	}
	if strings.HasPrefix(s, "-") {
		d.fail(key, s, errors.New("is neither a group name nor a gid (leave it empty to keep the group)"))
		return -1
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		if _, ok := errors.AsType[user.UnknownGroupError](err); ok {
			d.fail(key, s, errors.New("is not a known group"))
		} else {
			d.fail(key, s, fmt.Errorf("cannot look up group: %w", err))
		}
		return -1
	}
	n, err := strconv.Atoi(g.Gid)
	if err != nil {
		d.fail(key, s, fmt.Errorf("group has a non-numeric gid %q", g.Gid))
		return -1
	}
	return n
}

func (d *decoder) databaseURL(key string) string {
	s := d.get(key)
	if s == "" {
		return ""
	}
	if err := checkDatabaseURL(s); err != nil {
		d.fail(key, "", err) // the value may hold a password: not shown
	}
	return s
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
