"""``create_trader NAME [--deposit ASSET=AMOUNT ...] [--scheme hmac|ed25519] [--scopes read,trade] [--json]``

Creates a user, its trading account, an API key and opening deposits in one transaction,
and prints the credentials once. A refused deposit (unknown asset, bad amount) creates
nothing.
"""
import json

from django.core.management.base import BaseCommand, CommandError

from apikeys.services import trader_create
from exchange.errors import BourseError


def _deposit(raw: str) -> tuple[str, str]:
    asset, sep, amount = raw.partition("=")
    if not sep or not asset.strip() or not amount.strip():
        raise CommandError(f"--deposit {raw!r}: expected ASSET=AMOUNT, e.g. USD=10000")
    return asset.strip().upper(), amount.strip()


class Command(BaseCommand):
    help = "Create a trader account with an API key (and opening deposits); print the credentials once."

    def add_arguments(self, parser):
        parser.add_argument("name", help="user and account name")
        parser.add_argument("--deposit", action="append", default=[], metavar="ASSET=AMOUNT",
                            help="opening deposit; repeat for several assets")
        parser.add_argument("--scheme", choices=["hmac", "ed25519"], default="hmac")
        parser.add_argument("--scopes", default="read,trade", help="comma-separated: read, trade")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **opts):
        deposits = [_deposit(raw) for raw in opts["deposit"]]
        try:
            created = trader_create(
                name=opts["name"], deposits=deposits, scheme=opts["scheme"], scopes=opts["scopes"]
            )
        except BourseError as exc:
            raise CommandError(f"{exc.detail} ({exc.code}); nothing was created.") from None
        credentials = created.credentials
        out: dict[str, str | None] = {"account_id": str(created.account.pk), "key_id": credentials.key.key_id}
        if credentials.secret is not None:
            out["secret"] = credentials.secret
        else:
            out["private_key"] = credentials.private_key
        if opts["json"]:
            self.stdout.write(json.dumps(out))
            return
        secret_name = "secret" if "secret" in out else "private_key"
        self.stdout.write(
            f"Created trader {opts['name']!r}: account {out['account_id']}\n"
            f"  key_id       {out['key_id']}  (scheme {opts['scheme']}, scopes {','.join(credentials.key.scopes)})\n"
            f"  {secret_name:<12} {out[secret_name]}\n"
            f"The {secret_name} is shown only now; keep it safe."
        )
