package queue

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// PriorityRequest is one row of priorityjobs, the reporter's "process this
// crash next" requests.
type PriorityRequest struct {
	// ID is the requested string exactly as stored: up to 255 characters of
	// anything, not necessarily a crash id. Only the caller's validation
	// makes it one.
	ID string
	// HasJob tells whether a jobs row had that uuid when it was read.
	HasJob bool
}

const (
	// readPriorityRequestsQuery pages through priorityjobs in uuid order,
	// after $1, at most $2 rows, telling for each whether it has a job. The
	// first page ($1 = '') includes a request for the empty string, which
	// sorts first: "after ''" alone would leave it in the table forever.
	readPriorityRequestsQuery = `
SELECT r.uuid, EXISTS (SELECT FROM jobs j WHERE j.uuid = r.uuid)
FROM priorityjobs r
WHERE r.uuid >= $1 AND (r.uuid > $1 OR $1 = '')
ORDER BY r.uuid
LIMIT $2`
)

const requestPriorityQuery = `
INSERT INTO priorityjobs (uuid)
SELECT unnest($1::text[])
ON CONFLICT DO NOTHING`

// RequestPriority does what the reporter does: it asks for priority
// processing of the given crash ids by inserting them into priorityjobs. Ids
// already requested (or repeated in ids) are skipped; it returns how many
// rows were inserted. Callers validate the ids first: all of them are
// inserted in one statement, so an id too long for the column means none is.
func (s *Store) RequestPriority(ctx context.Context, ids []string) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, requestPriorityQuery, ids)
	if err != nil {
		return 0, DBError(err, "request priority")
	}
	return tag.RowsAffected(), nil
}

// PriorityRequests returns up to limit priority requests whose uuid sorts
// after after ("" for the first page, which starts with a request for "" if
// there is one), in uuid order, each telling whether a
// job has that uuid. Paging by the last uuid returned walks the whole table
// once even while requests are added and deleted.
func (s *Store) PriorityRequests(ctx context.Context, after string, limit int) ([]PriorityRequest, error) {
	rows, err := s.pool.Query(ctx, readPriorityRequestsQuery, after, limit)
	if err != nil {
		return nil, DBError(err, "read priority requests")
	}
	var r PriorityRequest
	var out []PriorityRequest
	_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.HasJob}, func() error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, DBError(err, "read priority requests")
	}
	return out, nil
}
