"""Make audit rows append-only in the database itself: a trigger refuses every UPDATE
except the sealer's one-time write of the seal columns, and every DELETE (PostgreSQL:
PL/pgSQL; SQLite: RAISE(ABORT)). The SQL is in audit/triggers.py."""
from django.db import migrations


def install(apps, schema_editor):
    from audit import triggers

    triggers.install(schema_editor.connection)


def uninstall(apps, schema_editor):
    from audit import triggers

    triggers.uninstall(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(install, uninstall)]
