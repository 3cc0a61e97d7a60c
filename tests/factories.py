"""factory_boy factories shared by the test suite."""
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from accounts.models import Account, Asset
from trading.models import Market


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")


class AssetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Asset
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"A{n:03d}")
    scale = 8


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    owner = factory.SubFactory(UserFactory)
    name = factory.LazyAttribute(lambda o: o.owner.username)
    kind = Account.Kind.TRADER


class MarketFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Market
        django_get_or_create = ("symbol",)

    base = factory.SubFactory(AssetFactory, code="BTC", scale=8)
    quote = factory.SubFactory(AssetFactory, code="USD", scale=6)
    symbol = factory.LazyAttribute(lambda o: f"{o.base.code}-{o.quote.code}")
    tick_size = Decimal("0.01")
    lot_size = Decimal("0.0001")
    min_quantity = Decimal("0.0001")
    min_notional = Decimal("1")
    maker_fee_rate = Decimal("0.001")
    taker_fee_rate = Decimal("0.002")


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """An API key made through ``apikey_create``; the one-time credential is kept on the
    instance as ``secret`` (HMAC) or ``private_key`` (Ed25519) for signing in tests."""

    class Meta:
        model = "apikeys.ApiKey"

    account = factory.SubFactory(AccountFactory)
    scheme = "hmac"
    scopes = ("read", "trade")
    label = "test key"
    ip_allowlist = ()
    expires_at = None

    @classmethod
    def _create(cls, model_class, **kwargs):
        from apikeys.services import apikey_create

        created = apikey_create(**kwargs)
        created.key.secret = created.secret
        created.key.private_key = created.private_key
        return created.key
