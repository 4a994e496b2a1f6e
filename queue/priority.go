package queue

import (
	"context"
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
