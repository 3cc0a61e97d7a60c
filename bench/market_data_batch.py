"""What candles and the book checksum cost the engine's batch: the same batches of crossing
orders are stepped with both on and with both switched off (the runner's ``CandleBook.record``
returning nothing and ``BookChecksum.after`` a constant), rounds alternating, so machine noise
hits both alike. Settlement is not enqueued (it runs after the commit, in other processes).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bourse_bench BOURSE_ALLOW_GENERATED_SECRETS=1 \\
    BOURSE_DATA_DIR=/tmp/benchdata LOG_LEVEL=WARNING \\
    .venv/bin/python bench/market_data_batch.py --batch 200 --rounds 7 [--depth 300]

Each batch holds ``--batch`` commands: half resting sells, half buys that cross them (a trade
each), over a book of ``--depth`` resting levels per side. Prints the median wall-clock ms
of ``runner.step()`` per batch in each mode, the difference per batch and per command, and
the two parts measured alone (the candle upsert per batch; the checksum per book update).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402

from apikeys.services import trader_create  # noqa: E402
from trading.models import EngineState, Market, Trade  # noqa: E402
from trading.runner import MarketRunner  # noqa: E402
from trading.services import market_create, order_submit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--depth", type=int, default=300)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    tag = "".join(random.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(5))
    symbol = f"C{tag}-USD"
    market_create(symbol=symbol, tick_size="0.01", lot_size="0.0001", min_notional="0", maker_fee_rate="0.001",
                  taker_fee_rate="0.002", base_scale=8, quote_scale=6)
    base = f"C{tag}"
    maker = trader_create(name=f"bench-maker-{tag}", deposits=[("USD", "1000000000"), (base, "1000000")]).account
    taker = trader_create(name=f"bench-taker-{tag}", deposits=[("USD", "1000000000"), (base, "1000000")]).account
    market = Market.objects.get(symbol=symbol)
    EngineState.objects.update_or_create(market=market, defaults={"owner_token": "bench"})
    runner = MarketRunner(market, "bench")
    runner.rebuild()
    runner._enqueue_settlement = lambda: None  # type: ignore[method-assign]
    rng = random.Random(7)

    # a standing book of --depth levels per side, far from where the batches trade
    for i in range(args.depth):
        order_submit(account=maker, market=symbol, side="buy", type="limit", price=Decimal(f"{50 - i * 0.01:.2f}"),
                     quantity=Decimal("0.01"))
        order_submit(account=maker, market=symbol, side="sell", type="limit", price=Decimal(f"{150 + i * 0.01:.2f}"),
                     quantity=Decimal("0.01"))
    while runner.step(limit=1000):
        pass

    record, after = runner.candles.record, None

    def fill_batch():
        for _ in range(args.batch // 2):
            price = f"{100 + rng.randrange(-200, 200) / 100:.2f}"
            order_submit(account=maker, market=symbol, side="sell", type="limit", price=Decimal(price),
                         quantity=Decimal("0.0100"))
            order_submit(account=taker, market=symbol, side="buy", type="limit", price=Decimal(price),
                         quantity=Decimal("0.0100"))

    timings: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(args.rounds):
        for mode in ("on", "off"):
            fill_batch()
            checksum = runner.checksum
            assert checksum is not None
            if after is None:
                after = checksum.after
            if mode == "off":
                runner.candles.record = lambda trades: {}  # type: ignore[method-assign]
                checksum.after = lambda changes: 0  # type: ignore[method-assign,assignment]
            started = time.perf_counter()
            done = runner.step(limit=args.batch)
            timings[mode].append((time.perf_counter() - started) * 1000)
            assert done == args.batch, done
            runner.candles.record = record  # type: ignore[method-assign]
            checksum.after = after  # type: ignore[method-assign]

    # the parts alone: the candle upsert of one batch's trades, the checksum of one update
    trades = list(Trade.objects.filter(market=market).order_by("-sequence")[: args.batch // 2])[::-1]
    upserts = []
    for _ in range(20):
        with transaction.atomic():
            started = time.perf_counter()
            runner.candles.record(trades)
            upserts.append((time.perf_counter() - started) * 1000)
            transaction.set_rollback(True)
    checksum = runner.checksum
    assert checksum is not None
    n = 2000
    started = time.perf_counter()
    for _ in range(n):
        checksum._value = None  # force reading both sides from the book (the worst case)
        checksum.after([])
    recompute_us = (time.perf_counter() - started) / n * 1e6

    on, off = statistics.median(timings["on"]), statistics.median(timings["off"])
    print(f"batch {args.batch} commands ({args.batch // 2} trades), depth {args.depth} levels/side, "
          f"{args.rounds} rounds, load average {os.getloadavg()[0]:.2f}")
    print(f"step median: with candles+checksum {on:.2f} ms, without {off:.2f} ms; "
          f"difference {on - off:+.2f} ms per batch ({(on - off) / args.batch * 1000:+.1f} us per command)")
    print(f"candle upsert of one batch (6 bars, one statement) median {statistics.median(upserts):.3f} ms")
    print(f"checksum recomputed from the book (top 25 of {args.depth}+ levels) {recompute_us:.1f} us per update")


if __name__ == "__main__":
    main()
