-- A classic Socorro jobs schema, as the production dump (sql/socorro.sql, 2009) and
-- socorro/database/schema.py left it, in the variant hardest to adopt:
--   * processors.name has only a plain index (idx_processor_name, as in the production dump),
--     not the UNIQUE constraint schema.py declares, so duplicate names can exist;
--   * jobs.owner references processors ON DELETE CASCADE (production dump), so deleting a
--     processor deletes its jobs;
--   * jobs.pathname is NOT NULL without a default;
--   * the jobs indexes carry the classic names (JobsTable and updateDatabase in schema.py).
-- Names are unqualified: load it with search_path set to the schema under test.

CREATE TABLE processors (
    id serial NOT NULL,
    name character varying(255) NOT NULL,
    startdatetime timestamp without time zone NOT NULL,
    lastseendatetime timestamp without time zone
);

ALTER TABLE ONLY processors
    ADD CONSTRAINT processors_pkey PRIMARY KEY (id);

CREATE INDEX idx_processor_name ON processors USING btree (name);

CREATE TABLE jobs (
    id serial NOT NULL,
    pathname character varying(1024) NOT NULL,
    uuid character varying(50) NOT NULL,
    owner integer,
    priority integer DEFAULT 0,
    queueddatetime timestamp without time zone,
    starteddatetime timestamp without time zone,
    completeddatetime timestamp without time zone,
    success boolean,
    message text
);

ALTER TABLE ONLY jobs
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY jobs
    ADD CONSTRAINT jobs_uuid_key UNIQUE (uuid);

ALTER TABLE ONLY jobs
    ADD CONSTRAINT jobs_owner_fkey FOREIGN KEY (owner) REFERENCES processors(id) ON DELETE CASCADE;

CREATE INDEX jobs_owner_key ON jobs USING btree (owner);
CREATE INDEX jobs_owner_starteddatetime_key ON jobs USING btree (owner, starteddatetime);
CREATE INDEX jobs_owner_starteddatetime_priority_key ON jobs USING btree (owner, starteddatetime, priority DESC);
CREATE INDEX jobs_completeddatetime_queueddatetime_key ON jobs USING btree (completeddatetime, queueddatetime);
CREATE INDEX jobs_success_key ON jobs USING btree (success);

CREATE TABLE priorityjobs (
    uuid character varying(255) NOT NULL
);

ALTER TABLE ONLY priorityjobs
    ADD CONSTRAINT priorityjobs_pkey PRIMARY KEY (uuid);
