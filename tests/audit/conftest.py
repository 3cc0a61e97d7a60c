"""Console users in each role, logged in."""
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

PASSWORD = "pw-for-tests-only-7f3"


def _staff(username: str, group: str | None = None, superuser: bool = False):
    User = get_user_model()
    if superuser:
        user = User.objects.create_superuser(username, f"{username}@example.com", PASSWORD)
    else:
        user = User.objects.create_user(username, f"{username}@example.com", PASSWORD, is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def support_user(db):
    return _staff("sam-support", "Support")


@pytest.fixture
def operations_user(db):
    return _staff("olga-ops", "Operations")


@pytest.fixture
def superuser(db):
    return _staff("root-op", superuser=True)


@pytest.fixture
def support_client(support_user):
    return _client(support_user)


@pytest.fixture
def operations_client(operations_user):
    return _client(operations_user)


@pytest.fixture
def super_client(superuser):
    return _client(superuser)
