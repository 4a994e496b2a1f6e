-- 007_monitor_leader: one active monitor, the others standing by.
--
-- Several `monitor run` may share one database and one storageRoot; exactly one of them runs the
-- loops. monitor_leader is its lease: a single row (id 1) naming the instance that holds it, the
-- term (incremented on every change of holder, and on every new acquisition), since when, and until
-- when the lease holds. Every time is the database's clock (clock_timestamp()), never a monitor
-- host's. The holder renews expires_at about twice a second; another monitor may take the row only
-- once expires_at has passed, and does so under FOR UPDATE, which waits for the transactions of the
-- holder that checked the lease with FOR KEY SHARE (the fence of every statement that changes jobs).
-- Renewals are plain UPDATEs of non-key columns, so they never wait for those transactions.
--
-- monitor_instances lists the running monitors, active or standing by, each with its heartbeat
-- (seen_at), for `monitor status` and the status page. A row whose heartbeat stopped long ago is
-- removed by the others.
--
-- Additive: a classic schema gains two tables and nothing else. Irreversible like the others.
--
-- Names are unqualified (resolved through search_path) and tern evaluates this file as a Go
-- template: never write a double opening brace here.

CREATE TABLE IF NOT EXISTS monitor_leader (
    id integer PRIMARY KEY CHECK (id = 1),
    instance text NOT NULL DEFAULT '',
    host text NOT NULL DEFAULT '',
    pid integer NOT NULL DEFAULT 0,
    term bigint NOT NULL DEFAULT 0,
    since timestamptz,
    expires_at timestamptz NOT NULL DEFAULT 'epoch'
);

-- The row exists from the start: the election only ever updates it.
INSERT INTO monitor_leader (id) VALUES (1) ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS monitor_instances (
    instance text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    seen_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
