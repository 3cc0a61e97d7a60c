"""Settlement's checks for closed orders still to settle (``market_id = … AND status IN
(closed) AND NOT close_settled``) had no index that stops at them: ``(status, close_settled)``
does not lead with the market, and ``(market, status, sequence)`` holds every closed order of
the market's history (and with no such index the planner reads the table: it cannot know that
closed orders are nearly all settled). ``order_close_due`` holds exactly the orders those
checks look for. On PostgreSQL it is built ``CONCURRENTLY`` (a plain build would hold up every
order insert for as long as it reads the table), hence a migration outside a transaction."""
from django.db import migrations, models
from django.db.models import Q

from exchange.migration_indexes import create_index_concurrently

PREDICATE = "NOT \"close_settled\" AND \"status\" IN ('filled', 'cancelled', 'rejected')"


def forwards(apps, schema_editor):
    concurrently = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
    create_index_concurrently(schema_editor, "order_close_due", "trading_order", f'("market_id") WHERE {PREDICATE}')
    schema_editor.execute(f'DROP INDEX{concurrently} IF EXISTS "order_status_close_settled"')


def backwards(apps, schema_editor):
    concurrently = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
    create_index_concurrently(schema_editor, "order_status_close_settled", "trading_order",
                              '("status", "close_settled")')
    schema_editor.execute(f'DROP INDEX{concurrently} IF EXISTS "order_close_due"')


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("trading", "0011_fk_indexes_covered")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex("order", "order_status_close_settled"),
                migrations.AddIndex("order", models.Index(
                    fields=["market"], condition=Q(close_settled=False, status__in=["filled", "cancelled", "rejected"]),
                    name="order_close_due")),
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        ),
    ]
