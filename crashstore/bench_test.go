package crashstore

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// BenchmarkWalk walks a daily tree of 10,000 inbox links (10 minutes, 2
// webheads, 500 links a webhead directory). The links are made directly: a
// walk reads them and never touches the pairs.
func BenchmarkWalk(b *testing.B) {
	const minutes, webheads, perLeaf = 10, 2, 500
	st := New(b.TempDir(), Options{})
	for m := range minutes {
		for w := range webheads {
			leaf := fmt.Sprintf("%s/20090928/date/12/%02d/web%d_0", st.Root(), m, w)
			if err := os.MkdirAll(leaf, 0o755); err != nil {
				b.Fatal(err)
			}
			for i := range perLeaf {
				id := fmt.Sprintf("%08x-0000-4000-8000-%012d", m*webheads+w, i)
				if err := os.Symlink("../../../../name/"+id[:2]+"/"+id[2:4], leaf+"/"+id); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	n := 0
	for b.Loop() {
		if err := st.Walk(b.Context(), func(Entry) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	if n != minutes*webheads*perLeaf*b.N {
		b.Fatalf("walked %d entries in %d walks", n, b.N)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkComplete checks one settled pair: two stats.
func BenchmarkComplete(b *testing.B) {
	st := New(b.TempDir(), Options{Now: func() time.Time { return testNow }})
	e, err := st.NewEntry(workedID, "web1", testNow, []byte("d"), []byte("j"))
	if err != nil {
		b.Fatal(err)
	}
	settle(b, e)
	for b.Loop() {
		if ok, err := st.Complete(e, time.Second); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkArchivePair looks up and archives one pair per op within one
// file system (two renames), as the cleanup loop does for each finished job,
// on one goroutine. The pairs are spread over the name branch like real ids.
func BenchmarkArchivePair(b *testing.B) {
	for _, copyOnly := range []bool{false, true} {
		name := "rename"
		if copyOnly {
			name = "copy"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				dir := b.TempDir()
				src := New(dir+"/src", Options{Now: func() time.Time { return testNow }})
				archive := New(dir+"/archive", Options{AlwaysCopy: copyOnly})
				const n = 5000
				ids := make([]string, n)
				for i := range ids {
					ids[i] = fmt.Sprintf("%08x-0000-4000-8000-000002090928", uint32(i)*2654435761)
					e, err := src.NewEntry(ids[i], "web1", testNow, []byte("dump"), []byte("{}"))
					if err != nil {
						b.Fatal(err)
					}
					if err := src.RemoveLinks(e); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				for _, id := range ids {
					e, err := src.Lookup(b.Context(), id)
					if err != nil {
						b.Fatal(err)
					}
					if res, err := src.ArchivePair(b.Context(), e, archive); err != nil || !res.Complete() {
						b.Fatal(res, err)
					}
				}
			}
			b.ReportMetric(float64(5000*b.N)/b.Elapsed().Seconds(), "pairs/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
