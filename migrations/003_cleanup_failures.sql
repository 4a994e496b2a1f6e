-- 003_cleanup_failures: what the cleanup loop needs.
--
-- monitor_cleanup_failures holds one row per finished job whose cleanup (archiving or deleting
-- its crash files) failed: how often, the last error, and when to try again. The cleanup loop skips
-- a job until its retry_after has passed (backoff doubling from a minute to an hour), deletes the
-- row together with the job once the cleanup succeeds, and `monitor status` shows the count and
-- the latest errors. Times are the database clock (localtimestamp), like the classic columns.
-- Irreversible like 001: no down section.
--
-- Names are unqualified (resolved through search_path) and tern evaluates this file as a Go
-- template: never write a double opening brace here.

CREATE TABLE monitor_cleanup_failures (
    uuid varchar(50) PRIMARY KEY,
    attempts integer NOT NULL,
    last_error text NOT NULL,
    first_failed_at timestamp without time zone NOT NULL,
    last_failed_at timestamp without time zone NOT NULL,
    retry_after timestamp without time zone NOT NULL
);

-- Cleanup takes finished jobs oldest first: by completion time (jobs finished without one first),
-- then id, in bounded batches. This index serves that order; the id-only index of 001 that it
-- replaces served no query.
CREATE INDEX IF NOT EXISTS jobs_finished_completed_idx
    ON jobs (completeddatetime NULLS FIRST, id) WHERE success IS NOT NULL;

DROP INDEX IF EXISTS jobs_finished_idx;
