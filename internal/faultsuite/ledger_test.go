package faultsuite

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/internal/procsim"
)

// ledgerSQL records, in the same transaction, every change of a jobs row
// that matters to the checker: a crash queued (a row inserted), finished
// (success set), made unfinished again (which must never happen) and cleaned
// up (its row deleted). It is exact where the processes' own accounts are
// not: a commit whose answer a PostgreSQL restart swallowed is in it.
const ledgerSQL = `
CREATE TABLE faultsuite_ledger (
	seq      bigserial PRIMARY KEY,
	uuid     text NOT NULL,
	event    text NOT NULL,
	success  boolean,
	message  text,
	owner    integer,
	at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX faultsuite_ledger_uuid ON faultsuite_ledger (uuid);

CREATE FUNCTION faultsuite_ledger_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO faultsuite_ledger (uuid, event, success, owner) VALUES (NEW.uuid, 'queued', NEW.success, NEW.owner);
		IF NEW.success IS NOT NULL THEN -- inserted finished: never by the monitor, but counted all the same
			INSERT INTO faultsuite_ledger (uuid, event, success, message, owner)
			VALUES (NEW.uuid, 'finished', NEW.success, NEW.message, NEW.owner);
		END IF;
	ELSIF TG_OP = 'DELETE' THEN
		INSERT INTO faultsuite_ledger (uuid, event, success, owner) VALUES (OLD.uuid, 'deleted', OLD.success, OLD.owner);
	ELSIF NEW.success IS NOT NULL THEN
		INSERT INTO faultsuite_ledger (uuid, event, success, message, owner)
		VALUES (NEW.uuid, 'finished', NEW.success, NEW.message, NEW.owner);
	ELSE
		INSERT INTO faultsuite_ledger (uuid, event, success, owner) VALUES (NEW.uuid, 'unfinished', OLD.success, NEW.owner);
	END IF;
	RETURN NULL;
END $$;

CREATE TRIGGER faultsuite_ledger_insert AFTER INSERT ON jobs
	FOR EACH ROW EXECUTE FUNCTION faultsuite_ledger_jobs();
CREATE TRIGGER faultsuite_ledger_delete AFTER DELETE ON jobs
	FOR EACH ROW EXECUTE FUNCTION faultsuite_ledger_jobs();
CREATE TRIGGER faultsuite_ledger_update AFTER UPDATE OF success ON jobs
	FOR EACH ROW WHEN (OLD.success IS DISTINCT FROM NEW.success) EXECUTE FUNCTION faultsuite_ledger_jobs();
`

// installLedger adds the ledger to the migrated database.
func installLedger(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(t.Context(), ledgerSQL); err != nil {
		t.Fatalf("install the ledger: %v", err)
	}
}

// ledgerEntry is what the ledger says of one crash.
type ledgerEntry struct {
	queued, finished, unfinished, deleted int
	success                               bool   // the last finish's verdict
	message                               string // and its message
}

// readLedger returns the ledger by crash id.
func readLedger(ctx context.Context, pool *pgxpool.Pool) (map[string]*ledgerEntry, error) {
	rows, err := pool.Query(ctx, `SELECT uuid, event, coalesce(success, false), coalesce(message, '') FROM faultsuite_ledger ORDER BY seq`)
	if err != nil {
		return nil, err
	}
	out := map[string]*ledgerEntry{}
	var uuid, event, message string
	var success bool
	_, err = pgx.ForEachRow(rows, []any{&uuid, &event, &success, &message}, func() error {
		e := out[uuid]
		if e == nil {
			e = &ledgerEntry{}
			out[uuid] = e
		}
		switch event {
		case "queued":
			e.queued++
		case "finished":
			e.finished++
			e.success, e.message = success, message
		case "unfinished":
			e.unfinished++
		case "deleted":
			e.deleted++
		}
		return nil
	})
	return out, err
}

// cleanedUp returns which of ids have had their row deleted (they were
// queued, processed and cleaned up).
func cleanedUp(ctx context.Context, pool *pgxpool.Pool, ids []string) (map[string]bool, error) {
	rows, err := pool.Query(ctx, `SELECT DISTINCT uuid FROM faultsuite_ledger WHERE event = 'deleted' AND uuid = ANY($1)`, ids)
	if err != nil {
		return nil, err
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	out := map[string]bool{}
	for _, id := range got {
		out[id] = true
	}
	return out, err
}

// processings counts, on the processors' side, how often each crash was
// processed: every result whose finish a processor saw committed.
type processings struct {
	mu sync.Mutex
	n  map[string]int
}

func newProcessings() *processings { return &processings{n: map[string]int{}} }

// record is procsim's Recorded.
func (p *processings) record(r procsim.JobResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n[r.UUID]++
}

// count returns how often id was processed.
func (p *processings) count(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[id]
}

// total returns the number of processings recorded.
func (p *processings) total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.n {
		n += c
	}
	return n
}
