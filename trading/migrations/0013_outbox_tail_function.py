"""The FIX report reader's tail read as a PL/pgSQL function planned once per connection.

The reader runs this query after every engine batch. Sent as a prepared statement, its
parameters (the markets' floors, the accounts) made PostgreSQL plan it again on every run:
a custom plan for the values given always looked cheaper than the generic one, and with the
floors as values the planner could not see how few rows lie above them, so the custom plan
read each account's whole history of the markets (a hash join on the floors, or the market
index) — milliseconds per read on a trail of a few thousand events per account, growing with
the retained outbox. The generic plan is the one wanted: for each (account, market) one range
of the ``(account, market, id)`` index above the market's floor (the lateral subquery's
``OFFSET 0`` keeps it from being flattened into a join). A function's ``SET`` clause is the
one way to give one statement its own ``plan_cache_mode``: PL/pgSQL caches the generic plan
for the connection's life.

SQLite has no such function: the reader there filters with the ORM
(``trading.outbox.selectors.account_events_after``)."""
from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION bourse_outbox_tail(markets bigint[], floors bigint[], accounts bigint[], channels text[])
RETURNS TABLE (event_id bigint, event_market_id bigint, event_account_id bigint, event_channel text, event_payload jsonb)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN QUERY
    SELECT e.id, e.market_id, e.account_id, e.channel::text, e.payload
    FROM unnest(markets, floors) AS f(market_id, floor)
    CROSS JOIN unnest(accounts) AS a(account_id)
    CROSS JOIN LATERAL (
        SELECT o.id, o.market_id, o.account_id, o.channel, o.payload
        FROM trading_outboxevent o
        WHERE o.account_id = a.account_id AND o.market_id = f.market_id AND o.id > f.floor
          AND o.channel = ANY(channels)
        OFFSET 0
    ) e
    ORDER BY e.id;
END
$$
"""

DROP = "DROP FUNCTION IF EXISTS bourse_outbox_tail(bigint[], bigint[], bigint[], text[])"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("trading", "0012_order_close_due_index")]
    operations = [migrations.RunPython(forwards, backwards)]
