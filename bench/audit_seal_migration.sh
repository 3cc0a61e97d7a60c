#!/usr/bin/env bash
# Migration audit/0005 (the seal moves out of the event into a table of its own) on a large
# trail: how long it runs, and how long an audited insert waits meanwhile (the migration's
# first step, dropping the old guard trigger, locks the events table until it commits).
#
# usage: bench/audit_seal_migration.sh BEFORE_REV [EVENTS]
#   BEFORE_REV: a commit whose audit app ends at 0004 (e.g. 323ff32); EVENTS: default 1000000
#
# Builds the trail in database bourse_seal_migration (dropped and created) with BEFORE_REV's
# schema: EVENTS sealed events (placeholder hashes: the migration copies seals, it does not
# check them) and 1,000 unsealed ones, VACUUM ANALYZE; then runs this tree's
# `manage.py migrate audit 0005` while a writer inserts one event at a time (autocommit) and
# prints the migration's wall time and the writer's longest insert beside its median.
set -euo pipefail
rev=$1
events=${2:-1000000}
root=$(cd "$(dirname "$0")/.." && pwd)
py=$root/.venv/bin/python
db=bourse_seal_migration
work=$(mktemp -d)
git -C "$root" worktree add -q --detach "$work/tree" "$rev"
trap 'git -C "$root" worktree remove --force "$work/tree"; rm -rf "$work"' EXIT

dropdb -h 127.0.0.1 -U postgres --if-exists "$db"
createdb -h 127.0.0.1 -U postgres "$db"
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db BOURSE_ALLOW_GENERATED_SECRETS=1 \
    BOURSE_DATA_DIR=$work/data LOG_LEVEL=WARNING
(cd "$work/tree" && "$py" manage.py migrate -v0)
psql -q -h 127.0.0.1 -U postgres -d "$db" -v ON_ERROR_STOP=1 <<SQL
INSERT INTO audit_auditevent (created_at, actor_type, actor_id, actor_label, action, target_type, target_id,
    account_id, after, outcome, reason, request_id, seq, prev_hash, hash, sealed_at)
SELECT now(), 'system', '', '', 'order.submitted', 'trading.order', n::text, n % 1000,
    jsonb_build_object('price', '100.00', 'quantity', '0.5', 'n', n), 'success', '', 'r-' || n,
    n, repeat('0', 64), repeat('a', 64), now()
FROM generate_series(1, $events) AS n;
INSERT INTO audit_auditevent (created_at, actor_type, actor_id, actor_label, action, target_type, target_id,
    outcome, reason, request_id)
SELECT now(), 'system', '', '', 'order.submitted', 'trading.order', n::text, 'success', '', ''
FROM generate_series(1, 1000) AS n;
VACUUM ANALYZE audit_auditevent;
SQL
echo "trail: $(psql -At -h 127.0.0.1 -U postgres -d "$db" -c 'SELECT count(*) FROM audit_auditevent') events; load $(cut -d' ' -f1-3 /proc/loadavg)"

"$py" - "$DATABASE_URL" "$work/stop" > "$work/writer.txt" <<'PY' &
import os, statistics, sys, time
import psycopg
connection = psycopg.connect(sys.argv[1], autocommit=True)
waits = []
while not os.path.exists(sys.argv[2]):
    started = time.perf_counter()
    connection.execute(
        "INSERT INTO audit_auditevent (created_at, actor_type, actor_id, actor_label, action, target_type, "
        "target_id, outcome, reason, request_id) VALUES (now(), 'system', '', '', 'market.created', "
        "'trading.market', '1', 'success', '', 'writer')")
    waits.append(time.perf_counter() - started)
    time.sleep(0.01)
print(f"writer: {len(waits)} inserts, median {statistics.median(waits) * 1000:.2f} ms, "
      f"longest {max(waits) * 1000:.0f} ms")
PY
writer=$!
sleep 1
started=$(date +%s.%N)
(cd "$root" && "$py" manage.py migrate audit 0005 -v0)
ended=$(date +%s.%N)
sleep 1
touch "$work/stop"
wait "$writer"
echo "migrate audit 0005: $(echo "$ended - $started" | bc) s for $events sealed events (load $(cut -d' ' -f1-3 /proc/loadavg))"
cat "$work/writer.txt"
psql -At -h 127.0.0.1 -U postgres -d "$db" -c \
    "SELECT 'after: ' || (SELECT count(*) FROM audit_auditseal) || ' seals, ' || (SELECT count(*) FROM audit_auditpending) || ' queued'"
