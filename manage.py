#!/usr/bin/env python
"""Django's command-line entry point for Bourse.

A malformed setting or a failed start-up check (exchange/preflight.py) stops a command with
one line naming the setting and the fix, and a non-zero exit, never a traceback.
"""
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")
    from django.core.management import execute_from_command_line

    from exchange import preflight

    role = sys.argv[1] if len(sys.argv) > 1 else "manage.py"
    preflight.load_settings(role)
    with preflight.guard(role):
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
