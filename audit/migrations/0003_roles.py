"""The console roles as groups: Support (reads everything, changes nothing) and
Operations (Support plus the audited operator actions). Their permissions are set after
every migrate from the map in audit/roles.py (permissions only exist once migrate has
finished, and models that land later must be covered too)."""
from django.db import migrations

ROLE_NAMES = ("Support", "Operations")


def create_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLE_NAMES:
        Group.objects.get_or_create(name=name)


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_NAMES).delete()


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only_guard"), ("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(create_groups, remove_groups)]
