package queue

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Processor states, as judged in SQL against the database clock.
const (
	// ProcessorLive is a processor seen within processorCheckInTime; it gets
	// new work.
	ProcessorLive = "live"
	// ProcessorStale is a processor not seen for processorCheckInTime but
	// seen within twice that; it keeps its jobs and gets nothing new.
	ProcessorStale = "stale"
	// ProcessorDead is a processor not seen for more than twice
	// processorCheckInTime, or never; its jobs go to live processors.
	ProcessorDead = "dead"
)

// ProcessorStatus is one processors row as status shows it.
type ProcessorStatus struct {
	// ID is processors.id, also the N of its priority_jobs_N table.
	ID int64
	// Name is what the processor registered as, usually <hostname>_<pid>.
	Name string
	// State is ProcessorLive, ProcessorStale or ProcessorDead.
	State string
	// LastSeen is lastseendatetime as stored (a wall-clock time of the
	// database session's time zone, returned with location UTC); nil if the
	// processor never checked in.
	LastSeen *time.Time
	// Pending counts its unfinished jobs (success IS NULL), started or not.
	Pending int64
}

// Status is a summary of the queue.
type Status struct {
	// Processors lists every processors row, by id.
	Processors []ProcessorStatus
	// Queued counts jobs neither started nor finished.
	Queued int64
	// Started counts jobs started and not finished.
	Started int64
	// Succeeded counts finished jobs (success true) not yet cleaned up.
	Succeeded int64
	// Failed counts finished jobs (success false) not yet cleaned up.
	Failed int64
	// PriorityRequests counts rows of priorityjobs not yet handled.
	PriorityRequests int64
	// OldestQueuedAge is how long the oldest queued (unstarted, unfinished)
	// job has waited, by the database clock; nil when none is waiting.
	OldestQueuedAge *time.Duration
	// CleanupFailing counts finished jobs whose cleanup failed and waits for
	// a retry.
	CleanupFailing int64
	// CleanupFailures lists the latest of them (at most
	// StatusCleanupFailures), most recent failure first.
	CleanupFailures []FailingCleanup
	// Active is the monitor that holds the lease (runs the loops); nil when
	// none does (none runs, or the last one stopped and no other took over
	// yet).
	Active *Leader
	// Standbys lists the other running monitors (heartbeat within
	// StandbySeen), oldest first.
	Standbys []MonitorInstance
	// Alerts are the threshold rules' remembered states, by rule name.
	Alerts []AlertState
}

// StatusCleanupFailures is how many failing cleanups Status lists.
const StatusCleanupFailures = 5

const (
	// $1 is processorCheckInTime.
	statusProcessorsQuery = `
SELECT p.id, p.name, p.lastseendatetime, monitor_processor_state(p.lastseendatetime, $1),
       (SELECT count(*) FROM jobs j WHERE j.owner = p.id AND j.success IS NULL)
FROM processors p
ORDER BY p.id`

	statusJobsQuery = `
SELECT count(*) FILTER (WHERE success IS NULL AND starteddatetime IS NULL),
       count(*) FILTER (WHERE success IS NULL AND starteddatetime IS NOT NULL),
       count(*) FILTER (WHERE success),
       count(*) FILTER (WHERE NOT success),
       localtimestamp - min(queueddatetime) FILTER (WHERE success IS NULL AND starteddatetime IS NULL)
FROM jobs`

	statusPriorityQuery = `SELECT count(*) FROM priorityjobs`
)

// Status summarises processors, jobs, priority requests, failing cleanups
// and the running monitors in one round trip. checkIn is
// processorCheckInTime: a processor is live when seen within checkIn, dead
// when not seen within twice checkIn, stale in between.
func (s *Store) Status(ctx context.Context, checkIn time.Duration) (Status, error) {
	var st Status
	var b pgx.Batch
	b.Queue(statusProcessorsQuery, interval(checkIn))
	b.Queue(statusJobsQuery)
	b.Queue(statusPriorityQuery)
	b.Queue(statusCleanupCountQuery)
	b.Queue(statusCleanupRecentQuery, StatusCleanupFailures)
	b.Queue(statusLeaderQuery)
	b.Queue(statusInstancesQuery, interval(StandbySeen))
	b.Queue(alertsQuery)
	br := s.pool.SendBatch(ctx, &b)
	if err := readStatus(br, &st); err != nil {
		_ = br.Close()
		return Status{}, DBError(err, "read status")
	}
	if err := br.Close(); err != nil {
		return Status{}, DBError(err, "read status")
	}
	return st, nil
}

func readStatus(br pgx.BatchResults, st *Status) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	st.Processors, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (ProcessorStatus, error) {
		var p ProcessorStatus
		err := row.Scan(&p.ID, &p.Name, &p.LastSeen, &p.State, &p.Pending)
		return p, err
	})
	if err != nil {
		return err
	}

	var age pgtype.Interval
	if err := br.QueryRow().Scan(&st.Queued, &st.Started, &st.Succeeded, &st.Failed, &age); err != nil {
		return err
	}
	if age.Valid {
		d := duration(age)
		st.OldestQueuedAge = &d
	}

	if err := br.QueryRow().Scan(&st.PriorityRequests); err != nil {
		return err
	}
	if err := readCleanupStatus(br, st); err != nil {
		return err
	}
	if err := readMonitorsStatus(br, st); err != nil {
		return err
	}
	rows, err = br.Query()
	if err != nil {
		return err
	}
	st.Alerts, err = pgx.CollectRows(rows, scanAlert)
	return err
}

// readMonitorsStatus reads the results of statusLeaderQuery and
// statusInstancesQuery from a status batch: the active monitor, and the
// others as standbys.
func readMonitorsStatus(br pgx.BatchResults, st *Status) error {
	var l Leader
	switch err := scanLeader(br.QueryRow(), &l); {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return err
	case l.Valid:
		st.Active = &l
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	all, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (MonitorInstance, error) {
		var m MonitorInstance
		err := row.Scan(&m.ID, &m.Host, &m.PID, &m.Started, &m.Seen)
		return m, err
	})
	if err != nil {
		return err
	}
	for _, m := range all {
		if st.Active == nil || m.ID != st.Active.ID {
			st.Standbys = append(st.Standbys, m)
		}
	}
	return nil
}
