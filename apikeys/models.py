"""API keys: who may call the private API, how their requests are signed, and from where.

A key belongs to one trading account. Its ``key_id`` is public (sent as ``X-API-Key``);
what proves possession is either an HMAC secret, stored only encrypted (``secret_encrypted``,
MultiFernet over ``settings.BOURSE_ENCRYPTION_KEYS``) and shown to its owner once, or an
Ed25519 public key whose private half never reaches the server.
"""
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Account


class Scope(models.TextChoices):
    READ = "read", "Read (account, balances, ledger, orders, fills)"
    TRADE = "trade", "Trade (submit and cancel orders)"


class ApiKey(models.Model):
    class Scheme(models.TextChoices):
        HMAC = "hmac", "HMAC-SHA256 (shared secret)"
        ED25519 = "ed25519", "Ed25519 (client-held private key)"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"

    key_id = models.CharField(max_length=40, unique=True, editable=False)
    label = models.CharField(max_length=100, blank=True)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="api_keys")
    scheme = models.CharField(max_length=8, choices=Scheme.choices)
    secret_encrypted = models.BinaryField(null=True, blank=True, editable=False)
    public_key = models.CharField(max_length=64, blank=True, help_text="Ed25519: base64 of the 32-byte public key.")
    scopes = models.JSONField(default=list, help_text="Subset of read, trade.")
    ip_allowlist = models.JSONField(default=list, blank=True, help_text="CIDRs; empty allows any address.")
    expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "API key"
        # Revoking is an operator action of its own, separate from editing a key's settings.
        permissions = [("revoke_apikey", "Can revoke API keys")]
        constraints = [
            models.CheckConstraint(
                condition=(Q(scheme="hmac") & Q(secret_encrypted__isnull=False) & Q(public_key=""))
                | (Q(scheme="ed25519") & Q(secret_encrypted__isnull=True) & ~Q(public_key="")),
                name="apikey_credential_matches_scheme",
            ),
            models.CheckConstraint(
                condition=(Q(status="revoked") & Q(revoked_at__isnull=False))
                | (Q(status="active") & Q(revoked_at__isnull=True)),
                name="apikey_revoked_at_iff_revoked",
            ),
        ]

    def __str__(self):
        return f"{self.key_id} ({self.label or self.account})"

    @property
    def audit_target_id(self) -> str:
        """Audit events about a key name it by its public key id (what a customer quotes),
        the same as authentication failures claiming it do."""
        return self.key_id

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes
