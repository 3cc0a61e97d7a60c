-- What the audit queue trigger (audit/triggers.py: one audit_auditpending row per new event,
-- per statement from its transition table) costs PostgreSQL: 20,000 single-row event inserts,
-- each its own statement, with the trigger, then with it disabled; both transactions roll back.
-- The second takes an ACCESS EXCLUSIVE lock on the events table while it runs (DISABLE TRIGGER):
-- run it on a benchmark database only, migrated by this tree, never on a live one.
--
--   psql -h 127.0.0.1 -U postgres -d bourse_bench -f bench/audit_queue_trigger.sql | grep Time
--
-- The third and seventh "Time:" lines are the two loops (the difference ÷ 20,000 is the
-- trigger's cost per insert); run it three times and read the last two.
\set inserts 'DO $$ BEGIN FOR i IN 1..20000 LOOP INSERT INTO audit_auditevent (created_at, actor_type, actor_id, actor_label, action, target_type, target_id, account_id, after, outcome, reason, request_id) VALUES (now(), ''apikey'', ''k1'', ''key'', ''order.submitted'', ''trading.order'', i::text, 7, ''{"side":"buy","price":"100.00","quantity":"0.25"}'', ''success'', '''', ''req''); END LOOP; END $$'
\timing on
BEGIN;
CREATE TEMP TABLE warm AS SELECT 1;
:inserts;
ROLLBACK;
BEGIN;
ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_queue;
:inserts;
ROLLBACK;
