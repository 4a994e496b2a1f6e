package crashstore

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRoots runs the life of an entry under roots given as the operator may
// write them: relative (as the classic monitor allowed), with trailing
// slashes, through a symlink. Not parallel: it changes the working directory.
func TestRoots(t *testing.T) {
	tests := []struct {
		name string
		root func(dir string) string // called in dir, the working directory
	}{
		{"Dot", func(string) string { return "." }},
		{"Relative", func(string) string { return "store/" }},
		{"DotDot", func(dir string) string { return "../" + filepath.Base(dir) + "/store" }},
		{"AbsoluteSlashes", func(dir string) string { return dir + "//store//" }},
		{"Symlink", func(dir string) string {
			mustMkdir(t, dir+"/real")
			if err := os.Symlink("real", dir+"/link"); err != nil {
				t.Fatal(err)
			}
			return "link/"
		}},
	}
	for _, tt := range tests {
		for _, layout := range []Layout{LayoutDaily, LayoutFlat} {
			t.Run(tt.name+"/"+string(layout), func(t *testing.T) {
				dir := t.TempDir()
				t.Chdir(dir)
				now := testNow
				var problems []string
				s := New(tt.root(dir), Options{
					Layout:  layout,
					Now:     func() time.Time { return now },
					Problem: func(p string, err error) { problems = append(problems, p+": "+err.Error()) },
				})
				e, err := s.NewEntry(workedID, "web1", testNow.Add(-time.Hour), []byte("d"), []byte("j"))
				if err != nil {
					t.Fatal(err)
				}
				if got := walkAll(t, s); len(got) != 1 || got[0] != e {
					t.Fatalf("Walk = %+v, want %+v", got, e)
				}
				if got, err := s.EntryAt(e.DateLink); err != nil || got != e {
					t.Errorf("EntryAt = %+v, %v", got, err)
				}
				if got, err := s.Lookup(t.Context(), workedID); err != nil || got != e {
					t.Errorf("Lookup = %+v, %v", got, err)
				}
				if k, ok := s.DirKind(s.Root()); k != KindRoot || !ok {
					t.Errorf("DirKind(root) = %v, %v", k, ok)
				}
				settle(t, e)
				if ok, err := s.Complete(e, time.Second); !ok || err != nil {
					t.Errorf("Complete = %v, %v", ok, err)
				}
				if err := s.RemoveLinks(e); err != nil {
					t.Fatal(err)
				}
				if n, err := s.PruneDateDirs(t.Context()); n == 0 || err != nil {
					t.Errorf("PruneDateDirs = %d, %v", n, err)
				}
				if err := s.RemovePair(e); err != nil {
					t.Fatal(err)
				}
				if exists(t, e.JSONPath) || exists(t, e.NameDir) {
					t.Error("RemovePair left the pair")
				}
				if len(problems) != 0 {
					t.Errorf("problems: %q", problems)
				}
			})
		}
	}
}
