"""Trades get their per-market number (the public ``trade_id``): existing trades are numbered
1, 2, 3… per market in the order they were written (``id`` order, which is match order)."""
from django.db import migrations, models


def number_trades(apps, schema_editor):
    Trade = apps.get_model("trading", "Trade")
    table = schema_editor.quote_name(Trade._meta.db_table)
    # One statement on both databases (SQLite >= 3.33 has UPDATE ... FROM and window functions).
    schema_editor.execute(
        f"UPDATE {table} SET sequence = numbered.n FROM ("
        f"SELECT id, ROW_NUMBER() OVER (PARTITION BY market_id ORDER BY id) AS n FROM {table}"
        f") AS numbered WHERE {table}.id = numbered.id"
    )


class Migration(migrations.Migration):

    dependencies = [
        ('trading', '0008_order_management'),
    ]

    operations = [
        migrations.AddField(
            model_name='trade',
            name='sequence',
            field=models.BigIntegerField(null=True, help_text='Per-market trade number (the public trade_id).'),
        ),
        migrations.RunPython(number_trades, migrations.RunPython.noop),
    ]
