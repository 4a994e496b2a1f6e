-- 005_processor_state: the liveness rule, defined once for every statement that judges a processor.
--
-- A processor is live when its lastseendatetime is within processorCheckInTime of the database's
-- localtimestamp (it gets new work), stale when it is within twice that (it keeps its jobs, gets
-- nothing new), and dead otherwise, a NULL lastseendatetime included (its jobs move to live
-- processors). The monitor's statements call this function with processorCheckInTime as an
-- interval parameter instead of each spelling the comparisons out. It is a single SQL expression,
-- STABLE (localtimestamp is fixed within a statement), so the planner inlines it into each query.
-- Additive: a classic schema gains a function and nothing else.
--
-- Names are unqualified (resolved through search_path) and tern evaluates this file as a Go
-- template: never write a double opening brace here.

CREATE OR REPLACE FUNCTION monitor_processor_state(last_seen timestamp, check_in interval)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN last_seen >= localtimestamp - check_in THEN 'live'
                WHEN last_seen >= localtimestamp - 2 * check_in THEN 'stale'
                ELSE 'dead'
           END
$$;
