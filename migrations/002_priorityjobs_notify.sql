-- 002_priorityjobs_notify: wake the monitor's priority loop as soon as a request is inserted.
--
-- A statement-level trigger sends one NOTIFY on the channel monitor_priorityjobs, with an empty
-- payload, per INSERT statement into priorityjobs. The payload stays empty on purpose: requests
-- may be arbitrary strings up to 255 characters (a hostile id must never make the reporter's
-- INSERT fail, and pg_notify rejects payloads over 8000 bytes), and the table is the truth anyway:
-- the notification is only a hint to look now instead of at the next priorityLoopDelay.
-- PostgreSQL folds identical notifications of one transaction into one, so a bulk insert costs
-- one wake-up. NOTIFY is delivered at commit, when the rows are visible.

CREATE OR REPLACE FUNCTION monitor_priorityjobs_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('monitor_priorityjobs', '');
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS monitor_priorityjobs_notify ON priorityjobs;
CREATE TRIGGER monitor_priorityjobs_notify
    AFTER INSERT ON priorityjobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION monitor_priorityjobs_notify();
