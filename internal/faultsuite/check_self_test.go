package faultsuite

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/procsim"
	"github.com/crashmonitor/monitor/internal/testkit"
)

// checkerFixture is a small world whose pipeline is played by hand: the
// jobs rows and the archiving done as the monitor and the processors do
// them, so that the checker can be shown a clean outcome and then broken
// ones.
type checkerFixture struct {
	t      *testing.T
	pool   *pgxpool.Pool
	w      *world
	ok, ko *crashstore.Store // the archives
	done   *processings
	rng    *rand.Rand
	seed   uint64
}

func newCheckerFixture(t *testing.T) *checkerFixture {
	t.Helper()
	pool := pgtest.Schema(t)
	installLedger(t, pool)
	dir := t.TempDir()
	store := func(name string) *crashstore.Store {
		return crashstore.New(filepath.Join(dir, name), crashstore.Options{GID: -1})
	}
	return &checkerFixture{
		t: t, pool: pool, ok: store("successful"), ko: store("failed"), done: newProcessings(),
		w:   &world{t: t, standard: store("toBeProcessed"), deferred: store("toBeDeferred"), pool: pool, reg: newRegistry()},
		rng: rand.New(rand.NewPCG(1, 2)), seed: 9,
	}
}

// write writes a crash of kind and returns its id.
func (f *checkerFixture) write(kind crashKind) string {
	id := f.w.newID(f.rng)
	s := f.w.standard
	if kind == kindDeferred {
		s = f.w.deferred
	}
	f.w.write(s, kind, id, 0)
	return id
}

// process plays the pipeline for id: queued, finished with verdict ok,
// archived by it, its row deleted.
func (f *checkerFixture) process(id string, ok bool) {
	t := f.t
	t.Helper()
	c := f.w.reg.byID[id]
	src := f.w.standard
	if c.kind == kindDeferred {
		src = f.w.deferred
	}
	state := testkit.Succeeded
	archive := f.ok
	if !ok {
		state, archive = testkit.Failed, f.ko
	}
	testkit.Jobs(t, f.pool, state, 0, id)
	f.done.record(procsim.JobResult{UUID: id, Success: ok})
	if _, err := src.ArchivePair(t.Context(), c.entry, archive); err != nil {
		t.Fatal(err)
	}
	testkit.Exec(t, f.pool, `DELETE FROM jobs WHERE uuid = $1`, id)
}

// processRight processes id with the verdict procsim gives it.
func (f *checkerFixture) processRight(id string) {
	f.process(id, !procsim.Fails(id, f.seed, failRatio))
}

// check runs the checker.
func (f *checkerFixture) check() checkResult {
	return checkInvariants(f.t, checkInput{
		reg: f.w.reg, done: f.done, pool: f.pool, standard: f.w.standard, deferred: f.w.deferred,
		successful: f.ok, failed: f.ko, seed: f.seed, failRatio: failRatio,
	})
}

// TestChecker: the invariant checker passes a clean outcome, and finds each
// kind of broken invariant it is there for (a checker that never complains
// proves nothing).
func TestChecker(t *testing.T) {
	t.Parallel()
	f := newCheckerFixture(t)
	var standard []string
	for range 14 {
		id := f.write(kindStandard)
		f.processRight(id)
		standard = append(standard, id)
	}
	asked := f.write(kindDeferred)
	f.w.ask(asked, "deferred")
	f.processRight(asked)
	testkit.Exec(t, f.pool, `DELETE FROM priorityjobs`) // resolved
	incomplete := f.write(kindIncomplete)
	untouched := f.write(kindDeferred)
	ghost := f.w.newID(f.rng)
	f.w.reg.ghosts[ghost] = true

	res := f.check()
	if len(res.problems) != 0 || res.processed != 15 || res.incompleteLeft != 1 || res.deferredLeft != 1 || res.ghosts != 1 {
		t.Fatalf("a clean outcome: %+v", res)
	}

	// Now break one invariant per crash.
	want := map[string]string{}
	twice := standard[0] // queued again after its cleanup, and processed again
	testkit.Jobs(t, f.pool, testkit.Succeeded, 0, twice)
	testkit.Exec(t, f.pool, `DELETE FROM jobs WHERE uuid = $1`, twice)
	want["queued twice"] = twice + " (standard): queued 2 times, finished 2"

	seenTwice := standard[1] // the processors saw it finished twice
	f.done.record(procsim.JobResult{UUID: seenTwice})
	want["processed twice"] = seenTwice + " (standard): processed 2 times by the processors"

	wrongVerdict := f.write(kindStandard)
	f.process(wrongVerdict, procsim.Fails(wrongVerdict, f.seed, failRatio))
	want["wrong verdict"] = wrongVerdict + " (standard): verdict"
	want["in the wrong archive"] = wrongVerdict + " (standard): not in"

	halfPair := standard[2] // its json lost from the archive
	e, err := archiveOf(f, halfPair).Lookup(t.Context(), halfPair)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(e.JSONPath); err != nil {
		t.Fatal(err)
	}
	want["half a pair"] = halfPair + ": " + e.JSONPath + " is missing"

	changed := standard[3] // its dump changed on the way
	e, err = archiveOf(f, changed).Lookup(t.Context(), changed)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.DumpPath, []byte("not the dump"), 0o600); err != nil {
		t.Fatal(err)
	}
	want["bytes changed"] = changed + ": " + e.DumpPath + " differs"

	if err := os.Remove(f.w.reg.byID[incomplete].entry.DateLink); err != nil { // its inbox link gone
		t.Fatal(err)
	}
	want["incomplete pair taken from the inbox"] = incomplete + ": " + f.w.reg.byID[incomplete].entry.DateLink + " is missing"

	testkit.Jobs(t, f.pool, testkit.Queued, 0, untouched) // queued though nobody asked
	want["deferred crash queued unasked"] = untouched + " (deferred) was queued 1 times"
	want["a job left"] = "1 jobs rows left"

	testkit.Jobs(t, f.pool, testkit.Succeeded, 0, ghost)
	testkit.Exec(t, f.pool, `DELETE FROM jobs WHERE uuid = $1`, ghost)
	want["ghost queued"] = ghost + ", a crash that never existed, was queued 1 times"

	testkit.Exec(t, f.pool, `INSERT INTO priorityjobs (uuid) VALUES ('left')`)
	want["a request left"] = "1 priority requests left"

	leftover := standard[4] // processed, but its name link left behind
	link := f.w.reg.byID[leftover].entry.NameLink
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", link); err != nil {
		t.Fatal(err)
	}
	want["a link left"] = leftover + " left in " + f.w.standard.Root() + ": " + link

	tmp := filepath.Join(f.ok.Root(), ".tmp-file")
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	want["a stray file"] = "not a crash's file in " + f.ok.Root() + ": " + tmp

	res = f.check()
	all := strings.Join(res.problems, "\n")
	for what, line := range want {
		if !strings.Contains(all, line) {
			t.Errorf("%s: no problem says %q; problems:\n%s", what, line, all)
		}
	}
}

// archiveOf returns the archive that holds the processed crash id.
func archiveOf(f *checkerFixture, id string) *crashstore.Store {
	if procsim.Fails(id, f.seed, failRatio) {
		return f.ko
	}
	return f.ok
}
