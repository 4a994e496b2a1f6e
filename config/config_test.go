package config

import (
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/alert"
	"github.com/jackc/pgx/v5/pgconn"
	"go.yaml.in/yaml/v3"
)

// defaults is the Config of a file that sets only storageRoot.
func defaults(storageRoot string) *Config {
	return &Config{
		DatabaseHost:                "localhost",
		DatabasePort:                5432,
		DatabaseName:                "socorro",
		DatabaseUserName:            "socorro",
		StorageRoot:                 storageRoot,
		StorageLayout:               "daily",
		JSONFileSuffix:              ".json",
		DumpFileSuffix:              ".dump",
		ProcessorCheckInTime:        5 * time.Minute,
		StandardLoopDelay:           5 * time.Minute,
		PriorityLoopDelay:           time.Minute,
		CleanupJobsLoopDelay:        5 * time.Minute,
		SaveSuccessfulMinidumpsTo:   "/tmp/socorro-successful",
		SaveFailedMinidumpsTo:       "/tmp/socorro-failed",
		DumpPermissions:             0o660,
		DirPermissions:              0o770,
		DumpGID:                     -1,
		LogFilePathname:             "./monitor.log",
		LogFileMaximumSize:          1000000,
		LogFileMaximumBackupHistory: 50,
		LogFileLineFormatString:     "%(asctime)s %(levelname)s - %(message)s",
		LogFileErrorLoggingLevel:    10,
		StderrLineFormatString:      "%(asctime)s %(levelname)s - %(message)s",
		StderrErrorLoggingLevel:     40,
		HTTPListenAddress:           "127.0.0.1:9661",
		ApMonClusterName:            "Socorro_Monitor",
		ApMonNodeName:               hostname(),
		ApMonInterval:               30 * time.Second,
		ApMonMaxMsgRate:             20,
		AlertInterval:               10 * time.Second,
		InboxEvents:                 true,
	}
}

// hostname is the default apmonNodeName.
func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		panic(err)
	}
	return h
}

// keyErrors returns every *KeyError inside err, which may be joined.
func keyErrors(err error) []*KeyError {
	var out []*KeyError
	var walk func(error)
	walk = func(e error) {
		if ke, ok := e.(*KeyError); ok {
			out = append(out, ke)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			if x := u.Unwrap(); x != nil {
				walk(x)
			}
		}
	}
	walk(err)
	return out
}

func mustLoad(t *testing.T, path string) *Config {
	t.Helper()
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%q): %v", path, err)
	}
	return c
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkParse checks parse(in): with wantErr set, that it fails with an error
// containing wantErr; otherwise that it returns want.
func checkParse[T comparable](t *testing.T, name string, parse func(string) (T, error), in string, want T, wantErr string) {
	t.Helper()
	got, err := parse(in)
	switch {
	case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
		t.Errorf("%s(%q) = %v, %v; want error %q", name, in, got, err, wantErr)
	case wantErr == "" && (err != nil || got != want):
		t.Errorf("%s(%q) = %v, %v; want %v", name, in, got, err, want)
	}
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	got := mustLoad(t, "testdata/good_minimal.yaml")
	if want := defaults("/srv/crashes"); !reflect.DeepEqual(got, want) {
		t.Errorf("Load defaults:\n got %+v\nwant %+v", got, want)
	}
}

func TestLoadGood(t *testing.T) {
	t.Parallel()
	classic := defaults("/home/socorro/toBeProcessed")
	classic.DatabaseHost = "db.example.com"
	classic.DatabasePort = 6543
	classic.DatabaseName = "breakpad"
	classic.DatabaseUserName = "monitor"
	classic.DatabasePassword = `s3cret'\x`
	classic.DeferredStorageRoot = "/home/socorro/toBeDeferred"
	classic.StorageLayout = "flat"
	classic.ProcessorCheckInTime = 2 * time.Minute
	classic.StandardLoopDelay = 24 * time.Hour
	classic.PriorityLoopDelay = 30 * time.Second
	classic.CleanupJobsLoopDelay = 90 * time.Second
	classic.SaveSuccessfulMinidumpsTo = ""
	classic.SaveFailedMinidumpsTo = "/tmp/failed"
	classic.DumpPermissions = 0o660
	classic.DirPermissions = 0o770
	classic.DumpGID = 1234
	classic.LogFilePathname = "/var/log/socorro/monitor.log"
	classic.LogFileMaximumSize = 5000000
	classic.LogFileMaximumBackupHistory = 0
	classic.LogFileLineFormatString = "%(asctime)s %(levelname)s - %(threadName)s - %(message)s"
	classic.LogFileErrorLoggingLevel = 20
	classic.StderrLineFormatString = "%(levelname)s %(message)s"
	classic.StderrErrorLoggingLevel = 50

	goForms := defaults("crashes")
	goForms.ProcessorCheckInTime = 90 * time.Second
	goForms.StandardLoopDelay = 90 * time.Minute
	goForms.PriorityLoopDelay = 500 * time.Millisecond
	goForms.CleanupJobsLoopDelay = 300 * time.Second
	goForms.DumpPermissions = 0o660 // unquoted 0660 is octal, not yaml.v3's 432
	goForms.DirPermissions = 0o750
	goForms.LogFileErrorLoggingLevel = 20
	goForms.StderrErrorLoggingLevel = 30
	goForms.LogFileLineFormatString = "json"
	goForms.StderrLineFormatString = "json" // as the file's
	goForms.SaveSuccessfulMinidumpsTo = ""  // empty value
	goForms.SaveFailedMinidumpsTo = ""      // ~ (null)
	goForms.DatabaseURL = "postgres://monitor:pa%40ss@db:5432/socorro?sslmode=disable"

	anchor := defaults("/srv/crashes")
	anchor.DeferredStorageRoot = "/srv/crashes"

	tests := []struct {
		file string
		want *Config
	}{
		{"good_classic.yaml", classic},
		{"good_go_forms.yaml", goForms},
		{"good_anchor.yaml", anchor},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			got := mustLoad(t, filepath.Join("testdata", tt.file))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestLoadBad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file    string
		key     string // the *KeyError expected; "" when the error is not about a key
		message string // a fragment of the whole error
	}{
		{"bad_unknown_key.yaml", "storageRooot", `storageRooot: unknown key on line 2 (did you mean storageRoot?)`},
		{"bad_wrong_case_key.yaml", "DatabaseHost", `DatabaseHost: unknown key on line 2 (did you mean databaseHost?)`},
		{"bad_duplicate_key.yaml", "databaseHost", `databaseHost: duplicate key on line 3 (first on line 2)`},
		{"bad_nested.yaml", "databaseHost", `databaseHost: on line 3 is a nested mapping`},
		{"bad_list.yaml", "dumpGID", `dumpGID: on line 2 is a list`},
		{"bad_missing_storage_root.yaml", "storageRoot", `storageRoot: required`},
		{"bad_empty_storage_root.yaml", "storageRoot", `storageRoot: required`},
		{"good_empty.yaml", "storageRoot", `storageRoot: required`},
		{"bad_duration.yaml", "standardLoopDelay", `standardLoopDelay: "5 minutes" is not a duration (use HH:MM:SS, 90s or 5m)`},
		{"bad_zero_duration.yaml", "processorCheckInTime", `processorCheckInTime: "00:00:00" must be greater than zero`},
		{"bad_negative_duration.yaml", "priorityLoopDelay", `priorityLoopDelay: "-5s" must be greater than zero`},
		{"bad_mode.yaml", "dumpPermissions", `dumpPermissions: "01000" is above 0777`},
		{"bad_mode_syntax.yaml", "dirPermissions", `dirPermissions: "rwxr-x---" is not a mode`},
		{"bad_level.yaml", "logFileErrorLoggingLevel", `logFileErrorLoggingLevel: "60" is not a level`},
		{"bad_level_name.yaml", "stderrErrorLoggingLevel", `stderrErrorLoggingLevel: "LOUD" is not a level`},
		{"bad_layout.yaml", "storageLayout", `storageLayout: "hourly" must be daily or flat`},
		{"bad_http_listen_address.yaml", "httpListenAddress", `httpListenAddress: "9661" is not a listen address`},
		{"bad_port.yaml", "databasePort", `databasePort: "70000" must be between 1 and 65535`},
		{"bad_log_size.yaml", "logFileMaximumSize", `logFileMaximumSize: "0" must be at least 1`},
		{"bad_backup_history.yaml", "logFileMaximumBackupHistory", `logFileMaximumBackupHistory: "-1" must be at least 0`},
		{"bad_empty_suffix.yaml", "jsonFileSuffix", `jsonFileSuffix: must not be empty`},
		{"bad_same_suffix.yaml", "dumpFileSuffix", `dumpFileSuffix: ".dump" is the same as jsonFileSuffix`},
		{"bad_line_format.yaml", "logFileLineFormatString", `unknown placeholder %(levelno)s`},
		{"bad_database_url.yaml", "databaseURL", `databaseURL: must be a postgres:// or postgresql:// URL`},
		{"bad_unknown_group.yaml", "dumpGID", `dumpGID: "no-such-group-for-monitor-tests" is not a known group`},
		{"bad_not_mapping.yaml", "", `line 1: the file must be one mapping`},
		{"bad_two_documents.yaml", "", `a second YAML document`},
		{"bad_syntax.yaml", "", `yaml:`},
		{"no_such_file.yaml", "", `no such file or directory`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join("testdata", tt.file)
			c, err := Load(path)
			if err == nil {
				t.Fatalf("Load(%s) = %+v, want an error", tt.file, c)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "load config "+path+": ") {
				t.Errorf("error %q does not start with the file name", msg)
			}
			if !strings.Contains(msg, tt.message) {
				t.Errorf("error %q does not contain %q", msg, tt.message)
			}
			kes := keyErrors(err)
			if tt.key == "" {
				if len(kes) != 0 {
					t.Errorf("unexpected key errors %v", kes)
				}
				return
			}
			if len(kes) != 1 || kes[0].Key != tt.key {
				t.Errorf("key errors = %v, want exactly one for %s", kes, tt.key)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error %q shows a password", msg)
			}
		})
	}
}

func TestLoadCollectsAllErrors(t *testing.T) {
	t.Parallel()
	_, err := Load("testdata/bad_many.yaml")
	var got []string
	for _, ke := range keyErrors(err) {
		got = append(got, ke.Key)
	}
	slices.Sort(got)
	want := []string{"dumpPermissions", "standardLoopDelay", "stderrErrorLoggingLevel", "storageRoot", "storage_root"}
	if !slices.Equal(got, want) {
		t.Errorf("keys in error = %v, want %v (error: %v)", got, want, err)
	}
	if ke, ok := errors.AsType[*KeyError](err); !ok || ke.Err == nil {
		t.Errorf("errors.AsType[*KeyError] failed on %v", err)
	}
}

func TestAlertRules(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, "testdata/good_alert_rules.yaml")
	want := []alert.Rule{
		{Name: "no-live-processor", Metric: "processors_live", Below: true, Threshold: 1, Window: 2 * time.Minute,
			Command: []string{"/usr/local/bin/page", "crash pipeline; $(rm -rf /)"}, Repeat: time.Hour},
		{Name: "backlog", Metric: "jobs_queued", Threshold: 50000, Window: alert.DefaultWindow},
	}
	if !reflect.DeepEqual(c.AlertRules, want) || c.AlertInterval != 5*time.Second {
		t.Errorf("rules = %+v every %s, want %+v every 5s", c.AlertRules, c.AlertInterval, want)
	}

	_, err := Load("testdata/bad_alert_rules.yaml")
	if ke := keyErrors(err); len(ke) != 1 || ke[0].Key != "alertRules" {
		t.Fatalf("want one error, about alertRules; got %v", err)
	}
	for _, frag := range []string{
		`rule "no-live-processor" (line 3): field metric: "procesors_live" is not a metric (one of jobs_queued,`,
		`rule "both" (line 6): field above: give either above or below, not both`,
		`rule "neither" (line 10): field above: required: give the threshold as above or below`,
		`rule 4 (line 12): field name: "bad name!" is not a name: use letters, digits, _ and -`,
		`rule "no-live-processor" (line 15): field name: a rule of this name is already on line 3`,
		`rule "bad-window" (line 18): field window: "5 minutes" is not a duration`,
		`rule "empty-command" (line 22): field command: is an empty list`,
		`rule "unknown-field" (line 26): field colour: unknown field on line 29`,
		`rule "not-a-number" (line 30): field above: "lots" is not a number`,
		`rule 10 (line 33): must be a mapping of fields`,
	} {
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("error lacks %q:\n%v", frag, err)
		}
	}
}

// TestAlertRulesFromTheEnvironment: the environment may only empty the
// rules.
func TestAlertRulesFromTheEnvironment(t *testing.T) {
	t.Setenv("MONITOR_ALERTRULES", "")
	if c := mustLoad(t, "testdata/good_alert_rules.yaml"); len(c.AlertRules) != 0 {
		t.Errorf("an empty MONITOR_ALERTRULES left %d rules", len(c.AlertRules))
	}
	t.Setenv("MONITOR_ALERTRULES", "- name: x")
	if _, err := Load("testdata/good_alert_rules.yaml"); err == nil || !strings.Contains(err.Error(), "is set in the configuration file only") {
		t.Errorf("MONITOR_ALERTRULES with rules: err = %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{in: "5", want: 5 * time.Second},
		{in: "300", want: 5 * time.Minute},
		{in: "5:00", want: 5 * time.Minute},
		{in: "00:05:00", want: 5 * time.Minute},
		{in: "01:30:15", want: time.Hour + 30*time.Minute + 15*time.Second},
		{in: "1:00:00:00", want: 24 * time.Hour},
		{in: "2:03:00:00", want: 51 * time.Hour},
		{in: "00:90:00", want: 90 * time.Minute},
		{in: " 00:01:00 ", want: time.Minute},
		{in: "90s", want: 90 * time.Second},
		{in: "5m", want: 5 * time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "", err: "is empty"},
		{in: "0", err: "must be greater than zero"},
		{in: "00:00:00", err: "must be greater than zero"},
		{in: "0s", err: "must be greater than zero"},
		{in: "-5s", err: "must be greater than zero"},
		{in: "-5", err: "is not a duration"},
		{in: "-00:05:00", err: "is not a duration"},
		{in: "5 minutes", err: "is not a duration"},
		{in: "1.5", err: "is not a duration"},
		{in: "1:2:3:4:5", err: "is not a duration"},
		{in: "1::2", err: "is not a duration"},
		{in: ":5", err: "is not a duration"},
		{in: "a:b", err: "is not a duration"},
		{in: "99999999999", err: "is not a duration"},
		{in: "5000000000:00:00:00", err: "is not a duration"},
		{in: "200000:00:00:00", err: "is too long"},
	}
	for _, tt := range tests {
		checkParse(t, "parseDuration", parseDuration, tt.in, tt.want, tt.err)
	}
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	tests := map[time.Duration]string{
		5 * time.Minute:                   "00:05:00",
		90 * time.Second:                  "00:01:30",
		26*time.Hour + 3*time.Second:      "1:02:00:03",
		100 * time.Hour:                   "4:04:00:00",
		1500 * time.Millisecond:           "1.5s",
		23*time.Hour + 59*time.Minute + 1: "23h59m0.000000001s",
	}
	for d, want := range tests {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
		if got, err := parseDuration(formatDuration(d)); err != nil || got != d {
			t.Errorf("parseDuration(formatDuration(%v)) = %v, %v", d, got, err)
		}
	}
}

func TestParseMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want os.FileMode
		err  string
	}{
		{in: "0660", want: 0o660},
		{in: "0o660", want: 0o660},
		{in: "0O750", want: 0o750},
		{in: "00660", want: 0o660},
		{in: "0777", want: 0o777},
		{in: "0", want: 0},
		{in: "432", want: 0o660},
		{in: "504", want: 0o770},
		{in: "511", want: 0o777},
		{in: " 0640 ", want: 0o640},
		{in: "512", err: "is above 0777 (read as 01000)"},
		{in: "01000", err: "is above 0777"},
		{in: "0o1777", err: "is above 0777"},
		{in: "-1", err: "is not a mode"},
		{in: "0o", err: "is not a mode"},
		{in: "0999", err: "is not a mode"},
		{in: "0x1F", err: "is not a mode"},
		{in: "rw-rw----", err: "is not a mode"},
		{in: "", err: "is empty"},
	}
	for _, tt := range tests {
		checkParse(t, "parseMode", parseMode, tt.in, tt.want, tt.err)
	}
}

// TestYAMLModes checks modes written in a file: yaml.v3 reads an unquoted
// 0644 or 0o644 as the integer 420, but the monitor reads the text as
// written, so all these mean 0644.
func TestYAMLModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		yaml string
		want os.FileMode
	}{
		{"dumpPermissions: 0644", 0o644},
		{"dumpPermissions: \"0644\"", 0o644},
		{"dumpPermissions: 0o644", 0o644},
		{"dumpPermissions: 420", 0o644},
		{"dumpPermissions: \"420\"", 0o644},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		p := writeFile(t, dir, strconv.Itoa(i)+".yaml", "storageRoot: /srv\n"+tt.yaml+"\n")
		c := mustLoad(t, p)
		if c.DumpPermissions != tt.want {
			t.Errorf("%s: dumpPermissions = %#o, want %#o", tt.yaml, c.DumpPermissions, tt.want)
		}
	}
}

func TestParseLevel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"0", 0, true}, {"10", 10, true}, {"25", 25, true}, {"50", 50, true},
		{"DEBUG", 10, true}, {"info", 20, true}, {"Warning", 30, true}, {"WARN", 30, true},
		{"error", 40, true}, {"CRITICAL", 50, true}, {" INFO ", 20, true},
		{"51", 0, false}, {"-1", 0, false}, {"", 0, false}, {"LOUD", 0, false}, {"10.5", 0, false},
	}
	for _, tt := range tests {
		got, err := parseLevel(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseLevel(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestLoadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		yaml  string
		check func(*Config) bool
	}{
		{"jsonFileSuffix: meta\ndumpFileSuffix: dmp", func(c *Config) bool {
			return c.JSONFileSuffix == ".meta" && c.DumpFileSuffix == ".dmp"
		}},
		{"storageRoot: /", func(c *Config) bool { return c.StorageRoot == "/" }},
		{"storageRoot: ///", func(c *Config) bool { return c.StorageRoot == "/" }},
		{"storageRoot: rel/dir/", func(c *Config) bool { return c.StorageRoot == "rel/dir" }},
		{"dumpGID: 0", func(c *Config) bool { return c.DumpGID == 0 }},
		{"dumpGID: ''", func(c *Config) bool { return c.DumpGID == -1 }},
		{"stderrLineFormatString: json", func(c *Config) bool {
			return c.StderrLineFormatString == "json" && c.LogFileLineFormatString == defaults("").LogFileLineFormatString
		}},
		{"logFilePathname: ''", func(c *Config) bool { return c.LogFilePathname == "" }},
		{"databaseURL: host=db dbname=socorro password='x y'", func(c *Config) bool {
			return c.DatabaseURL == "host=db dbname=socorro password='x y'"
		}},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		content := tt.yaml + "\n"
		if !strings.HasPrefix(tt.yaml, "storageRoot") {
			content = "storageRoot: /srv\n" + content
		}
		c := mustLoad(t, writeFile(t, dir, strconv.Itoa(i)+".yaml", content))
		if !tt.check(c) {
			t.Errorf("%q: unexpected config %+v", tt.yaml, c)
		}
	}
}

func TestLoadGroupName(t *testing.T) {
	t.Parallel()
	g, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	if err != nil {
		t.Skipf("no name for gid %d: %v", os.Getgid(), err)
	}
	p := writeFile(t, t.TempDir(), "c.yaml", "storageRoot: /srv\ndumpGID: "+strconv.Quote(g.Name)+"\n")
	if c := mustLoad(t, p); c.DumpGID != os.Getgid() {
		t.Errorf("dumpGID %q = %d, want %d", g.Name, c.DumpGID, os.Getgid())
	}
}

func TestLoadDatabaseURLErrors(t *testing.T) {
	t.Parallel()
	for _, url := range []string{
		"postgres://u:hunter2@[db/x",
		"host=db password='hunter2",
		"hunter2",
		"http://u:hunter2@db/x",
	} {
		p := writeFile(t, t.TempDir(), "c.yaml", "storageRoot: /srv\ndatabaseURL: "+strconv.Quote(url)+"\n")
		_, err := Load(p)
		kes := keyErrors(err)
		if len(kes) != 1 || kes[0].Key != "databaseURL" {
			t.Errorf("databaseURL %q: error %v, want one databaseURL error", url, err)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("databaseURL %q: error %q shows the password", url, err)
		}
	}
}

// The tests below set environment variables and cannot run in parallel.

func TestEnvOverride(t *testing.T) {
	t.Setenv("MONITOR_DATABASEPASSWORD", "from-env")
	t.Setenv("MONITOR_STANDARDLOOPDELAY", "90s")
	t.Setenv("MONITOR_DUMPPERMISSIONS", "0640")
	t.Setenv("MONITOR_STORAGEROOT", "/env/root/")
	t.Setenv("MONITOR_SAVESUCCESSFULMINIDUMPSTO", "") // empty = empty, not the default
	t.Setenv("MONITOR_DATABASEHOST", "")
	t.Setenv("MONITOR_TEST_DATABASE_URL", "postgres://not-a-key")
	t.Setenv("MONITOR_STORAGE_ROOT", "/not/a/key")
	t.Setenv("MONITOR_databaseName", "wrong-case")
	t.Setenv("databaseName", "no-prefix")

	c := mustLoad(t, "testdata/good_classic.yaml")
	checks := []struct {
		name      string
		got, want any
	}{
		{"DatabasePassword", c.DatabasePassword, "from-env"},
		{"StandardLoopDelay", c.StandardLoopDelay, 90 * time.Second},
		{"DumpPermissions", c.DumpPermissions, os.FileMode(0o640)},
		{"StorageRoot", c.StorageRoot, "/env/root"},
		{"SaveSuccessfulMinidumpsTo", c.SaveSuccessfulMinidumpsTo, ""},
		{"DatabaseHost", c.DatabaseHost, ""},
		{"DatabaseURL", c.DatabaseURL, ""},
		{"DatabaseName", c.DatabaseName, "breakpad"},             // from the file
		{"DirPermissions", c.DirPermissions, os.FileMode(0o770)}, // from the file
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestEnvOnly(t *testing.T) {
	t.Setenv("MONITOR_STORAGEROOT", "/env/root")
	for _, path := range []string{"", "testdata/good_empty.yaml"} {
		c := mustLoad(t, path)
		if want := defaults("/env/root"); !reflect.DeepEqual(c, want) {
			t.Errorf("Load(%q):\n got %+v\nwant %+v", path, c, want)
		}
	}
}

func TestEnvErrors(t *testing.T) {
	t.Setenv("MONITOR_STORAGEROOT", "")
	t.Setenv("MONITOR_PRIORITYLOOPDELAY", "soon")
	t.Setenv("MONITOR_JSONFILESUFFIX", "")
	_, err := Load("testdata/good_minimal.yaml")
	var got []string
	for _, ke := range keyErrors(err) {
		got = append(got, ke.Key)
	}
	slices.Sort(got)
	if want := []string{"jsonFileSuffix", "priorityLoopDelay", "storageRoot"}; !slices.Equal(got, want) {
		t.Errorf("keys in error = %v, want %v (error: %v)", got, want, err)
	}
	if _, err := Load(""); err == nil || !strings.HasPrefix(err.Error(), "load config: ") {
		t.Errorf(`Load("") error = %v, want "load config: ..."`, err)
	}
}

func TestSettings(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, "testdata/good_classic.yaml")
	s := c.Settings()
	if len(s) != len(keys) {
		t.Fatalf("Settings has %d entries, want %d", len(s), len(keys))
	}
	if !slices.IsSortedFunc(s, func(a, b Setting) int { return strings.Compare(a.Key, b.Key) }) {
		t.Errorf("Settings not sorted: %v", s)
	}
	got := map[string]string{}
	for _, x := range s {
		got[x.Key] = x.Value
	}
	for _, k := range keys {
		if _, ok := got[k.name]; !ok {
			t.Errorf("Settings lacks %s", k.name)
		}
	}
	want := map[string]string{
		"databasePassword":         "**********",
		"databaseURL":              "",
		"dumpPermissions":          "0660",
		"dirPermissions":           "0770",
		"dumpGID":                  "1234",
		"standardLoopDelay":        "1:00:00:00",
		"processorCheckInTime":     "00:02:00",
		"cleanupJobsLoopDelay":     "00:01:30",
		"jsonFileSuffix":           ".json",
		"storageRoot":              "/home/socorro/toBeProcessed",
		"stderrLineFormatString":   "%(levelname)s %(message)s",
		"logFileErrorLoggingLevel": "20",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("Settings %s = %q, want %q", k, got[k], v)
		}
	}
	if d := mustLoad(t, "testdata/good_minimal.yaml").Settings(); d[slices.IndexFunc(d, func(x Setting) bool { return x.Key == "databasePassword" })].Value != "" {
		t.Errorf("an empty password should print empty")
	}
}

func TestSettingsMasksDatabaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ url, want string }{
		{"", ""},
		{"postgres://monitor:s3cret@db:5432/socorro?sslmode=disable", "postgres://monitor:**********@db:5432/socorro?sslmode=disable"},
		{"postgresql://monitor:p%40ss:x@db/socorro", "postgresql://monitor:**********@db/socorro"},
		{"postgres://monitor@db/socorro", "postgres://monitor@db/socorro"},
		{"postgres://db/socorro?user=m&password=s3cret&sslmode=require", "postgres://db/socorro?user=m&password=**********&sslmode=require"},
		{"postgres://u:a@db1:5432,db2:5432/socorro#frag", "postgres://u:**********@db1:5432,db2:5432/socorro#frag"},
		{"host=db user=monitor password=s3cret dbname=socorro", "host=db user=monitor password=********** dbname=socorro"},
		{"host=db password = s3cret dbname=socorro", "host=db password = ********** dbname=socorro"},
		{"host=db password='unterminated", "**********"},
		{"host=db password='it\\'s secret' dbname=socorro", "host=db password=********** dbname=socorro"},
		{"password=a\\ b host=db", "password=********** host=db"},
		{"host=db dbname=socorro", "host=db dbname=socorro"},
	}
	for _, tt := range tests {
		c := &Config{DatabaseURL: tt.url}
		var got string
		for _, s := range c.Settings() {
			if s.Key == "databaseURL" {
				got = s.Value
			}
		}
		if got != tt.want {
			t.Errorf("databaseURL %q prints as %q, want %q", tt.url, got, tt.want)
		}
	}
}

func TestConnString(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, "testdata/good_classic.yaml")
	cs := c.ConnString()
	if want := `host='db.example.com' port='6543' dbname='breakpad' user='monitor' password='s3cret\'\\x'`; cs != want {
		t.Errorf("ConnString() = %q, want %q", cs, want)
	}
	pc, err := pgconn.ParseConfig(cs)
	if err != nil {
		t.Fatalf("pgconn.ParseConfig(%q): %v", cs, err)
	}
	if pc.Host != "db.example.com" || pc.Port != 6543 || pc.Database != "breakpad" || pc.User != "monitor" || pc.Password != `s3cret'\x` {
		t.Errorf("ParseConfig read %s:%d/%s user %s password %q", pc.Host, pc.Port, pc.Database, pc.User, pc.Password)
	}

	noPassword := defaults("/srv")
	if got, want := noPassword.ConnString(), "host='localhost' port='5432' dbname='socorro' user='socorro'"; got != want {
		t.Errorf("ConnString() = %q, want %q", got, want)
	}
	withURL := defaults("/srv")
	withURL.DatabaseURL = "postgres://u:p@db/x"
	if got := withURL.ConnString(); got != withURL.DatabaseURL {
		t.Errorf("ConnString() = %q, want the databaseURL", got)
	}
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := writeFile(t, dir, "file", "")
	c := defaults(dir)
	c.DeferredStorageRoot = filepath.Join(dir, "missing")
	c.SaveSuccessfulMinidumpsTo = file
	c.SaveFailedMinidumpsTo = ""
	c.LogFilePathname = filepath.Join(dir, "logs", "monitor.log")
	got := c.Warnings()
	want := []string{
		"deferredStorageRoot: directory " + filepath.Join(dir, "missing") + " does not exist (yet)",
		"saveSuccessfulMinidumpsTo: " + file + " is not a directory",
		"logFilePathname: directory " + filepath.Join(dir, "logs") + " does not exist (yet)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Warnings() =\n%q\nwant\n%q", got, want)
	}
}

func TestDiff(t *testing.T) {
	t.Parallel()
	a := defaults("/srv")
	b := defaults("/srv")
	if hot, restart := Diff(a, b); hot != nil || restart != nil {
		t.Errorf("Diff(same) = %v, %v", hot, restart)
	}
	b.StandardLoopDelay = time.Minute
	b.StderrErrorLoggingLevel = 10
	b.DatabasePassword = "new" // masked in Settings, but still a change
	b.StorageRoot = "/other"
	b.DumpGID = 5
	hot, restart := Diff(a, b)
	if want := []string{"standardLoopDelay", "stderrErrorLoggingLevel"}; !slices.Equal(hot, want) {
		t.Errorf("hot = %v, want %v", hot, want)
	}
	if want := []string{"databasePassword", "dumpGID", "storageRoot"}; !slices.Equal(restart, want) {
		t.Errorf("restart = %v, want %v", restart, want)
	}
	hot, restart = Diff(nil, a)
	if len(hot)+len(restart) != len(keys) || len(hot) != 13 {
		t.Errorf("Diff(nil, a) = %v, %v; want every key, 13 hot", hot, restart)
	}
}

// TestReload checks Reload applies exactly the keys Diff calls hot: the
// applied config differs from the running one in hot keys only, and from
// the new one in restart keys only.
func TestReload(t *testing.T) {
	t.Parallel()
	running := defaults("/srv")
	next := defaults("/other")
	next.ProcessorCheckInTime = time.Minute
	next.StandardLoopDelay = 2 * time.Minute
	next.PriorityLoopDelay = 3 * time.Minute
	next.CleanupJobsLoopDelay = 4 * time.Minute
	next.LogFileErrorLoggingLevel = 30
	next.StderrErrorLoggingLevel = 10
	next.DatabaseName = "elsewhere"
	next.DumpPermissions = 0o600

	applied, hot, restart := Reload(running, next)
	if h, r := Diff(running, applied); !slices.Equal(h, hot) || r != nil {
		t.Errorf("Diff(running, applied) = %v, %v; want %v, none", h, r, hot)
	}
	if h, r := Diff(applied, next); h != nil || !slices.Equal(r, restart) {
		t.Errorf("Diff(applied, next) = %v, %v; want none, %v", h, r, restart)
	}
	if len(hot) != 6 || len(restart) != 3 {
		t.Errorf("Reload hot = %v, restart = %v; want 6 hot, 3 restart", hot, restart)
	}
	if running.StandardLoopDelay != 5*time.Minute {
		t.Error("Reload changed the running config")
	}
}

func TestKeyError(t *testing.T) {
	t.Parallel()
	inner := errors.New("is not a duration")
	e := &KeyError{Key: "standardLoopDelay", Value: "soon", Err: inner}
	if got, want := e.Error(), `standardLoopDelay: "soon" is not a duration`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(e, inner) {
		t.Errorf("KeyError does not unwrap")
	}
	if got := (&KeyError{Key: "storageRoot", Err: errors.New("required")}).Error(); got != "storageRoot: required" {
		t.Errorf("Error() = %q", got)
	}
}

func TestDistFile(t *testing.T) {
	const dist = "monitorconfig.yaml.dist"
	c := mustLoad(t, dist) // not parallel: an env override would spoil the comparison

	data, err := os.ReadFile(dist)
	if err != nil {
		t.Fatal(err)
	}
	var inFile map[string]any
	if err := yaml.Unmarshal(data, &inFile); err != nil {
		t.Fatal(err)
	}
	want := defaults(c.StorageRoot).Settings()
	got := c.Settings()
	for i, k := range keyNames() {
		if _, ok := inFile[k.name]; !ok {
			t.Errorf("%s lacks %s", dist, k.name)
		}
		if k.name != "storageRoot" && got[i] != want[i] {
			t.Errorf("%s: %s = %q, want the default %q", dist, k.name, got[i].Value, want[i].Value)
		}
	}
	if len(inFile) != len(keys) {
		t.Errorf("%s has %d keys, want %d", dist, len(inFile), len(keys))
	}
	lines := strings.Split(string(data), "\n")
	for i, line := range lines {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i == 0 || !strings.HasPrefix(lines[i-1], "# ") {
			t.Errorf("%s: %q has no comment line above it", dist, line)
		}
	}
}
