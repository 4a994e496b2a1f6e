package faultsuite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/procsim"
)

// checkInput is what the invariant checker looks at.
type checkInput struct {
	reg                *registry
	done               *processings
	pool               *pgxpool.Pool
	standard, deferred *crashstore.Store
	// successful and failed are the archives; failed is nil when failed
	// crashes are deleted (saveFailedMinidumpsTo empty).
	successful, failed *crashstore.Store
	seed               uint64
	failRatio          float64
}

// checkResult is what the checker found, for the summary.
type checkResult struct {
	checked                 int // crashes written and checked
	processed               int // of which processed (queued, finished, cleaned up once)
	archivedOK, archivedBad int // in the successful and failed archives
	deletedBad              int // failed crashes deleted as configured
	incompleteLeft          int // incomplete pairs left in the inbox, as they must be
	deferredLeft            int // deferred crashes nobody asked for, left in place
	ghosts                  int // requested crashes that never existed: nowhere
	unacknowledged          int // finishes committed whose answer the processor lost
	problems                []string
}

// maxProblems bounds the problems printed: a systemic failure would
// otherwise print one per crash.
const maxProblems = 40

// problemf records a broken invariant.
func (r *checkResult) problemf(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// checkInvariants proves that every crash written is in exactly one right
// place, after the monitors and processors stopped:
//
//   - a complete standard pair, or a deferred one a user asked for, was
//     queued once, finished once and cleaned up once (its row gone), with the
//     verdict procsim gives it; it is in the archive of that verdict (or
//     deleted, when failures are not archived), byte for byte, both files and
//     nothing else, and nothing of it is left in the trees; the processors
//     saw it finished at most once;
//   - a pair its collector never finished is still in the inbox, untouched,
//     and was never queued; so is a deferred crash nobody asked for, in the
//     deferred tree;
//   - a crash that never existed was never queued;
//   - no jobs row, no priority request is left; the trees hold nothing else
//     and the archives no other file (no temporary file, no half pair).
func checkInvariants(t *testing.T, in checkInput) checkResult {
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	var res checkResult
	ledger, err := readLedger(ctx, in.pool)
	if err != nil {
		t.Fatalf("read the ledger: %v", err)
	}
	var jobs, requests int
	if err := in.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM priorityjobs)`).Scan(&jobs, &requests); err != nil {
		t.Fatal(err)
	}
	if jobs != 0 {
		res.problemf("%d jobs rows left", jobs)
	}
	if requests != 0 {
		res.problemf("%d priority requests left", requests)
	}

	// Every file and link of each tree, by crash id.
	trees := map[string]map[string][]string{}
	for _, s := range []*crashstore.Store{in.standard, in.deferred, in.successful, in.failed} {
		if s != nil {
			trees[s.Root()] = entries(t, s.Root(), &res)
		}
	}
	// expect removes what a crash must have from a tree's entries, so that
	// what remains at the end is what nobody should have left there.
	expect := func(s *crashstore.Store, id string, paths ...string) {
		got := trees[s.Root()][id]
		for _, p := range paths {
			if i := slices.Index(got, p); i >= 0 {
				got = slices.Delete(got, i, i+1)
			} else {
				res.problemf("%s: %s is missing", id, p)
			}
		}
		trees[s.Root()][id] = got
	}

	crashes := in.reg.all()
	slices.SortFunc(crashes, func(a, b *crash) int { return strings.Compare(a.id, b.id) })
	for _, c := range crashes {
		res.checked++
		l := ledger[c.id]
		delete(ledger, c.id)
		if l == nil {
			l = &ledgerEntry{}
		}
		tree := in.standard
		if c.kind == kindDeferred {
			tree = in.deferred
		}
		if !c.processed() {
			if l.queued != 0 || l.finished != 0 {
				res.problemf("%s (%s) was queued %d times, processed %d times; want never", c.id, c.describe(), l.queued, l.finished)
			}
			paths := []string{c.entry.NameLink, c.entry.DateLink, c.entry.DumpPath}
			if c.kind == kindDeferred {
				paths = append(paths, c.entry.JSONPath)
				res.deferredLeft++
			} else {
				res.incompleteLeft++
			}
			expect(tree, c.id, paths...)
			checkBytes(&res, c.id, c.entry, c.kind == kindDeferred)
			continue
		}

		res.processed++
		if l.queued != 1 || l.finished != 1 || l.deleted != 1 || l.unfinished != 0 {
			res.problemf("%s (%s): queued %d times, finished %d, made unfinished %d, cleaned up %d; want once each and never unfinished",
				c.id, c.describe(), l.queued, l.finished, l.unfinished, l.deleted)
		}
		switch n := in.done.count(c.id); {
		case n > 1:
			res.problemf("%s (%s): processed %d times by the processors", c.id, c.describe(), n)
		case n == 0 && l.finished == 1:
			res.unacknowledged++
		}
		want := !procsim.Fails(c.id, in.seed, in.failRatio)
		if l.finished > 0 && l.success != want {
			res.problemf("%s (%s): verdict %v (%q), want %v", c.id, c.describe(), l.success, l.message, want)
		}
		archive := in.successful
		if !want {
			archive = in.failed
		}
		if archive == nil {
			res.deletedBad++
			continue
		}
		e, err := archive.Lookup(ctx, c.id)
		if err != nil {
			res.problemf("%s (%s): not in %s: %v", c.id, c.describe(), archive.Root(), err)
			continue
		}
		if want {
			res.archivedOK++
		} else {
			res.archivedBad++
		}
		expect(archive, c.id, e.DumpPath, e.JSONPath)
		checkBytes(&res, c.id, e, true)
	}

	for id := range in.reg.ghosts {
		res.ghosts++
		if l := ledger[id]; l != nil {
			res.problemf("%s, a crash that never existed, was queued %d times", id, l.queued)
		}
		delete(ledger, id)
	}
	for id, l := range ledger {
		res.problemf("%s, which nobody wrote, was queued %d times", id, l.queued)
	}
	for root, byID := range trees {
		for id, paths := range byID {
			for _, p := range paths {
				res.problemf("%s left in %s: %s", id, root, p)
			}
		}
	}
	return res
}

// describe says what kind of crash c is, for messages.
func (c *crash) describe() string {
	switch {
	case c.kind == kindIncomplete:
		return "incomplete"
	case c.kind == kindDeferred && c.requested:
		return "deferred, requested"
	case c.kind == kindDeferred:
		return "deferred"
	}
	return "standard"
}

// checkBytes compares the dump (and the json, when withJSON) at e with what
// the collector wrote.
func checkBytes(res *checkResult, id string, e crashstore.Entry, withJSON bool) {
	files := []struct {
		path string
		want []byte
	}{{e.DumpPath, dumpOf(id)}}
	if withJSON {
		files = append(files, struct {
			path string
			want []byte
		}{e.JSONPath, jsonOf(id)})
	}
	for _, f := range files {
		got, err := os.ReadFile(f.path)
		switch {
		case err != nil:
			res.problemf("%s: %v", id, err)
		case !bytes.Equal(got, f.want):
			res.problemf("%s: %s differs from what the collector wrote (%d bytes, want %d)", id, f.path, len(got), len(f.want))
		}
	}
}

// entries returns every file and symbolic link under root by the crash id
// its name carries (the name itself for anything else, such as a temporary
// file).
func entries(t *testing.T, root string, res *checkResult) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		name := d.Name()
		id := strings.TrimSuffix(strings.TrimSuffix(name, ".json"), ".dump")
		if !crashstore.ValidID(id) {
			res.problemf("not a crash's file in %s: %s", root, p)
			return nil
		}
		out[id] = append(out[id], p)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}
