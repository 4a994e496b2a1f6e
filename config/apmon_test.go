package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/apmon"
)

// TestApMonDestinationsForms: the list key takes a YAML sequence and the
// one comma-separated string (the environment's form), with the same result.
func TestApMonDestinationsForms(t *testing.T) {
	want := []apmon.Destination{
		{Host: "ml1.example.org", Port: 8884},
		{Host: "ml2.example.org", Port: 9000, Password: "s3cret"},
		{Host: "::1", Port: 8884},
		{URL: "http://conf.example.org/apmon/destinations.conf"},
	}
	dir := t.TempDir()
	list := writeFile(t, dir, "list.yaml", `storageRoot: /srv
apmonDestinations:
  - ml1.example.org
  - "ml2.example.org:9000   s3cret"
  - "[::1]"
  - http://conf.example.org/apmon/destinations.conf
`)
	if got := mustLoad(t, list).ApMonDestinations; !reflect.DeepEqual(got, want) {
		t.Errorf("YAML list: got %+v\nwant %+v", got, want)
	}
	str := writeFile(t, dir, "string.yaml", "storageRoot: /srv\napmonDestinations: \"ml1.example.org, ml2.example.org:9000 s3cret,[::1] , http://conf.example.org/apmon/destinations.conf\"\n")
	if got := mustLoad(t, str).ApMonDestinations; !reflect.DeepEqual(got, want) {
		t.Errorf("comma-separated string: got %+v\nwant %+v", got, want)
	}
	empty := writeFile(t, dir, "empty.yaml", "storageRoot: /srv\napmonDestinations: []\n")
	if got := mustLoad(t, empty).ApMonDestinations; got != nil {
		t.Errorf("an empty list: got %+v, want none", got)
	}
	t.Setenv(EnvPrefix+"APMONDESTINATIONS", "ml1.example.org,ml2.example.org:9000 s3cret,[::1],http://conf.example.org/apmon/destinations.conf")
	if got := mustLoad(t, empty).ApMonDestinations; !reflect.DeepEqual(got, want) {
		t.Errorf("environment over the file's list: got %+v\nwant %+v", got, want)
	}
	t.Setenv(EnvPrefix+"APMONDESTINATIONS", "")
	if got := mustLoad(t, list).ApMonDestinations; got != nil {
		t.Errorf("an empty environment variable: got %+v, want none", got)
	}
}

// TestApMonDestinationsBad: a malformed destination is a configuration
// error naming the key and the entry, never its password; a list stays
// refused for the other keys, and the items must be scalars.
func TestApMonDestinationsBad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, want string
	}{
		{"BadPort", "apmonDestinations: [\"ml.example.org:88x4 hunter2\"]", `apmonDestinations: entry "ml.example.org:88x4 **********" has a bad port "88x4"`},
		{"PortRange", "apmonDestinations: [\"ml.example.org:70000\"]", `entry "ml.example.org:70000" has a bad port`},
		{"SpaceInPassword", "apmonDestinations: [\"ml.example.org pass word\"]", `entry "ml.example.org **********" has more than host[:port] and a password`},
		{"NoHost", "apmonDestinations: \":8884\"", `entry ":8884" is not host[:port] [password]: bad host`},
		{"BadURL", "apmonDestinations: [\"http://\"]", `entry "http://" is not a usable http(s) URL`},
		{"Nested", "apmonDestinations:\n  - {host: x}\n", "apmonDestinations: on line 3 has an item that is not a plain scalar"},
		{"ListForScalar", "apmonClusterName: [a, b]\n", "apmonClusterName: on line 2 is a list"},
		{"EmptyCluster", "apmonClusterName: \"\"\n", "apmonClusterName: must not be empty"},
		{"LongNode", "apmonNodeName: " + strings.Repeat("n", 256) + "\n", "apmonNodeName: \"nnn"},
		{"Rate", "apmonMaxMsgRate: 0\n", "apmonMaxMsgRate: \"0\" must be at least 1"},
		{"Interval", "apmonInterval: \"0\"\n", "apmonInterval: \"0\" must be greater than zero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, t.TempDir(), "bad.yaml", "storageRoot: /srv\n"+tt.yaml)
			_, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error = %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// TestApMonSettings: check-config prints the destinations in their normal
// form with every password masked, the node name as the host's name.
func TestApMonSettings(t *testing.T) {
	t.Parallel()
	path := writeFile(t, t.TempDir(), "c.yaml", `storageRoot: /srv
apmonDestinations:
  - "ml1.example.org hunter2"
  - ml2.example.org:9000
  - https://user:hunter2@conf.example.org/apmon.conf
apmonInterval: 90s
`)
	got := map[string]string{}
	for _, s := range mustLoad(t, path).Settings() {
		got[s.Key] = s.Value
	}
	want := map[string]string{
		"apmonDestinations": "ml1.example.org:8884 **********, ml2.example.org:9000, https://user:**********@conf.example.org/apmon.conf",
		"apmonClusterName":  "Socorro_Monitor",
		"apmonNodeName":     hostname(),
		"apmonInterval":     "00:01:30",
		"apmonMaxMsgRate":   "20",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for k, v := range got {
		if strings.Contains(v, "hunter2") {
			t.Errorf("%s shows a password: %q", k, v)
		}
	}
}

// TestApMonKeysAreHot: destinations, names, interval and rate change
// without a restart.
func TestApMonKeysAreHot(t *testing.T) {
	t.Parallel()
	running := defaults("/srv")
	next := defaults("/srv")
	next.ApMonDestinations = []apmon.Destination{{Host: "ml.example.org", Port: 8884, Password: "new"}}
	next.ApMonClusterName = "Other"
	next.ApMonNodeName = "node-2"
	next.ApMonInterval = time.Second
	next.ApMonMaxMsgRate = 5
	applied, hot, restart := Reload(running, next)
	want := []string{"apmonClusterName", "apmonDestinations", "apmonInterval", "apmonMaxMsgRate", "apmonNodeName"}
	if !slices.Equal(hot, want) || restart != nil {
		t.Errorf("Reload hot = %v, restart = %v; want %v, none", hot, restart, want)
	}
	if !reflect.DeepEqual(applied, next) {
		t.Errorf("applied %+v\nwant %+v", applied, next)
	}
}
