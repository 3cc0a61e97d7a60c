"""Make audit rows append-only in the database itself: a trigger refuses every UPDATE
except the sealer's one-time write of the seal columns, and every DELETE (PostgreSQL:
PL/pgSQL; SQLite: RAISE(ABORT)). The SQL is frozen in ``_guard_v1``; migration 0005
replaces this guard with ``audit.triggers``."""
from django.db import migrations

from . import _guard_v1


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(_guard_v1.install, _guard_v1.uninstall)]
