// Package crashfixture reads the classic Socorro storage fixtures of
// testdata/crashes/classic.txt, for the tests of the packages that put them
// into a tree (crashstore, scanner, ...).
package crashfixture

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Fixture is one crash of the classic fixtures: a line of classic.txt.
type Fixture struct {
	Set      string    // jsonFileData, jsonMoreData or jsonTooMany
	ID       string    // the crash id
	At       time.Time // submission time, UTC
	Webhead  string    // the collector that took it
	Radix    string    // the classic name-branch directories, e.g. 0b/ba/61/c5
	FlatSlot string    // the classic flat-layout date slot, e.g. 2007/10/25/05/00
}

// Classic returns the fixtures of the named set ("" for all) in file order,
// failing t when the file cannot be read or the set is empty.
func Classic(t testing.TB, set string) []Fixture {
	t.Helper()
	f, err := os.Open(path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Fixture
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) != 6 {
			t.Fatalf("classic.txt: bad line %q", line)
		}
		at, err := time.Parse("2006-01-02-15-04", fs[2])
		if err != nil {
			t.Fatalf("classic.txt: %v", err)
		}
		if set == "" || fs[0] == set {
			out = append(out, Fixture{Set: fs[0], ID: fs[1], At: at, Webhead: fs[3], Radix: fs[4], FlatSlot: fs[5]})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("classic.txt: no fixtures in set %q", set)
	}
	return out
}

// path is testdata/crashes/classic.txt at the module root, found from this
// source file so that any package's tests can read it.
func path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "crashes", "classic.txt")
}
