-- 006_priority_requested_at: when each priority request was made, for the priority latency figure.
--
-- The reporter inserts only the uuid (INSERT INTO priorityjobs (uuid) VALUES (...)), so the column
-- has a default and the reporter's statement keeps working unchanged. Rows already in an adopted
-- classic table get the time of this migration (PostgreSQL stores the default once, without
-- rewriting the table). timestamptz, unlike the classic columns, so the latency needs no agreement
-- on the session time zone. Additive: nothing else changes.
--
-- Names are unqualified (resolved through search_path) and tern evaluates this file as a Go
-- template: never write a double opening brace here.

ALTER TABLE priorityjobs ADD COLUMN IF NOT EXISTS requested_at timestamptz NOT NULL DEFAULT now();
