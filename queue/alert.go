package queue

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// AlertRule is a threshold rule as the memory of notifications knows it:
// its name, its definition as the monitor spells it, and what the status
// shows of it.
type AlertRule struct {
	Rule       string
	Definition string
	Metric     string
	Below      bool // fires below Threshold (else above)
	Threshold  float64
}

// AlertState is a rule's remembered state (table monitor_alerts).
type AlertState struct {
	AlertRule
	Firing bool
	// Since is when the current state began; zero before the first change.
	Since time.Time
	// Value is the average at the last change of state or notice.
	Value float64
	// NotifiedAt is when the rule was last notified; zero if never.
	NotifiedAt time.Time
}

// ErrAlertChanged is SaveAlertState's error when the rule's row is gone or
// holds another definition: another monitor, with another configuration,
// changed it.
var ErrAlertChanged = errors.New("the rule's remembered definition changed")

const (
	// $1 and $2 are the configured rules' names and definitions, side by
	// side: rows of rules no longer configured, or configured otherwise,
	// are forgotten.
	forgetAlertsQuery = `
DELETE FROM monitor_alerts a
WHERE NOT EXISTS (
    SELECT 1 FROM unnest($1::text[], $2::text[]) AS c(rule, definition)
    WHERE c.rule = a.rule AND c.definition = a.definition)`

	// A configured rule without a row gets one, not firing.
	addAlertsQuery = `
INSERT INTO monitor_alerts (rule, definition, metric, below, threshold)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::double precision[])
ON CONFLICT (rule) DO NOTHING`

	alertsQuery = `
SELECT rule, definition, metric, below, threshold, firing, since, value, notified_at
FROM monitor_alerts
ORDER BY rule`

	// The row changes only while it holds the same definition.
	saveAlertQuery = `
UPDATE monitor_alerts
SET firing = $3, since = $4, value = $5, notified_at = $6
WHERE rule = $1 AND definition = $2`
)

// SyncAlerts makes the memory of notifications hold exactly the rules
// given, keeping the state of those whose definition is unchanged, and
// returns it, by rule name. It is a write: a fenced Store runs it only while
// its lease holds.
func (s *Store) SyncAlerts(ctx context.Context, rules []AlertRule) ([]AlertState, error) {
	n := len(rules)
	names, defs, metrics := make([]string, n), make([]string, n), make([]string, n)
	below, thresholds := make([]bool, n), make([]float64, n)
	for i, r := range rules {
		names[i], defs[i], metrics[i], below[i], thresholds[i] = r.Rule, r.Definition, r.Metric, r.Below, r.Threshold
	}
	var states []AlertState
	err := s.tx(ctx, func(q pgx.Tx) error {
		if _, err := q.Exec(ctx, forgetAlertsQuery, names, defs); err != nil {
			return err
		}
		if _, err := q.Exec(ctx, addAlertsQuery, names, defs, metrics, below, thresholds); err != nil {
			return err
		}
		var err error
		states, err = readAlerts(ctx, q)
		return err
	})
	return states, DBError(err, "read the alert rules' states")
}

// SaveAlertState records a rule's new state. It returns an error wrapping
// ErrAlertChanged when the row no longer holds st's definition.
func (s *Store) SaveAlertState(ctx context.Context, st AlertState) error {
	err := s.write(ctx, func(q dbtx) error {
		tag, err := q.Exec(ctx, saveAlertQuery, st.Rule, st.Definition, st.Firing,
			nullTime(st.Since), st.Value, nullTime(st.NotifiedAt))
		if err == nil && tag.RowsAffected() == 0 {
			return ErrAlertChanged
		}
		return err
	})
	return DBError(err, "record the state of alert rule %q", st.Rule)
}

// readAlerts reads every row of monitor_alerts, by rule name.
func readAlerts(ctx context.Context, q dbtx) ([]AlertState, error) {
	rows, err := q.Query(ctx, alertsQuery)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanAlert)
}

func scanAlert(row pgx.CollectableRow) (AlertState, error) {
	var a AlertState
	var since, notified *time.Time
	var value *float64
	err := row.Scan(&a.Rule, &a.Definition, &a.Metric, &a.Below, &a.Threshold, &a.Firing, &since, &value, &notified)
	if since != nil {
		a.Since = *since
	}
	if notified != nil {
		a.NotifiedAt = *notified
	}
	if value != nil {
		a.Value = *value
	}
	return a, err
}

// nullTime is t, or NULL for the zero time.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
