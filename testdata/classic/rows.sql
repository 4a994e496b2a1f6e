-- Rows for testdata/classic/schema.sql, as a running classic system leaves them: a live
-- processor, one that stopped cleanly (lastseendatetime 1999-01-01), one that never checked in,
-- and one that shares its name with another (the plain name index allows it); jobs queued,
-- started, succeeded and failed, with and without pathname and message; pending reporter
-- requests; and the live processor's priority_jobs_1 table with an id the monitor sent it.

INSERT INTO processors (id, name, startdatetime, lastseendatetime) VALUES
    (1, 'processor1.example.com_2318', '2010-04-30 07:12:01.482133', '2010-05-01 09:31:44.019271'),
    (2, 'processor2.example.com_990', '2010-04-28 22:00:00', '1999-01-01 00:00:00'),
    (3, 'processor3.example.com_4711', '2010-05-01 09:30:00', NULL),
    (4, 'processor1.example.com_2318', '2010-03-02 11:45:09', '2010-03-02 12:02:13.5');

SELECT setval('processors_id_seq', 4);

INSERT INTO jobs (id, pathname, uuid, owner, priority, queueddatetime, starteddatetime, completeddatetime, success, message) VALUES
    (1, '', '0bba61c5-dfc3-43e7-87e6-8afda3100501', 1, 0, '2010-05-01 09:01:02.123456', NULL, NULL, NULL, NULL),
    (2, '', '0bba929f-8721-460c-8e70-a43c92100501', 1, 1, '2010-05-01 09:02:03', '2010-05-01 09:02:04', NULL, NULL, NULL),
    (3, '', '0bc9f1bd-6a2e-4a1c-9b1e-55a4b2100501', 1, 0, '2010-05-01 09:03:04', '2010-05-01 09:03:05', '2010-05-01 09:03:09', true, NULL),
    (4, '', '0bd00e6b-3c4f-4e51-a2a3-3b0c22100501', 2, 0, '2010-05-01 09:04:05', '2010-05-01 09:04:06', '2010-05-01 09:04:07', false,
        'processor2.example.com_990: no dump file; cannot process; ''quoted'' twice'),
    (5, '/mnt/socorro/toBeProcessed/20100430/name/0b/e1/0be1b3a2-1d6e-4c1f-8e07-9c1b42100430.json',
        '0be1b3a2-1d6e-4c1f-8e07-9c1b42100430', 2, 0, '2010-04-30 23:59:59.999999', NULL, NULL, NULL, NULL),
    (6, '', '0bf2c4d5-2e7f-4d20-9f18-ad2c53100501', 3, 1, '2010-05-01 09:30:01', NULL, NULL, NULL, NULL),
    (7, '', '0c03d5e6-3f80-4e31-a029-be3d64100501', 4, 0, NULL, NULL, NULL, NULL, NULL),
    (8, '', 'not-an-ooid', 1, 0, '2010-05-01 09:31:00', NULL, '2010-05-01 09:31:30', false, '');

SELECT setval('jobs_id_seq', 8);

INSERT INTO priorityjobs (uuid) VALUES
    ('0bba61c5-dfc3-43e7-87e6-8afda3100501'),
    ('0c14e6f7-4091-4f42-b13a-cf4e75100501'),
    ('a reporter''s id the monitor never validated');

CREATE TABLE priority_jobs_1 (
    uuid character varying(50) NOT NULL PRIMARY KEY
);

INSERT INTO priority_jobs_1 (uuid) VALUES ('0bba929f-8721-460c-8e70-a43c92100501');
