-- 008_monitor_alerts: the memory of the threshold notifications (CONTRACT section 10).
--
-- One row per configured rule: its definition as the monitor spells it (a rule whose definition
-- changed starts afresh), whether it fires, since when its current state holds, the average at the
-- last change of state, and when it was last notified (for `repeat`). The active monitor writes the
-- row before it notifies, so a restart or a takeover by a standby in the middle of an episode does
-- not notify it again, and a resolution that happened while no monitor ran is notified once when
-- one starts. Times are the notifying monitor's clock: they are shown and schedule repeats; no
-- liveness is judged from them.
--
-- Additive: a classic schema gains one table and nothing else. Irreversible like the others.
--
-- Names are unqualified (resolved through search_path) and tern evaluates this file as a Go
-- template: never write a double opening brace here.

CREATE TABLE IF NOT EXISTS monitor_alerts (
    rule text PRIMARY KEY,
    definition text NOT NULL,
    metric text NOT NULL,
    below boolean NOT NULL,
    threshold double precision NOT NULL,
    firing boolean NOT NULL DEFAULT false,
    since timestamptz,
    value double precision,
    notified_at timestamptz
);
