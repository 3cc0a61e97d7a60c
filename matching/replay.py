"""Replay a command file through ``OrderBook.process``: conformance and speed.

Usage::

    python -m matching.replay FILE [--trades OUT]

FILE has one command per line::

    N,id,side(B|S),type(L|M),price_ticks,size_lots,tif(GTC|IOC|FOK),post_only(0|1),account
    C,id

(market orders carry price 0; account is an integer; self-trade prevention is
the default cancel_newest).  Blank lines and lines starting with ``#`` are
skipped.  The whole file is parsed first; only the ``process`` calls are timed.
Prints ``N commands/s`` on stdout (details on stderr).  With ``--trades OUT``
it writes every trade, in order, as ``taker_id,maker_id,price_ticks,size_lots``.
"""

import argparse
import contextlib
import gc
import sys
import time
from collections.abc import Callable, Sequence

from .book import OrderBook
from .messages import CANCEL_NEWEST, LIMIT, MARKET, Cancel, Event, NewOrder, Trade

_tn = tuple.__new__

# Commands are timed in chunks so that collecting trades for --trades (or
# whatever else a caller does with the events) stays outside the timer, while
# every event list is still handed over, as the engine process hands them to
# persistence.  Small chunks: holding many event lists alive at once would
# mostly measure the cyclic GC, not the book (see bench/engine.md).
CHUNK = 100


class ReplayFormatError(ValueError):
    """A line of the command file is malformed."""


def parse_line(line: str) -> NewOrder | Cancel:
    """Parse one command line into a ``NewOrder`` or ``Cancel``."""
    f = line.split(",")
    kind = f[0]
    try:
        if kind == "N" and len(f) == 9:
            otype = f[3]
            if otype not in (LIMIT, MARKET):
                raise ValueError(f"bad order type {otype!r}")
            if f[7] not in ("0", "1"):
                raise ValueError(f"bad post_only {f[7]!r}")
            return _tn(
                NewOrder,
                (
                    int(f[1]),
                    int(f[8]),
                    f[2],
                    otype,
                    int(f[4]),
                    int(f[5]),
                    f[6],
                    f[7] == "1",
                    CANCEL_NEWEST,
                    None,
                    None,
                    None,
                ),
            )
        if kind == "C" and len(f) == 2:
            return _tn(Cancel, (int(f[1]),))
    except ValueError as exc:
        raise ReplayFormatError(f"{line!r}: {exc}") from None
    raise ReplayFormatError(f"{line!r}: expected N with 9 fields or C with 2")


def load(path: str) -> list[NewOrder | Cancel]:
    """Parse a command file into a list of commands."""
    commands: list[NewOrder | Cancel] = []
    with open(path, encoding="ascii") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line[0] == "#":
                continue
            try:
                commands.append(parse_line(line))
            except ReplayFormatError as exc:
                raise ReplayFormatError(f"{path}:{lineno}: {exc}") from None
    return commands


def run(
    commands: Sequence[NewOrder | Cancel],
    book: OrderBook | None = None,
    on_events: Callable[[list[list[Event]]], object] | None = None,
) -> tuple[float, int, float]:
    """Process ``commands`` through ``book.process``; return ``(seconds, n_events, cpu_seconds)``.

    ``seconds`` is wall-clock time of the ``process`` calls only;
    ``cpu_seconds`` the CPU time this process spent in them (less sensitive
    to other load on a shared machine).  ``on_events(list_of_event_lists)`` is
    called after each chunk, outside the timers.
    """
    if book is None:
        book = OrderBook()
    process = book.process
    perf = time.perf_counter
    cpu = time.process_time
    elapsed = 0.0
    cpu_elapsed = 0.0
    n_events = 0
    for start in range(0, len(commands), CHUNK):
        chunk = commands[start : start + CHUNK]
        c0 = cpu()
        t0 = perf()
        results = [process(cmd) for cmd in chunk]
        t1 = perf()
        cpu_elapsed += cpu() - c0
        elapsed += t1 - t0
        for events in results:
            n_events += len(events)
        if on_events is not None:
            on_events(results)
    return elapsed, n_events, cpu_elapsed


def trade_lines(results: list[list[Event]]) -> list[str]:
    """The ``taker_id,maker_id,price_ticks,size_lots`` lines of a chunk's trades."""
    return [
        f"{e[0]},{e[1]},{e[5]},{e[6]}\n" for events in results for e in events if type(e) is Trade
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matching.replay", description=__doc__.split("\n")[0])
    parser.add_argument("file", help="command file")
    parser.add_argument("--trades", metavar="OUT", help="write trades as taker_id,maker_id,price_ticks,size_lots")
    args = parser.parse_args(argv)

    commands = load(args.file)
    # The parsed file is harness data, not engine state: freeze it so the
    # cyclic GC does not re-scan a million command tuples during the run.
    gc.collect()
    gc.freeze()
    book = OrderBook()
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(args.trades, "w", encoding="ascii")) if args.trades else None
        on_events = (lambda results: out.writelines(trade_lines(results))) if out else None
        elapsed, n_events, cpu_elapsed = run(commands, book, on_events)
    n = len(commands)
    rate = int(n / elapsed) if elapsed > 0 else 0
    print(f"{rate} commands/s")
    print(
        f"{n} commands, {n_events} events in {elapsed:.3f}s wall "
        f"({n / cpu_elapsed if cpu_elapsed > 0 else 0:.0f} commands/s of CPU time); "
        f"{len(book)} orders resting at end, sequence {book.sequence}",
        file=sys.stderr,
    )
    book.check_invariants()
    return 0


if __name__ == "__main__":
    sys.exit(main())
