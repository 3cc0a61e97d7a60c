"""The journal's idempotency key and operator (``created_by``) are set on few journals —
settlement's and the console's — and on no order's hold: their indexes leave NULL out, so
the journal written with every order maintains two indexes fewer. An equality look-up (the
duplicate check, a foreign-key check on the user) implies NOT NULL and still uses them.

The unique constraint keeps its name and its meaning (NULLs never collided); it is dropped and
built again as a partial unique index, in this migration's transaction: on a large journal
that build holds up writes to it for its duration (CHANGELOG.md, Upgrading). The foreign key's
own index is dropped alone (exchange/migration_indexes.py), the constraint left as it is."""
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from exchange.migration_indexes import drop_column_indexes


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0005_fk_indexes_covered'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='journal',
            name='journal_idempotency_key',
        ),
        migrations.AddConstraint(
            model_name='journal',
            constraint=models.UniqueConstraint(condition=models.Q(('idempotency_key__isnull', False)), fields=('idempotency_key',), name='journal_idempotency_key'),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='journal',
                    name='created_by',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
                ),
            ],
            database_operations=[
                drop_column_indexes("accounts_journal", {"created_by_id": False}),
            ],
        ),
        migrations.AddIndex(
            model_name='journal',
            index=models.Index(condition=models.Q(('created_by__isnull', False)), fields=['created_by'], name='journal_created_by'),
        ),
    ]
