"""Assets, trading accounts, balances and the double-entry ledger.

Every movement of money is a ``Journal`` of ``LedgerEntry`` rows whose amounts sum to zero
per asset. A ``Balance`` row is the running total of an account's entries in one asset,
split into ``available`` and ``locked`` buckets; the database refuses either going
negative. The system ``external`` account stands for the world outside the exchange
(deposits come from it, withdrawals go to it); it has entries but no balance rows, since
its position is by nature negative.
"""
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from exchange import errors

# One scale for every money column; assets restrict further with their own ``scale``.
MONEY_DIGITS = 38
MONEY_PLACES = 18
MONEY_INTEGER_DIGITS = MONEY_DIGITS - MONEY_PLACES  # what numeric(38, 18) holds left of the point
# SQLite keeps a non-integer NUMERIC as a 64-bit float, and Django reads it back rounded to
# 15 significant digits: beyond that a value would come back different (or not at all).
SQLITE_EXACT_DIGITS = 15
# Market bounds leave this many digits of room above the largest order, so that balances
# summing many maximal orders still fit the column.
BOUND_HEADROOM_DIGITS = 3


def money_exact_digits(vendor: str | None = None) -> int:
    """How many significant digits a money column stores exactly in this configuration."""
    from django.db import connection

    return SQLITE_EXACT_DIGITS if (vendor or connection.vendor) == "sqlite" else MONEY_DIGITS


def money_storable(value: Decimal, vendor: str | None = None) -> bool:
    """Whether ``value`` survives a write and a read of a money column unchanged."""
    if not value.is_finite():
        return False
    _, written, places = value.as_tuple()
    assert isinstance(places, int)  # finite, checked above
    if places >= -MONEY_PLACES and len(written) + places <= MONEY_INTEGER_DIGITS and len(written) <= SQLITE_EXACT_DIGITS:
        return True  # within every configuration's bounds as written (normalising only drops digits)
    if value == 0:
        return True
    normal = value.normalize()
    sign, digits, exponent = normal.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above: not 'n', 'N' or 'F'
    if normal.adjusted() >= MONEY_INTEGER_DIGITS or exponent < -MONEY_PLACES:
        return False
    return len(digits) <= money_exact_digits(vendor)


def money_bound(scale: int, vendor: str | None = None) -> Decimal:
    """The default bound for one order's amount of an asset with ``scale`` decimals: every
    amount below it, and a thousand times it, stays exact in the money columns."""
    integer_digits = min(MONEY_INTEGER_DIGITS, money_exact_digits(vendor) - scale)
    return Decimal(10) ** max(0, integer_digits - BOUND_HEADROOM_DIGITS)


class MoneyNotStorable(errors.ValidationError):
    """A money value the database cannot store exactly (raised before the write, so nothing
    rounded is ever kept): a 400 ``validation_error`` with field code ``not_storable``."""

    def __init__(self, value: Decimal, field: str):
        self.value = value
        message = (
            f"{field} {value} cannot be stored exactly (at most {money_exact_digits()} significant digits "
            f"and {MONEY_INTEGER_DIGITS} before the point in this configuration)"
        )
        super().__init__(message, errors=[{"field": field, "code": "not_storable", "message": message}])


class _MoneyField(models.DecimalField):
    """A ``DecimalField`` that refuses, before writing, a value it could not read back exactly
    (embedded SQLite would otherwise keep a rounded float that can never be read back)."""

    def get_db_prep_save(self, value, connection):
        if isinstance(value, Decimal) and not money_storable(value, connection.vendor):
            raise MoneyNotStorable(value, self.name)
        return super().get_db_prep_save(value, connection)

    def deconstruct(self):  # migrations see a plain DecimalField, as before
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.DecimalField", args, kwargs


def MoneyField(**kwargs):  # noqa: N802 - reads like a field class at the call site
    return _MoneyField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, **kwargs)


class Asset(models.Model):
    code = models.CharField(
        max_length=16,
        primary_key=True,
        validators=[RegexValidator(r"\A[A-Z][A-Z0-9]{1,15}\Z", "Asset codes are 2-16 of A-Z and 0-9.")],
    )
    name = models.CharField(max_length=64, blank=True)
    scale = models.PositiveSmallIntegerField(
        validators=[MaxValueValidator(MONEY_PLACES)],
        help_text="Number of decimal places amounts of this asset may carry.",
    )

    class Meta:
        ordering = ["code"]
        constraints = [models.CheckConstraint(condition=Q(scale__lte=MONEY_PLACES), name="asset_scale_max")]

    def __str__(self):
        return self.code

    @property
    def quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.scale)


class Account(models.Model):
    class Kind(models.TextChoices):
        TRADER = "trader", "Trader"
        SYSTEM = "system", "System"

    class SystemRole(models.TextChoices):
        EXTERNAL = "external", "External (the world outside)"
        FEES = "fees", "Fees collected"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="trading_accounts"
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.TRADER)
    system_role = models.CharField(max_length=10, choices=SystemRole.choices, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="system") & Q(system_role__isnull=False))
                | (Q(kind="trader") & Q(system_role__isnull=True)),
                name="account_system_role_iff_system",
            )
        ]

    def __str__(self):
        return f"{self.name} (#{self.pk})"

    @property
    def has_balances(self) -> bool:
        return self.system_role != self.SystemRole.EXTERNAL


class Balance(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="balances")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="balances")
    available = MoneyField(default=Decimal(0))
    locked = MoneyField(default=Decimal(0))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account_id", "asset_id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "asset"], name="balance_one_per_account_asset"),
            models.CheckConstraint(condition=Q(available__gte=0), name="balance_available_not_negative"),
            models.CheckConstraint(condition=Q(locked__gte=0), name="balance_locked_not_negative"),
        ]

    def __str__(self):
        return f"{self.account_id}/{self.asset_id}"

    @property
    def total(self) -> Decimal:
        return self.available + self.locked


class EntryKind(models.TextChoices):
    DEPOSIT = "deposit", "Deposit"
    WITHDRAWAL = "withdrawal", "Withdrawal"
    HOLD = "hold", "Hold"
    RELEASE = "release", "Release"
    TRADE = "trade", "Trade"
    FEE = "fee", "Fee"
    ADJUSTMENT = "adjustment", "Adjustment"


class Bucket(models.TextChoices):
    AVAILABLE = "available", "Available"
    LOCKED = "locked", "Locked"


class Journal(models.Model):
    """One balanced movement of money: the unit the ledger is written in."""

    kind = models.CharField(max_length=12, choices=EntryKind.choices)
    reference = models.CharField(max_length=100, blank=True)
    reason = models.TextField(blank=True)
    # Makes posting idempotent where the caller needs exactly-once (e.g. settling a fill):
    # the database, not a check-then-write, refuses a second journal with the same key
    # (the constraint ``journal_idempotency_key``).
    idempotency_key = models.CharField(max_length=100, null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        # Written for every order (its hold), trade and close. ``db_index``/``unique`` on a
        # CharField add a ``varchar_pattern_ops`` copy on PostgreSQL that nothing here reads
        # (no LIKE on these columns): an index and a constraint instead (migration 0004).
        # The key and the operator who posted are set on few journals (settlement's, the
        # console's adjustments), not on an order's hold: their indexes leave NULL out, so the
        # hold's journal writes neither (an equality look-up implies NOT NULL: still used).
        indexes = [
            models.Index(fields=["reference"], name="journal_reference"),
            models.Index(fields=["created_by"], name="journal_created_by", condition=Q(created_by__isnull=False)),
        ]
        constraints = [models.UniqueConstraint(fields=["idempotency_key"], name="journal_idempotency_key",
                                               condition=Q(idempotency_key__isnull=False))]

    def __str__(self):
        return f"{self.kind} #{self.pk} {self.reference}"


class LedgerEntry(models.Model):
    journal = models.ForeignKey(Journal, on_delete=models.PROTECT, related_name="entries")
    # entry_account_asset_id leads with both: no index of their own (db_index=False).
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries", db_index=False)
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="entries", db_index=False)
    bucket = models.CharField(max_length=9, choices=Bucket.choices)
    kind = models.CharField(max_length=12, choices=EntryKind.choices)
    amount = MoneyField(help_text="Signed: positive credits the bucket, negative debits it.")
    reference = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["account", "asset", "id"], name="entry_account_asset_id")]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="entry_amount_not_zero")]

    def __str__(self):
        return f"{self.kind} {self.amount} {self.asset_id} ({self.bucket}) acct {self.account_id}"
