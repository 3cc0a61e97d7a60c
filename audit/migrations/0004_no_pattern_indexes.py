"""``action`` and ``request_id`` keep one plain index each instead of ``db_index``'s pair.

On PostgreSQL, ``db_index`` on a CharField also builds a ``varchar_pattern_ops`` index for
LIKE, which no query of Bourse runs on this table; both copies were written by every order's
audit insert and again by its seal. The plain indexes are renamed in place (no rebuild: an
index build on a large audit table would hold up every audited write) and the pattern copies
dropped. SQLite has no pattern copy; its indexes are recreated under the new names (the
embedded mode's tables are small)."""
from django.db import migrations, models

from exchange.migration_indexes import rename_column_index


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_roles")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField("auditevent", "action", models.CharField(max_length=64)),
                migrations.AlterField("auditevent", "request_id", models.CharField(blank=True, max_length=128)),
                migrations.AddIndex("auditevent", models.Index(fields=["action"], name="audit_action")),
                migrations.AddIndex("auditevent", models.Index(fields=["request_id"], name="audit_request_id")),
            ],
            database_operations=[
                rename_column_index("audit_auditevent", "action", "audit_action"),
                rename_column_index("audit_auditevent", "request_id", "audit_request_id"),
            ],
        ),
    ]
