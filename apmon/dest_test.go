package apmon

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseDestination(t *testing.T) {
	t.Parallel()
	good := []struct {
		in     string
		want   Destination
		normal string
	}{
		{"ml.example.org", Destination{Host: "ml.example.org", Port: 8884}, "ml.example.org:8884"},
		{"ml.example.org:9000", Destination{Host: "ml.example.org", Port: 9000}, "ml.example.org:9000"},
		{" 10.0.0.1:9000\t s3cret ", Destination{Host: "10.0.0.1", Port: 9000, Password: "s3cret"}, "10.0.0.1:9000 s3cret"},
		{"ml.example.org s3cret", Destination{Host: "ml.example.org", Port: 8884, Password: "s3cret"}, "ml.example.org:8884 s3cret"},
		{"[::1]:9000 pw", Destination{Host: "::1", Port: 9000, Password: "pw"}, "[::1]:9000 pw"},
		{"[fe80::1]", Destination{Host: "fe80::1", Port: 8884}, "[fe80::1]:8884"},
		{"http://conf.example.org/apmon.conf", Destination{URL: "http://conf.example.org/apmon.conf"}, "http://conf.example.org/apmon.conf"},
		{"HTTPS://conf.example.org:8443/x?y=z", Destination{URL: "HTTPS://conf.example.org:8443/x?y=z"}, "HTTPS://conf.example.org:8443/x?y=z"},
	}
	for _, tc := range good {
		got, err := ParseDestination(tc.in)
		if err != nil || got != tc.want || got.String() != tc.normal {
			t.Errorf("ParseDestination(%q) = %+v (%q), %v; want %+v (%q)", tc.in, got, got.String(), err, tc.want, tc.normal)
		}
	}
	bad := map[string]string{
		"":                         "is empty",
		"   ":                      "is empty",
		"ml.example.org:":          "bad port",
		"ml.example.org:0":         "bad port",
		"ml.example.org:+80":       "bad port",
		"ml.example.org:65536":     "bad port",
		"ml.example.org:80:90":     "bad port",
		":8884":                    "bad host",
		"a/b:8884":                 "bad host",
		"ml.example.org pass word": "more than host[:port] and a password",
		"ml.example.org pa,ss":     "comma in its password",
		"ml.example.org " + strings.Repeat("p", 256): "password longer than 255 bytes",
		"[::1:9000":   "malformed [IPv6 address]:port",
		"http://":     "not a usable http(s) URL",
		"http://a b/": "not a usable http(s) URL",
	}
	for in, want := range bad {
		if _, err := ParseDestination(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseDestination(%q) error = %v, want %q", in, err, want)
		}
	}
}

func TestMasked(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"ml.example.org:9000 s3cret":         "ml.example.org:9000 **********",
		"ml.example.org":                     "ml.example.org:8884",
		"https://bob:s3cret@conf.example/x":  "https://bob:**********@conf.example/x",
		"https://bob@conf.example/x":         "https://bob@conf.example/x",
		"http://conf.example/x?password=abc": "http://conf.example/x?password=abc",
	} {
		d, err := ParseDestination(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Masked(); got != want {
			t.Errorf("Masked(%q) = %q, want %q", in, got, want)
		}
	}
	if got, want := MaskList("a:1 pw, b:2,https://u:p@c/x"), "a:1 **********, b:2, https://u:**********@c/x"; got != want {
		t.Errorf("MaskList = %q, want %q", got, want)
	}
	if got := MaskList(""); got != "" {
		t.Errorf("MaskList(\"\") = %q", got)
	}
}

func TestParsePage(t *testing.T) {
	t.Parallel()
	page := `# ApMon destinations for the crash monitors
ml1.example.org:8884 s3cret

  ml2.example.org
xApMon_job_monitoring = off
xApMon_loglevel = FINE
# http://commented.example.org
http://nested.example.org/apmon.conf
ml3.example.org:port hunter2
`
	dests, bad, err := ParsePage(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	want := []Destination{{Host: "ml1.example.org", Port: 8884, Password: "s3cret"}, {Host: "ml2.example.org", Port: 8884}}
	if !reflect.DeepEqual(dests, want) {
		t.Errorf("destinations %+v, want %+v", dests, want)
	}
	wantBad := []string{"http://nested.example.org/apmon.conf", "ml3.example.org:port **********"}
	if !reflect.DeepEqual(bad, wantBad) {
		t.Errorf("bad lines %q, want %q", bad, wantBad)
	}
}
