package priority

import (
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/bench"
	"github.com/crashmonitor/monitor/internal/loop"
	"github.com/crashmonitor/monitor/queue"
)

// The ids of the classic monitor tests (socorro-classic 6.0).
const (
	badID     = "66666666-6666-6666-6666-666620081225" // in no tree
	neverID   = "0bad0bad-0bad-6666-9999-0bad20001025" // in no tree
	otherDay  = "4dd21cc0-49d9-46ae-a42b-fadb42090928"
	plainUUID = "8f4c2b1e-3d5a-4e6f-9a0b-1c2d3e4f5a6b"
)

// checkQueued checks that each id has a job with priority 1 that its owner
// was told about, exactly once and in no other processor's table.
func checkQueued(t *testing.T, b *bundle, procs []int64, ids ...string) {
	t.Helper()
	for _, id := range ids {
		j, ok := b.job(t, id)
		if !ok {
			t.Errorf("%s: no job", id)
			continue
		}
		if j.priority < 1 || j.started {
			t.Errorf("%s: job %+v, want priority >= 1, unstarted", id, j)
		}
		for _, p := range procs {
			n := 0
			for _, u := range b.pending(t, p) {
				if u == id {
					n++
				}
			}
			if want := map[bool]int{true: 1}[p == j.owner]; n != want {
				t.Errorf("%s (owner %d) is %d times in priority_jobs_%d, want %d", id, j.owner, n, p, want)
			}
		}
	}
}

// checkUnlinked checks that entries left the inbox and kept their files.
func checkUnlinked(t *testing.T, es map[string]crashstore.Entry) {
	t.Helper()
	for id, e := range es {
		if present(t, e.DateLink) || present(t, e.NameLink) {
			t.Errorf("%s: inbox links remain", id)
		}
		if !present(t, e.JSONPath) || !present(t, e.DumpPath) {
			t.Errorf("%s: files gone; they stay where they are", id)
		}
	}
}

// TestClassic29_FromStorage: every requested crash of either tree is
// queued with priority 1 and its owner told, its links removed and its files
// left in place; a request for a crash in neither is an ERROR and dropped.
func TestClassic29_FromStorage(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	procs := b.live(t, 5)
	std := put(t, b.standard, "jsonFileData")
	def := put(t, b.deferred, "jsonMoreData")
	ids := slices.Sorted(maps.Keys(std))
	ids = append(ids, slices.Sorted(maps.Keys(def))...)
	b.request(t, append(ids, badID)...)

	res := b.runOnce(t)
	if res.Queued != 16 || res.NotFound != 1 || res.Kept != 0 {
		t.Errorf("result %+v, want 16 queued, 1 not found", res)
	}
	checkQueued(t, b, procs, ids...)
	checkUnlinked(t, std)
	checkUnlinked(t, def)
	if _, ok := b.job(t, badID); ok {
		t.Errorf("the id found nowhere was queued")
	}
	if r := b.requests(t); len(r) != 0 {
		t.Errorf("requests left: %v", r)
	}
	if got := uuids(b.log.find(slog.LevelError, "never found")); !slices.Equal(got, []string{badID}) {
		t.Errorf("never-found errors name %v, want %v", got, []string{badID})
	}
	trees := map[string]int{}
	for _, l := range b.log.find(slog.LevelInfo, "priority crash queued") {
		trees[l.attrs["tree"]]++
	}
	if trees["standard"] != 14 || trees["deferred"] != 2 {
		t.Errorf("queued from trees %v, want 14 standard and 2 deferred", trees)
	}
	// Water-filled over the live processors: 16 over 5 within one.
	loads := map[int64]int{}
	for _, id := range ids {
		j, _ := b.job(t, id)
		loads[j.owner]++
	}
	for _, p := range procs {
		if loads[p] < 3 || loads[p] > 4 {
			t.Errorf("loads %v, want 3 or 4 each", loads)
			break
		}
	}
}

// TestClassic28_StandardBeforeDeferred: a crash in both trees is taken from
// the standard tree; the deferred copy is left alone.
func TestClassic28_StandardBeforeDeferred(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	procs := b.live(t, 1)
	const id = "0bba929f-8721-460c-dead-a43c20071025"
	at := time.Date(2007, 10, 25, 5, 4, 0, 0, time.UTC)
	s := write(t, b.standard, id, "webhead02", at)
	d := write(t, b.deferred, id, "webhead02", at)
	b.request(t, id)

	b.runOnce(t)
	checkQueued(t, b, procs, id)
	checkUnlinked(t, map[string]crashstore.Entry{id: s})
	if !present(t, d.DateLink) || !present(t, d.NameLink) {
		t.Errorf("the deferred copy's links were removed")
	}
	if l := b.log.find(slog.LevelInfo, "priority crash queued"); len(l) != 1 || l[0].attrs["tree"] != "standard" {
		t.Errorf("queued lines %+v, want one from the standard tree", l)
	}
}

// TestClassic27_AlreadyQueued: requested ids already queued are raised to
// priority 1 and end up once in their owner's table; ids only queued are
// left alone; asking again is fine (the classic monitor hit a unique
// violation that aborted its pass, 7.3 #20).
func TestClassic27_AlreadyQueued(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	procs := b.live(t, 5)
	var queued, requested []string
	for i := range 12 {
		id := fmt.Sprintf("%08x-0000-4000-8000-000000081225", i)
		switch i % 3 {
		case 0:
			queued, requested = append(queued, id), append(requested, id)
		case 1:
			queued = append(queued, id)
		}
	}
	b.enqueue(t, queued...)

	for round := range 2 {
		b.request(t, requested...)
		res := b.runOnce(t)
		if res.Raised != len(requested) || res.Queued+res.NotFound+res.Kept != 0 {
			t.Errorf("round %d: result %+v, want %d raised", round, res, len(requested))
		}
		checkQueued(t, b, procs, requested...)
		for _, id := range queued {
			if slices.Contains(requested, id) {
				continue
			}
			if j, _ := b.job(t, id); j.priority != 0 || slices.Contains(b.pending(t, j.owner), id) {
				t.Errorf("round %d: %s was not requested but got priority (%+v)", round, id, j)
			}
		}
		if r := b.requests(t); len(r) != 0 {
			t.Errorf("round %d: requests left: %v", round, r)
		}
	}
	if got := uuids(b.log.find(slog.LevelInfo, "already queued")); len(got) != 2*len(requested) {
		t.Errorf("already-queued lines for %v, want each of %v twice", got, requested)
	}
	if l := b.log.find(slog.LevelError, ""); len(l) != 0 {
		t.Errorf("errors logged: %+v", l)
	}
}

// TestClassic30_NeverFound: requests that are no crash ids are dropped with
// a warning quoting them; a crash id found nowhere is an ERROR naming it;
// neither touches the disk.
func TestClassic30_NeverFound(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.live(t, 1)
	b.request(t, "NOPE", "NEVERMIND", neverID)

	res := b.runOnce(t)
	if res.Malformed != 2 || res.NotFound != 1 {
		t.Errorf("result %+v, want 2 malformed, 1 not found", res)
	}
	var quoted []string
	for _, l := range b.log.find(slog.LevelWarn, "malformed priority request") {
		quoted = append(quoted, l.attrs["request"])
	}
	slices.Sort(quoted)
	if want := []string{"NEVERMIND", "NOPE"}; !slices.Equal(quoted, want) {
		t.Errorf("malformed lines quote %v, want %v", quoted, want)
	}
	if got := uuids(b.log.find(slog.LevelError, "never found")); !slices.Equal(got, []string{neverID}) {
		t.Errorf("never-found errors name %v", got)
	}
	if r := b.requests(t); len(r) != 0 {
		t.Errorf("requests left: %v", r)
	}
	for _, root := range []string{b.standard.Root(), b.deferred.Root()} {
		if present(t, root) {
			t.Errorf("%s was created", root)
		}
	}
}

// TestHostileRequests: strings that are no crash ids never reach the
// filesystem or a statement's text; they are logged quoted and truncated,
// dropped, and hold up nothing.
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	procs := b.live(t, 1)
	e := write(t, b.standard, otherDay, "web1", time.Now().UTC().Add(-time.Hour))
	victim := filepath.Join(filepath.Dir(b.standard.Root()), "victim.json")
	if err := os.WriteFile(victim, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	hostile := []string{
		`'; DROP TABLE jobs; --`,
		`"); DELETE FROM processors; --`,
		"../victim",
		"../../../../../../etc/passwd",
		otherDay + "/../../victim",
		" " + otherDay,
		strings.ToUpper(otherDay)[:35] + "G",
		strings.Repeat("A", 255),
		strings.Repeat("☃", 85), // 255 bytes of three-byte characters
		"tab\there\nnewline",
		"\x1b[31mred\x1b[0m",
		"",
	}
	b.request(t, append(hostile, otherDay)...)

	res := b.runOnce(t)
	if res.Malformed != len(hostile) || res.Queued != 1 {
		t.Errorf("result %+v, want %d malformed, 1 queued", res, len(hostile))
	}
	checkQueued(t, b, procs, otherDay)
	checkUnlinked(t, map[string]crashstore.Entry{otherDay: e})
	if r := b.requests(t); len(r) != 0 {
		t.Errorf("requests left: %q", r)
	}
	if !present(t, victim) {
		t.Errorf("a file outside the tree was touched")
	}
	if n := b.int64s(t, `SELECT count(*) FROM processors`); n[0] != 1 {
		t.Errorf("processors: %d rows", n[0])
	}
	lines := b.log.find(slog.LevelWarn, "malformed priority request")
	if len(lines) != len(hostile) {
		t.Fatalf("%d malformed lines, want %d", len(lines), len(hostile))
	}
	for _, l := range lines {
		q := l.attrs["request"]
		if len(q) > maxLogged || !slices.ContainsFunc(hostile, func(h string) bool {
			return strings.HasPrefix(h, q) && l.attrs["bytes"] == fmt.Sprint(len(h))
		}) {
			t.Errorf("request logged as %q (%s bytes): want a prefix of at most %d bytes of a request", q, l.attrs["bytes"], maxLogged)
		}
	}
}

// TestTruncate: log lines show at most maxLogged bytes of a request, cut on
// a character boundary.
func TestTruncate(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"NOPE":                   "NOPE",
		strings.Repeat("a", 80):  strings.Repeat("a", 80),
		strings.Repeat("a", 81):  strings.Repeat("a", 80),
		strings.Repeat("☃", 85):  strings.Repeat("☃", 26),
		"a\x00\"b":               "a\x00\"b",
		strings.Repeat("é", 100): strings.Repeat("é", 40),
	} {
		if got := truncate(in); got != want {
			t.Errorf("truncate(%.20q...) = %q, want %q", in, got, want)
		}
	}
}

// TestDeadOwner: a requested job owned by a dead processor, or by none, is
// moved to the least-loaded live processor, unstarted, in the transaction
// that tells its new owner; the classic monitor left the request parked
// until the sweep reassigned the job (7.3 #21).
func TestDeadOwner(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	dead := b.processors(t, time.Hour)[0]
	busy := b.live(t, 1)[0]
	idle := b.live(t, 1)[0]
	b.enqueue(t, "00000001-0000-4000-8000-000000081225", "00000002-0000-4000-8000-000000081225")
	const (
		deadJob   = "0000000a-0000-4000-8000-000000081225"
		orphanJob = "0000000b-0000-4000-8000-000000081225"
	)
	b.exec(t, `UPDATE jobs SET owner = $1 WHERE owner <> $1`, busy)
	b.exec(t, `INSERT INTO jobs (uuid, owner, priority, queueddatetime, starteddatetime)
		VALUES ($1, $2, 0, localtimestamp, localtimestamp), ($3, NULL, 0, localtimestamp, NULL)`, deadJob, dead, orphanJob)
	b.request(t, deadJob, orphanJob)

	res := b.runOnce(t)
	if res.Moved != 2 {
		t.Errorf("result %+v, want 2 moved", res)
	}
	for _, id := range []string{deadJob, orphanJob} {
		if j, _ := b.job(t, id); j.owner != idle || j.priority != 1 || j.started {
			t.Errorf("%s: %+v, want moved to %d, priority 1, unstarted", id, j, idle)
		}
	}
	if got := b.pending(t, idle); !slices.Equal(got, []string{deadJob, orphanJob}) {
		t.Errorf("priority_jobs_%d = %v", idle, got)
	}
	froms := map[string]string{}
	for _, l := range b.log.find(slog.LevelInfo, "dead processor") {
		froms[l.attrs["uuid"]] = l.attrs["from"]
	}
	if want := map[string]string{deadJob: fmt.Sprint(dead), orphanJob: "none"}; !maps.Equal(froms, want) {
		t.Errorf("moved lines say from %v, want %v", froms, want)
	}
}

// TestAlreadyPendingAndFinished: an id already waiting in its owner's table
// resolves without error and stays there once; a finished job's request is
// dropped without telling anyone.
func TestAlreadyPendingAndFinished(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	procs := b.live(t, 1)
	const (
		pendingID  = "00000001-0000-4000-8000-000000081225"
		finishedID = "00000002-0000-4000-8000-000000081225"
	)
	b.enqueue(t, pendingID, finishedID)
	b.exec(t, fmt.Sprintf(`INSERT INTO priority_jobs_%d VALUES ($1)`, procs[0]), pendingID)
	b.exec(t, `UPDATE jobs SET starteddatetime = localtimestamp, completeddatetime = localtimestamp, success = true WHERE uuid = $1`, finishedID)
	b.request(t, pendingID, finishedID)

	res := b.runOnce(t)
	if res.Raised != 1 || res.Finished != 1 {
		t.Errorf("result %+v, want 1 raised, 1 finished", res)
	}
	if got := b.pending(t, procs[0]); !slices.Equal(got, []string{pendingID}) {
		t.Errorf("priority_jobs_%d = %v, want the pending id once", procs[0], got)
	}
	if r := b.requests(t); len(r) != 0 {
		t.Errorf("requests left: %v", r)
	}
	if got := uuids(b.log.find(slog.LevelInfo, "already processed")); !slices.Equal(got, []string{finishedID}) {
		t.Errorf("finished lines %v", got)
	}
}

// TestNoLiveProcessor: with no live processor a request waits (the crash
// stays in the inbox, a warning is logged once) and is retried every few
// seconds, whatever priorityLoopDelay is; a processor checking in gets it.
func TestNoLiveProcessor(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{WaitForProcessor: 50 * time.Millisecond})
	b.processors(t, time.Hour) // dead
	e := write(t, b.standard, otherDay, "web1", time.Now().UTC().Add(-time.Hour))
	b.request(t, otherDay)
	b.start(t)

	eventually(t, "several waiting passes", func() bool {
		return len(b.log.find(slog.LevelDebug, "priority pass")) >= 3
	})
	if _, ok := b.job(t, otherDay); ok {
		t.Fatal("queued with no live processor")
	}
	if r := b.requests(t); !slices.Equal(r, []string{otherDay}) {
		t.Errorf("requests = %v, want the request kept", r)
	}
	if !present(t, e.DateLink) {
		t.Errorf("inbox link removed while no processor took the crash")
	}
	if n := len(b.log.find(slog.LevelWarn, "no live processor")); n != 1 {
		t.Errorf("%d no-live-processor warnings, want 1 for the stretch", n)
	}

	procs := b.live(t, 1)
	eventually(t, "the request is resolved once a processor is live", func() bool {
		return len(b.requests(t)) == 0
	})
	checkQueued(t, b, procs, otherDay)
	checkUnlinked(t, map[string]crashstore.Entry{otherDay: e})
	if n := len(b.log.find(slog.LevelInfo, "live again")); n != 1 {
		t.Errorf("%d live-again lines, want 1", n)
	}
}

// TestIncompletePair: a pair missing its json is kept and looked at again
// until it is complete; one that never completes is dropped after GiveUp
// with an ERROR, its files and links left for the scanner.
func TestIncompletePair(t *testing.T) {
	t.Parallel()

	t.Run("Completes", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{Recheck: time.Millisecond})
		procs := b.live(t, 1)
		e := write(t, b.standard, otherDay, "web1", time.Now().UTC().Add(-time.Hour))
		if err := os.Remove(e.JSONPath); err != nil {
			t.Fatal(err)
		}
		b.request(t, otherDay)

		if res := b.runOnce(t); res.Kept != 1 || res.Queued != 0 {
			t.Fatalf("result %+v, want the request kept", res)
		}
		l := b.log.find(slog.LevelWarn, "incomplete")
		if len(l) != 1 || l[0].attrs["state"] != stateNoJSON {
			t.Errorf("incomplete lines %+v, want one saying the json is missing", l)
		}
		if err := os.WriteFile(e.JSONPath, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
		age(t, e.JSONPath)
		eventually(t, "queued once the json is there", func() bool {
			return b.runOnce(t).Queued == 1
		})
		checkQueued(t, b, procs, otherDay)
	})

	t.Run("GivesUp", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{Recheck: time.Millisecond, GiveUp: 20 * time.Millisecond})
		b.live(t, 1)
		e := write(t, b.deferred, otherDay, "web1", time.Now().UTC().Add(-time.Hour))
		if err := os.Remove(e.DumpPath); err != nil {
			t.Fatal(err)
		}
		b.request(t, otherDay)

		eventually(t, "given up", func() bool { return b.runOnce(t).GaveUp == 1 })
		if r := b.requests(t); len(r) != 0 {
			t.Errorf("requests left: %v", r)
		}
		if l := b.log.find(slog.LevelError, "never completed"); len(l) != 1 || l[0].attrs["state"] != stateNoDump {
			t.Errorf("give-up lines %+v", l)
		}
		if !present(t, e.JSONPath) || !present(t, e.DateLink) {
			t.Errorf("files or links of the incomplete pair were touched")
		}
		if _, ok := b.job(t, otherDay); ok {
			t.Errorf("an incomplete pair was queued")
		}
	})
}

// TestLookupErrorHoldsUpNothing: a crash whose lookup fails is kept and
// retried later while the others of the batch are resolved.
func TestLookupErrorHoldsUpNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	procs := b.live(t, 1)
	const broken = "0b9ff107-8672-4aac-dead-b2bd20081225"
	date, _ := crashstore.IDDate(broken)
	nameDir := filepath.Join(b.standard.Root(), date.Format("20060102"), "name")
	if err := os.MkdirAll(nameDir, 0o755); err != nil {
		t.Fatal(err)
	}
	loop := filepath.Join(nameDir, broken[:2])
	if err := os.Symlink(broken[:2], loop); err != nil { // a symlink loop: ELOOP
		t.Fatal(err)
	}
	e := write(t, b.deferred, otherDay, "web1", time.Now().UTC().Add(-time.Hour))
	b.request(t, broken, otherDay)

	res := b.runOnce(t)
	if res.Queued != 1 || res.Kept != 1 {
		t.Errorf("result %+v, want 1 queued, 1 kept", res)
	}
	checkQueued(t, b, procs, otherDay)
	checkUnlinked(t, map[string]crashstore.Entry{otherDay: e})
	if r := b.requests(t); !slices.Equal(r, []string{broken}) {
		t.Errorf("requests = %v, want the broken one kept", r)
	}
	if got := uuids(b.log.find(slog.LevelWarn, "cannot look up")); !slices.Equal(got, []string{broken}) {
		t.Errorf("lookup warnings name %v", got)
	}

	// Fixed: it is resolved on a later pass.
	if err := os.Remove(loop); err != nil {
		t.Fatal(err)
	}
	write(t, b.standard, broken, "web1", time.Date(2008, 12, 25, 5, 0, 0, 0, time.UTC))
	eventually(t, "resolved once the tree is fixed", func() bool { return b.runOnce(t).Queued == 1 })
	checkQueued(t, b, procs, broken)
	if n := len(b.log.find(slog.LevelWarn, "cannot look up")); n != 1 {
		t.Errorf("%d lookup warnings, want 1 for the stretch", n)
	}
}

// TestOwnerWithoutTable: a job whose live owner has no priority table yet
// gets its priority raised and its request kept until the owner can be
// told.
func TestOwnerWithoutTable(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{WaitForProcessor: time.Millisecond})
	var p int64
	if err := b.pool.QueryRow(t.Context(), `INSERT INTO processors (name, startdatetime, lastseendatetime)
		VALUES ('bare', localtimestamp, localtimestamp) RETURNING id`).Scan(&p); err != nil {
		t.Fatal(err)
	}
	b.enqueue(t, plainUUID)
	b.request(t, plainUUID)

	if res := b.runOnce(t); res.Kept != 1 {
		t.Errorf("result %+v, want kept", res)
	}
	if j, _ := b.job(t, plainUUID); j.priority != 1 {
		t.Errorf("job %+v, want priority raised", j)
	}
	if l := b.log.find(slog.LevelWarn, "no priority table"); len(l) != 1 {
		t.Errorf("no-table warnings: %+v", l)
	}
	b.exec(t, fmt.Sprintf(`CREATE TABLE priority_jobs_%d (uuid varchar(50) NOT NULL PRIMARY KEY)`, p))
	eventually(t, "told once the table exists", func() bool { return b.runOnce(t).Raised == 1 })
	checkQueued(t, b, []int64{p}, plainUUID)
}

// TestNotifyWakesTheLoop: with priorityLoopDelay an hour, an inserted
// request is resolved at once.
func TestNotifyWakesTheLoop(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	procs := b.live(t, 1)
	e := write(t, b.deferred, otherDay, "web1", time.Now().UTC().Add(-time.Hour))
	b.start(t)
	eventually(t, "listening", func() bool { return len(b.listenerPIDs(t)) == 1 })
	eventually(t, "the first passes done", func() bool { return len(b.log.find(slog.LevelDebug, "priority pass")) >= 1 })

	b.request(t, otherDay)
	eventually(t, "resolved", func() bool { return len(b.requests(t)) == 0 })
	checkQueued(t, b, procs, otherDay)
	checkUnlinked(t, map[string]crashstore.Entry{otherDay: e})
}

// TestLostNotification: a request whose notification never comes (the
// trigger disabled) is still resolved by the periodic pass.
func TestLostNotification(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{DelayFunc: func() time.Duration { return 200 * time.Millisecond }})
	procs := b.live(t, 1)
	write(t, b.standard, otherDay, "web1", time.Now().UTC().Add(-time.Hour))
	b.exec(t, `ALTER TABLE priorityjobs DISABLE TRIGGER monitor_priorityjobs_notify`)
	b.start(t)
	eventually(t, "listening", func() bool { return len(b.listenerPIDs(t)) == 1 })

	b.request(t, otherDay)
	eventually(t, "resolved by a periodic pass", func() bool { return len(b.requests(t)) == 0 })
	checkQueued(t, b, procs, otherDay)
}

// TestListenerReconnects: when the listener's connection is killed, the
// loop logs it, listens again on a new connection and hears the next
// request; shutting down closes that connection.
func TestListenerReconnects(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	procs := b.live(t, 1)
	write(t, b.deferred, otherDay, "web1", time.Now().UTC().Add(-time.Hour))
	stop := b.start(t)

	var first []int64
	eventually(t, "listening", func() bool { first = b.listenerPIDs(t); return len(first) == 1 })
	b.exec(t, `SELECT pg_terminate_backend($1)`, first[0])
	eventually(t, "listening again on a new connection", func() bool {
		pids := b.listenerPIDs(t)
		return len(pids) == 1 && pids[0] != first[0]
	})
	if n := len(b.log.find(slog.LevelWarn, "connection lost")); n != 1 {
		t.Errorf("%d connection-lost warnings, want 1", n)
	}
	eventually(t, "reconnection logged", func() bool { return len(b.log.find(slog.LevelInfo, "reconnected")) == 1 })

	b.request(t, otherDay)
	eventually(t, "resolved", func() bool { return len(b.requests(t)) == 0 })
	checkQueued(t, b, procs, otherDay)

	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	eventually(t, "listener connection closed", func() bool { return len(b.listenerPIDs(t)) == 0 })
}

// recordingOutage is a loop.Outage that takes what queue.Unreachable
// takes for an outage, and counts.
type recordingOutage struct {
	failed, answered atomic.Int64
	back             loop.Broadcast
}

func (o *recordingOutage) Failed(err error) bool {
	if !queue.Unreachable(err) {
		return false
	}
	o.failed.Add(1)
	return true
}

func (o *recordingOutage) Answered() { o.answered.Add(1) }

func (o *recordingOutage) Back() <-chan struct{} { return o.back.C() }

// TestListenerLeavesOutagesToTheTracker: with an Outage, a listener
// connection killed by pg_terminate_backend is the Outage's to log; the
// listener logs no warning of its own, tells the Outage when it listens
// again, and hears the next request.
func TestListenerLeavesOutagesToTheTracker(t *testing.T) {
	t.Parallel()
	o := &recordingOutage{}
	b := setup(t, Config{Outage: o})
	procs := b.live(t, 1)
	write(t, b.deferred, otherDay, "web1", time.Now().UTC().Add(-time.Hour))
	b.start(t)

	var first []int64
	eventually(t, "listening", func() bool { first = b.listenerPIDs(t); return len(first) == 1 })
	answered := o.answered.Load()
	b.exec(t, `SELECT pg_terminate_backend($1)`, first[0])
	eventually(t, "listening again on a new connection", func() bool {
		pids := b.listenerPIDs(t)
		return len(pids) == 1 && pids[0] != first[0]
	})
	eventually(t, "the Outage told of the loss and of the new connection", func() bool {
		return o.failed.Load() >= 1 && o.answered.Load() > answered
	})
	if n := len(b.log.find(slog.LevelWarn, "connection lost")); n != 0 {
		t.Errorf("%d connection-lost warnings, want none (the Outage logs)", n)
	}
	b.request(t, otherDay)
	eventually(t, "resolved", func() bool { return len(b.requests(t)) == 0 })
	checkQueued(t, b, procs, otherDay)
}

// TestMeasureLatency: the measuring helper requests each id in turn and
// times its resolution by a running loop.
func TestMeasureLatency(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	procs := b.live(t, 1)
	ids := []string{otherDay, plainUUID, neverID}
	write(t, b.deferred, otherDay, "web1", time.Now().UTC().Add(-time.Hour))
	b.enqueue(t, plainUUID)
	b.start(t)

	ds, err := bench.MeasurePriorityLatency(t.Context(), queue.NewStore(b.pool), bench.NewDB(b.pool), ids, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != len(ids) {
		t.Fatalf("%d latencies, want %d", len(ds), len(ids))
	}
	for _, d := range ds {
		if d <= 0 {
			t.Errorf("latency %v", d)
		}
	}
	checkQueued(t, b, procs, otherDay, plainUUID)
	if _, err := bench.MeasurePriorityLatency(t.Context(), queue.NewStore(b.pool), bench.NewDB(b.pool), []string{"x"}, time.Millisecond); err != nil {
		t.Errorf("a malformed request is dropped, so measured too: %v", err)
	}
}
