"""The system accounts every ledger needs: ``external`` (the world outside; deposits come
from it, withdrawals go to it) and ``fees`` (fees collected)."""
from django.db import migrations


def create_system_accounts(apps, schema_editor):
    Account = apps.get_model("accounts", "Account")
    for role, name in (("external", "External"), ("fees", "Fees")):
        Account.objects.get_or_create(system_role=role, defaults={"name": name, "kind": "system"})


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunPython(create_system_accounts, migrations.RunPython.noop)]
