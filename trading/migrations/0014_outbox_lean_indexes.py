"""The outbox's indexes hold only the rows their readers look for: every event is written
with each index it enters, and the outbox takes several events per order.

- ``outbox_account_id`` and ``outbox_account_market_id`` (an account's events; the FIX
  reader's tail) leave out public market data (no account): every look-up names an account,
  which implies NOT NULL, so both are still used (the tail function's generic plan too).
- The market's foreign-key index becomes ``outbox_public_market_id`` (market, id), public
  events only: what the relays re-read by market. Private events are found by account.
- ``outbox_created_at`` goes: retention finds old events by id (``outbox_prune``).

On a large outbox the two rebuilt indexes are built in this migration's transaction, holding
up event writes meanwhile (CHANGELOG.md, Upgrading)."""
import django.db.models.deletion
from django.db import migrations, models

from exchange.migration_indexes import drop_column_indexes


class Migration(migrations.Migration):

    dependencies = [
        ('trading', '0013_outbox_tail_function'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='outboxevent',
            name='outbox_account_id',
        ),
        migrations.RemoveIndex(
            model_name='outboxevent',
            name='outbox_created_at',
        ),
        migrations.RemoveIndex(
            model_name='outboxevent',
            name='outbox_account_market_id',
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='outboxevent',
                    name='market',
                    field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='trading.market'),
                ),
            ],
            database_operations=[
                drop_column_indexes("trading_outboxevent", {"market_id": False}),
            ],
        ),
        migrations.AddIndex(
            model_name='outboxevent',
            index=models.Index(condition=models.Q(('account__isnull', False)), fields=['account', 'id'], name='outbox_account_id'),
        ),
        migrations.AddIndex(
            model_name='outboxevent',
            index=models.Index(condition=models.Q(('account__isnull', False)), fields=['account', 'market', 'id'], name='outbox_account_market_id'),
        ),
        migrations.AddIndex(
            model_name='outboxevent',
            index=models.Index(condition=models.Q(('account__isnull', True)), fields=['market', 'id'], name='outbox_public_market_id'),
        ),
    ]
