package cleanup

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/crashmonitor/monitor/crashstore"
)

// BenchmarkCleanup measures cleanup passes over n finished jobs whose pairs
// are archived within one file system (renames), with AlwaysCopy on the same
// disk (the copy path, fsyncs included), and into /dev/shm (a real
// cross-file-system archive): finding each pair, archiving it, pruning its
// emptied directories, deleting the rows in batches. It reports pairs/s. The pairs are spread over the name branch like real ids, so
// nearly every pair makes a new directory in the archive and empties one in
// the source: the worst case.
func BenchmarkCleanup(b *testing.B) {
	for _, tc := range []struct {
		n       int
		perDir  int    // pairs sharing a name directory
		path    string // rename, copy (AlwaysCopy), cross (archive in /dev/shm)
		workers int
	}{
		{20000, 1, "rename", 0},
		{20000, 16, "rename", 0},
		{100000, 16, "rename", 0},
		{20000, 16, "rename", 1},
		{20000, 16, "rename", 8},
		{20000, 16, "copy", 0},
		{20000, 16, "cross", 0},
	} {
		path := tc.path
		name := fmt.Sprintf("%s/%dk/perdir=%d/workers=%d", path, tc.n/1000, tc.perDir, tc.workers)
		b.Run(name, func(b *testing.B) {
			pairs := 0
			for range b.N {
				b.StopTimer()
				o := options{archive: crashstore.Options{AlwaysCopy: path == "copy"}}
				if path == "cross" {
					if o.archiveDir = otherFileSystem(b); o.archiveDir == "" {
						b.Skip("/dev/shm is not another file system here")
					}
				}
				bd := setup(b, o)
				if tc.workers > 0 {
					bd.cleaner.cfg.Workers = tc.workers
				}
				ids := make([]string, tc.n)
				for i := range ids {
					ids[i] = clusteredID(i, tc.perDir)
				}
				writePairs(b, bd.std, ids)
				finish(b, bd.pool, true, ids...)
				b.StartTimer()
				res, err := bd.cleaner.RunOnce(b.Context())
				if err != nil {
					b.Fatal(err)
				}
				if res.Archived != tc.n || res.Rows != int64(tc.n) {
					b.Fatalf("pass = %+v, want %d archived", res, tc.n)
				}
				pairs += res.Archived
			}
			b.ReportMetric(float64(pairs)/b.Elapsed().Seconds(), "pairs/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// clusteredID is crashID with perDir consecutive ids sharing their name
// directory (the first four characters, at depth 2), as on a busy day.
func clusteredID(i, perDir int) string {
	id := crashID(i, testDay)
	return crashID(i/perDir, testDay)[:4] + id[4:]
}

// writePairs writes the pairs of ids straight into their name directories
// (no links: the scanner removed them), on a few goroutines.
func writePairs(b *testing.B, tree *crashstore.Store, ids []string) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(ids); i += 4 {
				id := ids[i]
				dir := filepath.Join(tree.Root(), testDay.Format("20060102"), "name", radix(id))
				if err := os.MkdirAll(dir, 0o755); err != nil {
					errs <- err
					return
				}
				dump, json := pairData(id)
				if err := os.WriteFile(filepath.Join(dir, id+".dump"), dump, 0o660); err != nil {
					errs <- err
					return
				}
				if err := os.WriteFile(filepath.Join(dir, id+".json"), json, 0o660); err != nil {
					errs <- err
					return
				}
				// Collectors give their files the exact mode, whatever the umask.
				for _, p := range []string{id + ".dump", id + ".json"} {
					if err := os.Chmod(filepath.Join(dir, p), crashstore.DefaultFilePerm); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
