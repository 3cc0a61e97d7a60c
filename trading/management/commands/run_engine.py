"""``run_engine [--markets BTC-USD,...]``: the matching engine process.

Owns each listed market (all markets by default) that no other engine process owns, waits
as a standby for the others, and takes over a market when its owner dies.
"""
import logging
import signal

from exchange.management.base import RoleCommand
from trading.runner import EngineProcess


class Command(RoleCommand):
    role = "engine"
    help = "Run the matching engine for some or all markets (one owner per market; others stand by)."

    def add_arguments(self, parser):
        parser.add_argument("--markets", help="comma-separated symbols (default: every market)")

    def handle(self, *args, **opts):
        symbols = [s.strip().upper() for s in opts["markets"].split(",")] if opts["markets"] else None
        process = EngineProcess(symbols)

        def stop(signum, frame):
            process.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        logging.getLogger("bourse.engine").info(
            "engine starting for %s", ", ".join(symbols) if symbols else "all markets", extra={"markets": symbols})
        process.run()
