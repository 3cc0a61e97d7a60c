"""``run_fix_gateway``: the FIX 4.4 order-entry acceptor (docs/fix.md).

Listens on ``BOURSE_FIX_HOST``:``BOURSE_FIX_PORT`` (default 127.0.0.1:9878) or
``--host``/``--port``; ``--port 0`` picks a free port. Prints one line
``FIX gateway listening on HOST:PORT`` once it accepts connections (a JSON log line, like
all its output). SIGTERM or SIGINT logs every session out, flushes the session store and exits.
"""
import asyncio
import logging
import signal

from django.conf import settings

from exchange import preflight
from exchange.management.base import RoleCommand
from trading.fix.server import Gateway

log = logging.getLogger("bourse.fix")


class Command(RoleCommand):
    role = "fix"
    help = "Run the FIX 4.4 order-entry gateway (acceptor)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.BOURSE_FIX_HOST)
        parser.add_argument("--port", type=int, default=settings.BOURSE_FIX_PORT)
        parser.add_argument("--workers", type=int, default=8, help="threads for database work")
        parser.add_argument(
            "--pipeline", type=int, default=settings.BOURSE_FIX_PIPELINE,
            help="NewOrderSingles of one session submitted concurrently (1: strictly in sequence)",
        )

    def handle(self, *args, **opts):
        asyncio.run(self._serve(opts["host"], opts["port"], opts["workers"], opts["pipeline"]))

    async def _serve(self, host, port, workers, pipeline):
        gateway = Gateway(host, port, workers=max(workers, pipeline), pipeline=pipeline)
        try:
            await gateway.start()
        except OSError as exc:
            raise preflight.port_in_use("BOURSE_FIX_PORT", host, port, exc.strerror or str(exc)) from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("FIX gateway listening on %s:%s", host, gateway.port, extra={"host": host, "port": gateway.port})
        await stop.wait()
        await gateway.stop()
        log.info("FIX gateway stopped")
