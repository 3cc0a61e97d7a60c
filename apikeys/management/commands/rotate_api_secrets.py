"""``rotate_api_secrets``: re-encrypt every stored HMAC secret with the newest encryption key.

Rotation: prepend a new Fernet key to ``BOURSE_ENCRYPTION_KEYS`` on every process, run this
once, then remove the old key. Secrets themselves do not change; clients notice nothing.
"""
from django.core.management.base import BaseCommand

from apikeys.services import apikey_secrets_rotate


class Command(BaseCommand):
    help = "Re-encrypt stored API secrets with the first (newest) BOURSE_ENCRYPTION_KEYS key."

    def handle(self, *args, **opts):
        count = apikey_secrets_rotate()
        self.stdout.write(f"Re-encrypted {count} API secret(s) with the newest encryption key.")
