// Package config loads, validates and describes the monitor's configuration:
// a flat YAML file whose keys are spelled as the classic Socorro monitor
// spelled them, overridden key by key by MONITOR_<KEY> environment variables.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
)

// EnvPrefix starts the name of the environment variable that overrides a key:
// EnvPrefix + the key in upper case, for example MONITOR_DATABASEPASSWORD.
const EnvPrefix = "MONITOR_"

// mask replaces passwords in Settings.
const mask = "**********"

// Config is the effective, validated configuration. Values are normalised:
// suffixes start with a dot, directory keys have no trailing slash, modes,
// durations and levels are parsed.
type Config struct {
	DatabaseHost     string
	DatabasePort     int
	DatabaseName     string
	DatabaseUserName string
	DatabasePassword string
	DatabaseURL      string

	StorageRoot         string
	DeferredStorageRoot string
	StorageLayout       string // "daily" or "flat"

	JSONFileSuffix string // always with a leading dot
	DumpFileSuffix string // always with a leading dot

	ProcessorCheckInTime time.Duration
	StandardLoopDelay    time.Duration
	PriorityLoopDelay    time.Duration
	CleanupJobsLoopDelay time.Duration

	SaveSuccessfulMinidumpsTo string
	SaveFailedMinidumpsTo     string
	DumpPermissions           fs.FileMode
	DirPermissions            fs.FileMode
	DumpGID                   int // -1 = leave the group unchanged

	LogFilePathname             string
	LogFileMaximumSize          int64
	LogFileMaximumBackupHistory int
	LogFileLineFormatString     string
	LogFileErrorLoggingLevel    int // threshold 0..50, as in Python logging
	StderrLineFormatString      string
	StderrErrorLoggingLevel     int
}

// Setting is one key and its effective value, as printed by check-config.
type Setting struct {
	Key, Value string
}

// KeyError is a problem with one key of the configuration. Value is the
// offending value as given (masked when it may hold a password), or empty
// when the problem is not about a value.
type KeyError struct {
	Key   string
	Value string
	Err   error
}

// Error returns `key: "value" problem`, or `key: problem` without a value.
func (e *KeyError) Error() string {
	if e.Value == "" {
		return e.Key + ": " + e.Err.Error()
	}
	return fmt.Sprintf("%s: %q %v", e.Key, e.Value, e.Err)
}

// Unwrap returns the underlying problem.
func (e *KeyError) Unwrap() error { return e.Err }

// keySpec is a key with its default, as the file and the environment spell it.
type keySpec struct {
	name string
	def  string
	hot  bool // applied without a restart
}

// keys lists every configuration key with its default (CONTRACT section 2).
// It is read-only.
var keys = []keySpec{
	{name: "databaseHost", def: "localhost"},
	{name: "databasePort", def: "5432"},
	{name: "databaseName", def: "socorro"},
	{name: "databaseUserName", def: "socorro"},
	{name: "databasePassword", def: ""},
	{name: "databaseURL", def: ""},
	{name: "storageRoot", def: ""},
	{name: "deferredStorageRoot", def: ""},
	{name: "storageLayout", def: "daily"},
	{name: "jsonFileSuffix", def: ".json"},
	{name: "dumpFileSuffix", def: ".dump"},
	{name: "processorCheckInTime", def: "00:05:00", hot: true},
	{name: "standardLoopDelay", def: "00:05:00", hot: true},
	{name: "priorityLoopDelay", def: "00:01:00", hot: true},
	{name: "cleanupJobsLoopDelay", def: "00:05:00", hot: true},
	{name: "saveSuccessfulMinidumpsTo", def: "/tmp/socorro-successful"},
	{name: "saveFailedMinidumpsTo", def: "/tmp/socorro-failed"},
	{name: "dumpPermissions", def: "0660"},
	{name: "dirPermissions", def: "0770"},
	{name: "dumpGID", def: ""},
	{name: "logFilePathname", def: "./monitor.log"},
	{name: "logFileMaximumSize", def: "1000000"},
	{name: "logFileMaximumBackupHistory", def: "50"},
	{name: "logFileLineFormatString", def: "%(asctime)s %(levelname)s - %(message)s"},
	{name: "logFileErrorLoggingLevel", def: "10", hot: true},
	{name: "stderrLineFormatString", def: ""}, // empty = as logFileLineFormatString
	{name: "stderrErrorLoggingLevel", def: "40", hot: true},
}

// Load reads the YAML file at path, applies the defaults and the MONITOR_*
// environment overrides, and validates every key. An empty path means no
// file: defaults and environment only. All problems are reported together,
// each as a *KeyError where it concerns a key.
func Load(path string) (*Config, error) {
	c, err := load(path)
	if err != nil {
		if path == "" {
			return nil, fmt.Errorf("load config: %w", err)
		}
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	return c, nil
}

func load(path string) (*Config, error) {
	v := viper.New()
	v.AllowEmptyEnv(true)
	for _, k := range keys {
		v.SetDefault(k.name, k.def)
		if err := v.BindEnv(k.name, EnvPrefix+strings.ToUpper(k.name)); err != nil {
			return nil, err
		}
	}
	var errs []error
	bad := map[string]bool{}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		values, fileErrs, err := parseFile(data)
		if err != nil {
			return nil, err
		}
		for _, e := range fileErrs {
			if ke, ok := errors.AsType[*KeyError](e); ok {
				bad[ke.Key] = true
			}
		}
		errs = fileErrs
		// Every value arrives as the scalar's text, so viper layers
		// defaults < file < environment over plain strings only.
		if err := v.MergeConfigMap(values); err != nil {
			return nil, err
		}
	}
	c, valueErrs := decode(v.GetString)
	for _, e := range valueErrs {
		if ke, ok := errors.AsType[*KeyError](e); ok && bad[ke.Key] {
			continue // already reported by the file check
		}
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// Settings returns every key with its effective value, sorted byte-wise by
// key. Durations print as [D:]HH:MM:SS, modes as four octal digits, levels
// as numbers, an unchanged dumpGID as empty. Passwords, including one inside
// databaseURL, print as **********.
func (c *Config) Settings() []Setting {
	return c.settings(true)
}

func (c *Config) settings(masked bool) []Setting {
	password, url := c.DatabasePassword, c.DatabaseURL
	if masked {
		if password != "" {
			password = mask
		}
		url = maskDatabaseURL(url)
	}
	gid := ""
	if c.DumpGID >= 0 {
		gid = strconv.Itoa(c.DumpGID)
	}
	s := []Setting{
		{"databaseHost", c.DatabaseHost},
		{"databasePort", strconv.Itoa(c.DatabasePort)},
		{"databaseName", c.DatabaseName},
		{"databaseUserName", c.DatabaseUserName},
		{"databasePassword", password},
		{"databaseURL", url},
		{"storageRoot", c.StorageRoot},
		{"deferredStorageRoot", c.DeferredStorageRoot},
		{"storageLayout", c.StorageLayout},
		{"jsonFileSuffix", c.JSONFileSuffix},
		{"dumpFileSuffix", c.DumpFileSuffix},
		{"processorCheckInTime", formatDuration(c.ProcessorCheckInTime)},
		{"standardLoopDelay", formatDuration(c.StandardLoopDelay)},
		{"priorityLoopDelay", formatDuration(c.PriorityLoopDelay)},
		{"cleanupJobsLoopDelay", formatDuration(c.CleanupJobsLoopDelay)},
		{"saveSuccessfulMinidumpsTo", c.SaveSuccessfulMinidumpsTo},
		{"saveFailedMinidumpsTo", c.SaveFailedMinidumpsTo},
		{"dumpPermissions", formatMode(c.DumpPermissions)},
		{"dirPermissions", formatMode(c.DirPermissions)},
		{"dumpGID", gid},
		{"logFilePathname", c.LogFilePathname},
		{"logFileMaximumSize", strconv.FormatInt(c.LogFileMaximumSize, 10)},
		{"logFileMaximumBackupHistory", strconv.Itoa(c.LogFileMaximumBackupHistory)},
		{"logFileLineFormatString", c.LogFileLineFormatString},
		{"logFileErrorLoggingLevel", strconv.Itoa(c.LogFileErrorLoggingLevel)},
		{"stderrLineFormatString", c.StderrLineFormatString},
		{"stderrErrorLoggingLevel", strconv.Itoa(c.StderrErrorLoggingLevel)},
	}
	slices.SortFunc(s, func(a, b Setting) int { return strings.Compare(a.Key, b.Key) })
	return s
}

// ConnString returns the connection string for pgxpool.ParseConfig:
// databaseURL when set, otherwise a libpq key=value string built from
// databaseHost, databasePort, databaseName, databaseUserName and
// databasePassword, each value single-quoted. Empty values are left out, so
// libpq's defaults apply to them.
func (c *Config) ConnString() string {
	if c.DatabaseURL != "" {
		return c.DatabaseURL
	}
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+quoteConnValue(v))
		}
	}
	add("host", c.DatabaseHost)
	add("port", strconv.Itoa(c.DatabasePort))
	add("dbname", c.DatabaseName)
	add("user", c.DatabaseUserName)
	add("password", c.DatabasePassword)
	return strings.Join(parts, " ")
}

// Warnings returns non-fatal remarks about the configuration: directories
// (the storage trees, the archive trees, the log file's directory) that do
// not exist yet or are not directories. It looks at the filesystem now.
func (c *Config) Warnings() []string {
	var w []string
	check := func(key, dir string) {
		if dir == "" {
			return
		}
		fi, err := os.Stat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			w = append(w, fmt.Sprintf("%s: directory %s does not exist (yet)", key, dir))
		case err != nil:
			w = append(w, fmt.Sprintf("%s: cannot check directory %s: %v", key, dir, err))
		case !fi.IsDir():
			w = append(w, fmt.Sprintf("%s: %s is not a directory", key, dir))
		}
	}
	check("storageRoot", c.StorageRoot)
	check("deferredStorageRoot", c.DeferredStorageRoot)
	check("saveSuccessfulMinidumpsTo", c.SaveSuccessfulMinidumpsTo)
	check("saveFailedMinidumpsTo", c.SaveFailedMinidumpsTo)
	if c.LogFilePathname != "" {
		check("logFilePathname", filepath.Dir(c.LogFilePathname))
	}
	return w
}

// Diff returns the keys whose effective value differs between prev and next,
// sorted: hot holds those the running daemon can apply at once (the four
// loop and check-in durations and the two logging levels), restart every
// other one. A nil Config differs in every key.
func Diff(prev, next *Config) (hot, restart []string) {
	a, b := prev.values(), next.values()
	for _, k := range keyNames() {
		av, aok := a[k.name]
		bv, bok := b[k.name]
		if aok && bok && av == bv {
			continue
		}
		if k.hot {
			hot = append(hot, k.name)
		} else {
			restart = append(restart, k.name)
		}
	}
	return hot, restart
}

// values returns every key's unmasked effective value; nil for a nil Config.
func (c *Config) values() map[string]string {
	if c == nil {
		return nil
	}
	m := map[string]string{}
	for _, s := range c.settings(false) {
		m[s.Key] = s.Value
	}
	return m
}

// keyNames returns the key table sorted byte-wise by name.
func keyNames() []keySpec {
	s := slices.Clone(keys)
	slices.SortFunc(s, func(a, b keySpec) int { return strings.Compare(a.name, b.name) })
	return s
}

// Reload returns the configuration a running daemon switches to when next has
// been loaded: running with next's hot settings (the loop and check-in
// durations and the logging levels), and which keys changed, split as Diff
// splits them. Keys that need a restart keep their running values.
func Reload(running, next *Config) (applied *Config, hot, restart []string) {
	hot, restart = Diff(running, next)
	c := *running
	c.ProcessorCheckInTime = next.ProcessorCheckInTime
	c.StandardLoopDelay = next.StandardLoopDelay
	c.PriorityLoopDelay = next.PriorityLoopDelay
	c.CleanupJobsLoopDelay = next.CleanupJobsLoopDelay
	c.LogFileErrorLoggingLevel = next.LogFileErrorLoggingLevel
	c.StderrErrorLoggingLevel = next.StderrErrorLoggingLevel
	return &c, hot, restart
}
