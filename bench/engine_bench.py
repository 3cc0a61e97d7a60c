"""Engine benchmark: matching.OrderBook vs the sortedcontainers baseline.

    python bench/engine_bench.py bench/out/engine_1m.csv [--rounds 5]

Parses the replay file once, then alternates engine and baseline runs on fresh
books through the same driver as ``python -m matching.replay``
(``matching.replay.run``), so machine noise hits both alike.  The first
round also checks that both books produced identical event streams.  Prints
each run, then the median and best commands/s of each and the ratio of the
medians.  See bench/engine.md.
"""

import argparse
import gc
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine_baseline import BaselineBook  # noqa: E402

from matching import OrderBook  # noqa: E402
from matching.replay import load, run  # noqa: E402


def fingerprint(book_cls, commands):
    """Run once, outside any timing, and hash the whole event stream."""
    acc = []
    run(commands, book_cls(), lambda results: acc.append(hash(tuple(tuple(e) for r in results for e in r))))
    return hash(tuple(acc))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("file")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-check", action="store_true", help="skip the event-stream comparison")
    args = p.parse_args(argv)

    commands = load(args.file)
    # The parsed file is harness data, not engine state: keep the cyclic GC
    # from re-scanning a million command tuples (same for both books).
    gc.collect()
    gc.freeze()

    if not args.no_check:
        a = fingerprint(OrderBook, commands)
        b = fingerprint(BaselineBook, commands)
        print(f"event streams identical: {a == b}")
        if a != b:
            return 1

    n = len(commands)
    wall = {"engine": [], "baseline": []}
    cpu = {"engine": [], "baseline": []}
    for i in range(args.rounds):
        for name, cls in (("engine", OrderBook), ("baseline", BaselineBook)):
            book = cls()
            elapsed, n_events, cpu_elapsed = run(commands, book)
            wall[name].append(n / elapsed)
            cpu[name].append(n / cpu_elapsed)
            print(
                f"round {i + 1} {name:8s} {n / elapsed:10.0f} commands/s "
                f"(CPU time: {n / cpu_elapsed:.0f}/s; {n_events} events, {elapsed:.3f}s)"
            )
            del book
            gc.collect()
    for label, rates in (("wall-clock", wall), ("CPU-time", cpu)):
        med = {k: statistics.median(v) for k, v in rates.items()}
        for k, v in rates.items():
            print(f"{label:10s} {k:8s} median {med[k]:10.0f}  best {max(v):10.0f} commands/s")
        print(f"{label:10s} ratio engine/baseline (medians): {med['engine'] / med['baseline']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
