"""``seed_demo``: the embedded mode's demo market, demo traders and operator login.

Idempotent. Credentials (operator password, each trader's API key id and secret) are
generated on the first run, kept (mode 0600) in the data folder and printed on every run,
so ``make run`` always shows how to get in.
"""
import json
import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts import services as accounts_services
from accounts.models import Account
from apikeys import replay
from apikeys.services import apikey_create
from trading.services import market_create

DEMO_MARKET: dict[str, Any] = {
    "symbol": "BTC-USD",
    "tick_size": "0.01",
    "lot_size": "0.0001",
    "min_notional": "1",
    "maker_fee_rate": "0.001",
    "taker_fee_rate": "0.002",
    "base_scale": 8,
    "quote_scale": 6,
}
DEMO_TRADERS = {"alice": {"USD": "1000000.00", "BTC": "100"}, "bob": {"USD": "1000000.00", "BTC": "100"}}


class Command(BaseCommand):
    help = "Create the demo market, demo traders and an operator login (idempotent); print credentials."

    def handle(self, *args, **opts):
        if not settings.REDIS_URL:
            # The embedded replay store is a file on disk that no restart empties: a new one lost
            # nothing, so the first demo request is not refused as possibly replayed.
            replay.mark_new_store_fresh()
        path = settings.DATA_DIR / "demo-credentials.json"
        credentials = json.loads(path.read_text()) if path.exists() else {}
        market, created = market_create(**DEMO_MARKET)
        self._step(f"market {market.symbol} {'created' if created else 'present'}")
        if "admin" not in credentials:
            credentials["admin"] = self._admin()
            self._step("operator login created")
        for name, funds in DEMO_TRADERS.items():
            if name not in credentials:
                credentials[name] = self._trader(name, funds)
                self._step(f"trader {name} created and funded")
            if "key_id" not in credentials[name]:
                credentials[name].update(self._api_key(credentials[name]["account_id"]))
                self._step(f"API key for {name} created")
        self._step("done")
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(credentials, fh, indent=2)
        self._print(market, credentials)

    def _step(self, text: str) -> None:
        """Progress on stderr (stdout carries the credentials only)."""
        self.stderr.write(f"seed_demo: {text}")
        self.stderr.flush()

    def _admin(self) -> dict:
        User = get_user_model()
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            user, _ = User.objects.get_or_create(username="operator", defaults={"is_staff": True, "is_superuser": True})
            user.set_password(password)
            user.save()
        return {"username": "operator", "password": password}

    def _trader(self, name: str, funds: dict) -> dict:
        existing = Account.objects.filter(owner__username=name).first()
        account = existing or accounts_services.account_create(name=name, username=name)
        if existing is None:
            for asset, amount in funds.items():
                accounts_services.balance_deposit(account=account, asset=asset, amount=amount, reason="demo funds")
        return {"account_id": str(account.pk)}

    def _api_key(self, account_id: str) -> dict:
        """An HMAC key with both scopes, through the service; the secret is kept with the
        other demo credentials (this is a demo: a real secret is shown once, never stored)."""
        created = apikey_create(account=int(account_id), scopes=["read", "trade"], label="demo")
        return {"key_id": created.key.key_id, "secret": created.secret}

    def _print(self, market, credentials: dict) -> None:
        port = os.environ.get("PORT", "8000")
        base = f"http://127.0.0.1:{port}"
        lines = [
            "",
            "Bourse is seeded (embedded mode).",
            f"  API:        {base}/api/v1/markets   (market {market.symbol})",
            f"  Admin:      {base}/admin/   user {credentials['admin']['username']} "
            f"password {credentials['admin']['password']}",
        ]
        for name in DEMO_TRADERS:
            info = credentials[name]
            detail = f"account {info['account_id']}"
            if "key_id" in info:
                secret_label = "secret" if "secret" in info else "private_key"
                detail += f"  key {info['key_id']}  {secret_label} {info.get('secret') or info.get('private_key')}"
            lines.append(f"  Trader {name:<5} {detail}")
        lines.append(f"  Credentials are kept in {settings.DATA_DIR / 'demo-credentials.json'}")
        self.stdout.write("\n".join(lines) + "\n")
