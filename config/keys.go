package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/crashmonitor/monitor/alert"
	"github.com/crashmonitor/monitor/apmon"
)

// keys lists every configuration key once, with the name the file and the
// environment spell it as (the classic monitor's), its default as text, when
// a change takes effect, how its value is read and printed, and its Config
// field. The defaults, the environment binding, decode, Settings, Diff and
// Reload all come from this table; adding a key is a line here and a field in
// Config. A secret key prints through its mask and its errors never quote
// it; a required key must not be empty. The two rules across keys (an empty
// stderrLineFormatString is logFileLineFormatString's; dumpFileSuffix differs
// from jsonFileSuffix) are in decode. Problems are reported in table order.
// It is read-only.
var keys = []keySpec{
	key("databaseHost", "localhost", onRestart, asText, func(c *Config) *string { return &c.DatabaseHost }),
	key("databasePort", "5432", onRestart, asInteger[int](1, 65535), func(c *Config) *int { return &c.DatabasePort }),
	key("databaseName", "socorro", onRestart, asText, func(c *Config) *string { return &c.DatabaseName }),
	key("databaseUserName", "socorro", onRestart, asText, func(c *Config) *string { return &c.DatabaseUserName }),
	key("databasePassword", "", onRestart, asText, func(c *Config) *string { return &c.DatabasePassword }).secret(maskPassword),
	key("databaseURL", "", onRestart, asDatabaseURL, func(c *Config) *string { return &c.DatabaseURL }).secret(maskDatabaseURL),
	key("databaseSessionURL", "", onRestart, asDatabaseURL, func(c *Config) *string { return &c.DatabaseSessionURL }).secret(maskDatabaseURL),

	key("storageRoot", "", onRestart, asDir, func(c *Config) *string { return &c.StorageRoot }).required(),
	key("deferredStorageRoot", "", onRestart, asDir, func(c *Config) *string { return &c.DeferredStorageRoot }),
	key("storageLayout", "daily", onRestart, asLayout, func(c *Config) *string { return &c.StorageLayout }),

	key("jsonFileSuffix", ".json", onRestart, asSuffix, func(c *Config) *string { return &c.JSONFileSuffix }),
	key("dumpFileSuffix", ".dump", onRestart, asSuffix, func(c *Config) *string { return &c.DumpFileSuffix }), // differs from jsonFileSuffix: see decode

	key("inboxEvents", "true", onRestart, asBool, func(c *Config) *bool { return &c.InboxEvents }),

	key("processorCheckInTime", "00:05:00", onReload, asDuration, func(c *Config) *time.Duration { return &c.ProcessorCheckInTime }),
	key("standardLoopDelay", "00:05:00", onReload, asDuration, func(c *Config) *time.Duration { return &c.StandardLoopDelay }),
	key("priorityLoopDelay", "00:01:00", onReload, asDuration, func(c *Config) *time.Duration { return &c.PriorityLoopDelay }),
	key("cleanupJobsLoopDelay", "00:05:00", onReload, asDuration, func(c *Config) *time.Duration { return &c.CleanupJobsLoopDelay }),

	key("saveSuccessfulMinidumpsTo", "/tmp/socorro-successful", onRestart, asDir, func(c *Config) *string { return &c.SaveSuccessfulMinidumpsTo }),
	key("saveFailedMinidumpsTo", "/tmp/socorro-failed", onRestart, asDir, func(c *Config) *string { return &c.SaveFailedMinidumpsTo }),
	key("dumpPermissions", "0660", onRestart, asMode, func(c *Config) *fs.FileMode { return &c.DumpPermissions }),
	key("dirPermissions", "0770", onRestart, asMode, func(c *Config) *fs.FileMode { return &c.DirPermissions }),
	key("dumpGID", "", onRestart, asGID, func(c *Config) *int { return &c.DumpGID }),

	key("logFilePathname", "./monitor.log", onRestart, asText, func(c *Config) *string { return &c.LogFilePathname }),
	key("logFileMaximumSize", "1000000", onRestart, asInteger[int64](1, math.MaxInt64), func(c *Config) *int64 { return &c.LogFileMaximumSize }),
	key("logFileMaximumBackupHistory", "50", onRestart, asInteger[int](0, math.MaxInt32), func(c *Config) *int { return &c.LogFileMaximumBackupHistory }),
	key("logFileLineFormatString", "%(asctime)s %(levelname)s - %(message)s", onRestart, asLineFormat, func(c *Config) *string { return &c.LogFileLineFormatString }),
	key("logFileErrorLoggingLevel", "10", onReload, asLevel, func(c *Config) *int { return &c.LogFileErrorLoggingLevel }),
	key("stderrLineFormatString", "", onRestart, optional(asLineFormat), func(c *Config) *string { return &c.StderrLineFormatString }), // empty = as logFileLineFormatString: see decode
	key("stderrErrorLoggingLevel", "40", onReload, asLevel, func(c *Config) *int { return &c.StderrErrorLoggingLevel }),

	key("httpListenAddress", "127.0.0.1:9661", onRestart, asListenAddress, func(c *Config) *string { return &c.HTTPListenAddress }),

	key("apmonDestinations", "", onReload, asApMonDestinations(), func(c *Config) *[]apmon.Destination { return &c.ApMonDestinations }).secret(apmon.MaskList),
	key("apmonClusterName", "Socorro_Monitor", onReload, asApMonCluster(), func(c *Config) *string { return &c.ApMonClusterName }),
	key("apmonNodeName", "", onReload, asApMonNode(), func(c *Config) *string { return &c.ApMonNodeName }), // empty = the host name
	key("apmonInterval", "00:00:30", onReload, asDuration, func(c *Config) *time.Duration { return &c.ApMonInterval }),
	key("apmonMaxMsgRate", "20", onReload, asInteger[int](1, math.MaxInt32), func(c *Config) *int { return &c.ApMonMaxMsgRate }),

	key("alertRules", "", onReload, asAlertRules, func(c *Config) *[]alert.Rule { return &c.AlertRules }),
	key("alertInterval", "00:00:10", onReload, asDuration, func(c *Config) *time.Duration { return &c.AlertInterval }),
}

// takesEffect says when a running daemon applies a changed key.
type takesEffect bool

const (
	onRestart takesEffect = false // at the next start
	onReload  takesEffect = true  // at once, when the file is reloaded ("hot")
)

// keySpec is one entry of the key table. Build it with key.
type keySpec struct {
	name       string
	def        string // the default, as the file would spell it
	hot        bool   // applied without a restart
	isRequired bool   // an empty value is an error
	isList     bool   // a YAML sequence is accepted (see kind.items)
	isNode     bool   // the file's YAML value is read whole (see kind.node)
	// mask, for a secret key, hides the secret in a printed value.
	mask func(printed string) string
	// parse reads raw into c's field. On failure it returns the problem and
	// the value as read, for the error to quote.
	parse func(c *Config, raw string) (read string, err error)
	// parseItems, set for a list key, reads a YAML sequence into c's field.
	parseItems func(c *Config, items []string) error
	// parseNode, set for a structured key, reads its YAML value.
	parseNode func(c *Config, n *yaml.Node) error
	// format prints c's field, unmasked.
	format func(c *Config) string
	// copy sets dst's field to src's.
	copy func(dst, src *Config)
}

// key describes the key name, with default def, read and printed as the
// kind says, stored in the Config field that field points to.
func key[T any](name, def string, when takesEffect, as kind[T], field func(*Config) *T) keySpec {
	return keySpec{
		name: name,
		def:  def,
		hot:  bool(when),
		parse: func(c *Config, raw string) (string, error) {
			if as.trim {
				raw = strings.TrimSpace(raw)
			}
			v, err := as.parse(raw)
			*field(c) = v
			return raw, err
		},
		parseItems: func(c *Config, items []string) error {
			if as.items == nil {
				return errors.New("is a list; the value must be a plain scalar")
			}
			v, err := as.items(items)
			*field(c) = v
			return err
		},
		parseNode: func(c *Config, n *yaml.Node) error {
			v, err := as.node(n)
			*field(c) = v
			return err
		},
		format: func(c *Config) string { return as.format(*field(c)) },
		copy:   func(dst, src *Config) { *field(dst) = *field(src) },
		isList: as.items != nil,
		isNode: as.node != nil,
	}
}

// secret marks k as holding a secret: Settings prints its value through
// mask, and its problems never quote the value.
func (k keySpec) secret(mask func(string) string) keySpec {
	k.mask = mask
	return k
}

// required marks k as one that must not be empty.
func (k keySpec) required() keySpec {
	k.isRequired = true
	return k
}

// sortedKeys is the key table sorted byte-wise by name; see keyNames.
var sortedKeys = func() []keySpec {
	s := slices.Clone(keys)
	slices.SortFunc(s, func(a, b keySpec) int { return strings.Compare(a.name, b.name) })
	return s
}()

// keyNames returns the key table sorted byte-wise by name.
func keyNames() []keySpec {
	return slices.Clone(sortedKeys)
}

// maskPassword hides a password, leaving an empty one empty.
func maskPassword(s string) string {
	if s == "" {
		return ""
	}
	return mask
}

// decode builds a Config from get, which returns each key's raw value (a
// string, or a list of strings for a list key set by a YAML sequence), and
// returns a *KeyError for each bad key: first the bad values in table order,
// then the required keys left empty, then the checks across keys.
func decode(get func(key string) any) (*Config, []error) {
	c := &Config{}
	var errs, missing []error
	for _, k := range keys {
		value := get(k.name)
		if list, ok := value.([]any); ok { // a sequence, should it come back untyped
			items := make([]string, len(list))
			for i, item := range list {
				items[i] = text(item)
			}
			value = items
		}
		if n, ok := value.(*yaml.Node); ok {
			if err := k.parseNode(c, n); err != nil {
				errs = append(errs, &KeyError{Key: k.name, Err: err})
			}
			continue
		}
		if items, ok := value.([]string); ok {
			if err := k.parseItems(c, items); err != nil {
				errs = append(errs, &KeyError{Key: k.name, Err: err})
			}
			continue
		}
		raw := text(value)
		if k.isRequired && raw == "" {
			missing = append(missing, &KeyError{Key: k.name, Err: errors.New("required")})
			continue
		}
		read, err := k.parse(c, raw)
		if err != nil {
			if k.mask != nil {
				read = "" // the value is a secret or holds one: not shown
			}
			errs = append(errs, &KeyError{Key: k.name, Value: read, Err: err})
		}
	}
	errs = append(errs, missing...)

	if c.StderrLineFormatString == "" {
		c.StderrLineFormatString = c.LogFileLineFormatString
	}
	if c.JSONFileSuffix != "" && c.JSONFileSuffix == c.DumpFileSuffix {
		errs = append(errs, &KeyError{Key: "dumpFileSuffix", Value: text(get("dumpFileSuffix")), Err: errors.New("is the same as jsonFileSuffix")})
	}
	return c, errs
}

// text is a scalar value as a string (nil is empty).
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}
