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
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/crashmonitor/monitor/alert"
	"github.com/crashmonitor/monitor/apmon"
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
	// DatabaseSessionURL, when set, is a direct connection to PostgreSQL
	// for what needs a session of its own (the priority listener, the
	// election, migrations) while DatabaseURL goes through a transaction
	// pooler; empty means DatabaseURL (or the five keys) for everything.
	DatabaseSessionURL string

	StorageRoot         string
	DeferredStorageRoot string
	StorageLayout       string // "daily" or "flat"

	JSONFileSuffix string // always with a leading dot
	DumpFileSuffix string // always with a leading dot

	// InboxEvents: the scanner follows the inbox through inotify (new
	// pairs queued within milliseconds); false leaves it to the periodic
	// walk, for a tree whose writers are on other hosts (NFS), whose
	// events never reach this one.
	InboxEvents bool

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

	HTTPListenAddress string // "" = no HTTP server

	// ApMonDestinations are the MonALISA services (and configuration
	// pages) the ApMon reports go to; none, no reports.
	ApMonDestinations []apmon.Destination
	ApMonClusterName  string
	ApMonNodeName     string // the host's name unless set
	ApMonInterval     time.Duration
	ApMonMaxMsgRate   int // datagrams a second to one destination, at most

	// AlertRules are the threshold rules, evaluated every AlertInterval.
	AlertRules    []alert.Rule
	AlertInterval time.Duration
}

// Setting is one key and its effective value, as printed by check-config.
type Setting struct {
	Key, Value string
}

// KeyError is a problem with one key of the configuration. Value is the
// offending value as given, or empty when the problem is not about a value
// or the value may hold a password.
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
	var fileErrs []error
	nodes := map[string]*yaml.Node{}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var values map[string]any
		values, fileErrs, err = parseFile(data)
		if err != nil {
			return nil, err
		}
		// A structured key's YAML value stays out of viper, which would
		// copy it apart; the environment still overrides it (see get).
		for key, val := range values {
			if n, ok := val.(*yaml.Node); ok {
				nodes[key] = n
				delete(values, key)
			}
		}
		// Every other value arrives as the scalar's text, so viper layers
		// defaults < file < environment over plain strings only.
		if err := v.MergeConfigMap(values); err != nil {
			return nil, err
		}
	}
	c, valueErrs := decode(func(key string) any {
		if n, ok := nodes[key]; ok {
			if _, set := os.LookupEnv(EnvPrefix + strings.ToUpper(key)); !set {
				return n
			}
		}
		return v.Get(key)
	})
	// A key the file check rejected is not reported again for its value.
	reported := map[string]bool{}
	for _, e := range fileErrs {
		reported[keyOf(e)] = true
	}
	errs := fileErrs
	for _, e := range valueErrs {
		if !reported[keyOf(e)] {
			errs = append(errs, e)
		}
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
	s := make([]Setting, 0, len(sortedKeys))
	for _, k := range sortedKeys {
		v := k.format(c)
		if k.mask != nil {
			v = k.mask(v)
		}
		s = append(s, Setting{k.name, v})
	}
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

// SessionConnString returns the connection string of what needs a session
// of its own: databaseSessionURL when set, else ConnString.
func (c *Config) SessionConnString() string {
	if c.DatabaseSessionURL != "" {
		return c.DatabaseSessionURL
	}
	return c.ConnString()
}

// Pooled reports whether databaseURL goes through a transaction pooler, as
// setting databaseSessionURL says: the connections of databaseURL must then
// keep no session state (no prepared statements across transactions).
func (c *Config) Pooled() bool { return c.DatabaseSessionURL != "" }

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

// Diff returns the keys whose effective value (as Settings prints it, but
// unmasked) differs between prev and next, sorted: hot holds those the
// running daemon can apply at once (the four loop and check-in durations and
// the two logging levels), restart every other one. A nil Config differs in
// every key.
func Diff(prev, next *Config) (hot, restart []string) {
	for _, k := range sortedKeys {
		if prev != nil && next != nil && k.format(prev) == k.format(next) {
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

// Reload returns the configuration a running daemon switches to when next has
// been loaded: running with next's hot settings (the loop and check-in
// durations and the logging levels), and which keys changed, split as Diff
// splits them. Keys that need a restart keep their running values.
func Reload(running, next *Config) (applied *Config, hot, restart []string) {
	hot, restart = Diff(running, next)
	c := *running
	for _, k := range keys {
		if k.hot {
			k.copy(&c, next)
		}
	}
	return &c, hot, restart
}

// keyOf returns the key an error is about, or "" if it is not a *KeyError.
func keyOf(err error) string {
	if ke, ok := errors.AsType[*KeyError](err); ok {
		return ke.Key
	}
	return ""
}
