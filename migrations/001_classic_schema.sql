-- 001_classic_schema: the classic Socorro jobs tables (processors, jobs, priorityjobs), created
-- when absent, adopted when a classic Socorro database already has them.
--
-- Adoption never deletes, rewrites or updates a row: it only adds what the monitor relies on
-- (a unique index on jobs.uuid, pathname's default, the indexes below) and replaces an owner
-- foreign key that would delete or alter jobs when a processor row is deleted. Columns keep the
-- types the adopted database gave them, and its own indexes stay.
--
-- This migration is irreversible on purpose: it has no drop section, so tern refuses to migrate
-- below version 1 instead of dropping a production jobs table along with its queue.
--
-- Names are unqualified (resolved through search_path) and tern evaluates this file as a Go
-- template: never write a double opening brace here.

-- Each table is created only when search_path finds no relation of that name. CREATE TABLE IF NOT
-- EXISTS would look in the creation schema alone: with search_path "$user", public and a schema
-- named after the user, it would create empty tables there that shadow the classic ones in public,
-- and the monitor would queue into tables no processor reads.
DO $$
BEGIN
    IF to_regclass('processors') IS NULL THEN
        CREATE TABLE processors (
            id serial PRIMARY KEY,
            name varchar(255) NOT NULL UNIQUE,
            startdatetime timestamp without time zone NOT NULL,
            lastseendatetime timestamp without time zone
        );
    END IF;

    -- An adopted processors table keeps whatever it has on name. The production dump has only the
    -- plain index idx_processor_name, and processors register as <hostname>_<pid>, so duplicate
    -- names may already exist. Nothing in the monitor looks a processor up by name; making name
    -- unique there would fail this migration on such rows, or later fail a classic processor that
    -- takes over a row under a name another row still has; and a constraint added only when the
    -- data allows it would give databases at the same version different schemas. So name is
    -- unique only in tables created here.

    IF to_regclass('jobs') IS NULL THEN
        CREATE TABLE jobs (
            id serial PRIMARY KEY,
            pathname varchar(1024) NOT NULL DEFAULT '',
            uuid varchar(50) NOT NULL UNIQUE,
            owner integer REFERENCES processors (id),
            priority integer DEFAULT 0,
            queueddatetime timestamp without time zone,
            starteddatetime timestamp without time zone,
            completeddatetime timestamp without time zone,
            success boolean,
            message text
        );
    END IF;

    IF to_regclass('priorityjobs') IS NULL THEN
        CREATE TABLE priorityjobs (
            uuid varchar(255) PRIMARY KEY
        );
    END IF;
END
$$;

-- The monitor always writes pathname as ''; the production dump has NOT NULL without a default.
-- Changing a default rewrites nothing.
ALTER TABLE jobs ALTER COLUMN pathname SET DEFAULT '';

DO $$
DECLARE
    uuid_attnum smallint;
    owner_attnum smallint;
    duplicate text;
    fk record;
BEGIN
    SELECT attnum INTO STRICT uuid_attnum
    FROM pg_attribute
    WHERE attrelid = 'jobs'::regclass AND attname = 'uuid' AND NOT attisdropped;

    SELECT attnum INTO STRICT owner_attnum
    FROM pg_attribute
    WHERE attrelid = 'jobs'::regclass AND attname = 'owner' AND NOT attisdropped;

    -- Enqueueing is INSERT ... ON CONFLICT (uuid) DO NOTHING, which needs a unique, immediate,
    -- valid index on exactly (uuid), without predicate or expression, as its arbiter. Classic
    -- schemas have one (jobs_uuid_key); add one when an adopted table does not.
    IF NOT EXISTS (
        SELECT FROM pg_index i
        WHERE i.indrelid = 'jobs'::regclass
          AND i.indisunique AND i.indimmediate AND i.indisvalid
          AND i.indnkeyatts = 1 AND i.indkey[0] = uuid_attnum
          AND i.indpred IS NULL AND i.indexprs IS NULL
    ) THEN
        SELECT uuid INTO duplicate FROM jobs GROUP BY uuid HAVING count(*) > 1 LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'jobs.uuid has duplicate values (%, maybe others), so it cannot be made unique: '
                            'resolve them, then migrate again; nothing was changed', quote_literal(duplicate)
                USING HINT = 'SELECT uuid FROM jobs GROUP BY uuid HAVING count(*) > 1';
        END IF;
        CREATE UNIQUE INDEX jobs_uuid_idx ON jobs (uuid);
    END IF;

    -- Deleting a processor never deletes (or alters) a job. The production dump's owner foreign key
    -- is ON DELETE CASCADE: reaping a processor would silently delete its jobs. Replace any owner
    -- foreign key whose delete action is CASCADE, SET NULL or SET DEFAULT by a plain one (NO ACTION)
    -- under the same name. The old constraint guaranteed the rows, so the new one validates; one
    -- that was NOT VALID stays NOT VALID.
    FOR fk IN
        SELECT c.conname, c.convalidated
        FROM pg_constraint c
        WHERE c.conrelid = 'jobs'::regclass AND c.contype = 'f'
          AND c.confrelid = 'processors'::regclass
          AND c.conkey = ARRAY[owner_attnum]
          AND c.confdeltype NOT IN ('a', 'r')
    LOOP
        EXECUTE format('ALTER TABLE jobs DROP CONSTRAINT %I', fk.conname);
        EXECUTE format('ALTER TABLE jobs ADD CONSTRAINT %I FOREIGN KEY (owner) REFERENCES processors (id)%s',
                       fk.conname, CASE WHEN fk.convalidated THEN '' ELSE ' NOT VALID' END);
    END LOOP;

    -- A jobs table without any owner foreign key gets the plain one. Rows whose owner does not exist
    -- are left alone: the constraint is then added NOT VALID (checked for new and changed owners
    -- only) rather than failing the migration.
    IF NOT EXISTS (
        SELECT FROM pg_constraint c
        WHERE c.conrelid = 'jobs'::regclass AND c.contype = 'f'
          AND c.confrelid = 'processors'::regclass
          AND c.conkey = ARRAY[owner_attnum]
    ) THEN
        IF EXISTS (
            SELECT FROM jobs j
            WHERE j.owner IS NOT NULL
              AND NOT EXISTS (SELECT FROM processors p WHERE p.id = j.owner)
        ) THEN
            ALTER TABLE jobs ADD CONSTRAINT jobs_owner_fkey
                FOREIGN KEY (owner) REFERENCES processors (id) NOT VALID;
        ELSE
            ALTER TABLE jobs ADD CONSTRAINT jobs_owner_fkey
                FOREIGN KEY (owner) REFERENCES processors (id);
        END IF;
    END IF;
END
$$;

-- Indexes for the queries the monitor and the processors run. Partial, so that they stay as small
-- as the queue rather than growing with the table's history. The classic indexes of an adopted
-- database (jobs_owner_key, jobs_success_key, ...) are kept.

-- Unfinished jobs per owner: the scheduler's load count, status's pending column, and the
-- dead-processor sweep's reset of a dead processor's unfinished jobs.
CREATE INDEX IF NOT EXISTS jobs_owner_unfinished_idx
    ON jobs (owner) WHERE success IS NULL;

-- A processor's claim query: its own unstarted jobs, oldest queued first.
CREATE INDEX IF NOT EXISTS jobs_owner_queued_idx
    ON jobs (owner, queueddatetime) WHERE starteddatetime IS NULL AND success IS NULL;

-- Cleanup: finished jobs in id (queueing) order, in bounded batches.
CREATE INDEX IF NOT EXISTS jobs_finished_idx
    ON jobs (id) WHERE success IS NOT NULL;

-- The oldest unfinished jobs first: status's oldest queued age (the unstarted among them; started
-- ones are few, a processor's batch at most).
CREATE INDEX IF NOT EXISTS jobs_queueddatetime_unfinished_idx
    ON jobs (queueddatetime) WHERE success IS NULL;
