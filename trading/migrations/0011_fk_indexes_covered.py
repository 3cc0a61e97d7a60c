"""Foreign keys whose own index repeated a composite index leading with the same column, or that
nothing looks rows up by (the hold and fee assets), lose it: each was written with every order,
trade, fill and outbox row, and again by every update that is not HOT. Only the indexes are
dropped (exchange/migration_indexes.py): the constraints stay as they are."""
import django.db.models.deletion
from django.db import migrations, models

from exchange.migration_indexes import drop_column_indexes


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0005_fk_indexes_covered'),
        ('trading', '0010_trade_sequence_candles'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='fill',
                    name='account',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='fills', to='accounts.account'),
                ),
                migrations.AlterField(
                    model_name='fill',
                    name='fee_asset',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='accounts.asset'),
                ),
                migrations.AlterField(
                    model_name='fill',
                    name='trade',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='fills', to='trading.trade'),
                ),
                migrations.AlterField(
                    model_name='order',
                    name='account',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='orders', to='accounts.account'),
                ),
                migrations.AlterField(
                    model_name='order',
                    name='hold_asset',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='accounts.asset'),
                ),
                migrations.AlterField(
                    model_name='order',
                    name='market',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='orders', to='trading.market'),
                ),
                migrations.AlterField(
                    model_name='outboxevent',
                    name='account',
                    field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='accounts.account'),
                ),
                migrations.AlterField(
                    model_name='trade',
                    name='market',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='trades', to='trading.market'),
                ),
            ],
            database_operations=[
                drop_column_indexes("trading_order", {"account_id": False, "market_id": False, "hold_asset_id": True}),
                drop_column_indexes("trading_trade", {"market_id": False}),
                drop_column_indexes("trading_fill", {"trade_id": False, "account_id": False, "fee_asset_id": True}),
                drop_column_indexes("trading_outboxevent", {"account_id": False}),
            ],
        ),
    ]
