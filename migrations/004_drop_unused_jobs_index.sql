-- 004_drop_unused_jobs_index: one index fewer to maintain on every insert and owner change.
--
-- jobs_queueddatetime_unfinished_idx (001) was meant for status's oldest queued age, but status
-- counts every job by state in one scan of the table anyway, and no other query orders or filters
-- unfinished jobs by queueddatetime alone. Each queued job and each job moved off a dead processor
-- paid an entry in it: dropping it makes the scanner's inserts and the dead-processor sweep cheaper.
-- Irreversible like 001: no down section.
--
-- Names are unqualified (resolved through search_path) and tern evaluates this file as a Go
-- template: never write a double opening brace here.

DROP INDEX IF EXISTS jobs_queueddatetime_unfinished_idx;
