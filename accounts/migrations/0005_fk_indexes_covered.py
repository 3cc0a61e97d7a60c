"""The ledger entry's account and asset keys lose their own indexes: entry_account_asset_id leads
with both, and every entry (two per order's hold, more per trade) wrote all three. Only the
indexes are dropped (exchange/migration_indexes.py): the constraints stay as they are."""
import django.db.models.deletion
from django.db import migrations, models

from exchange.migration_indexes import drop_column_indexes


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_no_pattern_indexes'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='ledgerentry',
                    name='account',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='entries', to='accounts.account'),
                ),
                migrations.AlterField(
                    model_name='ledgerentry',
                    name='asset',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='entries', to='accounts.asset'),
                ),
            ],
            database_operations=[
                drop_column_indexes("accounts_ledgerentry", {"account_id": False, "asset_id": True}),
            ],
        ),
    ]
