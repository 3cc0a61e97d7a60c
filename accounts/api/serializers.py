"""Wire representations of accounts, balances and ledger entries (output side)."""
from rest_framework import serializers

from exchange import wire


class ApiKeyInfoSerializer(serializers.Serializer):
    key_id = serializers.CharField()
    label = serializers.CharField()
    scheme = serializers.ChoiceField(choices=["hmac", "ed25519"])
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=["read", "trade"]))
    ip_allowlist = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.SerializerMethodField()
    created_at = serializers.SerializerMethodField()

    def get_expires_at(self, key) -> str | None:
        return wire.timestamp(key.expires_at)

    def get_created_at(self, key) -> str:
        return wire.timestamp(key.created_at)


class AccountSerializer(serializers.Serializer):
    account_id = serializers.SerializerMethodField()
    name = serializers.CharField()
    created_at = serializers.SerializerMethodField()
    api_key = serializers.SerializerMethodField()

    def get_account_id(self, account) -> str:
        return str(account.pk)

    def get_created_at(self, account) -> str:
        return wire.timestamp(account.created_at)

    def get_api_key(self, account) -> ApiKeyInfoSerializer:
        return ApiKeyInfoSerializer(self.context["key"]).data


class BalanceSerializer(serializers.Serializer):
    asset = serializers.CharField(source="asset.code")
    total = serializers.SerializerMethodField()
    available = serializers.SerializerMethodField()
    locked = serializers.SerializerMethodField()

    def get_total(self, row) -> str:
        return wire.money(row.total, row.asset.scale)

    def get_available(self, row) -> str:
        return wire.money(row.available, row.asset.scale)

    def get_locked(self, row) -> str:
        return wire.money(row.locked, row.asset.scale)


class LedgerEntrySerializer(serializers.Serializer):
    entry_id = serializers.SerializerMethodField()
    journal_id = serializers.SerializerMethodField()
    asset = serializers.CharField(source="asset_id")
    bucket = serializers.ChoiceField(choices=["available", "locked"])
    kind = serializers.ChoiceField(choices=["deposit", "withdrawal", "hold", "release", "trade", "fee", "adjustment"])
    amount = serializers.SerializerMethodField(help_text="Signed: positive credits the bucket, negative debits it.")
    reference = serializers.CharField()
    created_at = serializers.SerializerMethodField()

    def get_entry_id(self, entry) -> str:
        return str(entry.pk)

    def get_journal_id(self, entry) -> str:
        return str(entry.journal_id)

    def get_amount(self, entry) -> str:
        return wire.money(entry.amount, entry.asset.scale)

    def get_created_at(self, entry) -> str:
        return wire.timestamp(entry.created_at)
