"""Deterministic mixed-workload generator for the replay harness.

Produces lines in the ``matching.replay`` file format with roughly:
55% passive limit orders near the mid, 25% cancels, 15% marketable limit
orders, 5% IOC / FOK / market orders, around a steady book of
``target_orders`` resting orders.

To pick realistic prices and cancel ids the generator runs its own commands
through an ``OrderBook`` as it goes (the replay itself starts from an empty
book and never sees that one).  Book size is steered only through the size of
marketable orders, so the command mix stays as advertised.  A few cancels
target ids that already traded away, as real clients do.
"""

import random
from collections.abc import Iterator

from .book import OrderBook
from .messages import Cancelled, Rested, Trade
from .replay import parse_line


def generate(
    n: int, seed: int = 1, target_orders: int = 10_000, mid: int = 10_000, accounts: int = 1_000, spread_ticks: int = 60
) -> Iterator[str]:
    """Yield ``n`` command lines (without newline)."""
    rng = random.Random(seed)
    rand = rng.random
    randint = rng.randint
    book = OrderBook()
    live: list[int] = []  # ids the generator believes are resting
    where: dict[int, int] = {}  # id -> index in live
    next_id = 1

    def forget(oid: int) -> None:
        i = where.pop(oid, None)
        if i is None:
            return
        last = live.pop()
        if i < len(live):
            live[i] = last
            where[last] = i

    for _ in range(n):
        bb = book.best_bid
        ba = book.best_ask
        if bb is not None and ba is not None:
            mid = (bb + ba) // 2
        elif bb is not None:
            mid = bb + 1
        elif ba is not None:
            mid = ba - 1
        side = "B" if rand() < 0.5 else "S"
        acct = randint(1, accounts)
        r = rand()
        if r < 0.55:
            # Passive: a few ticks behind the touch, skewed towards the mid.
            off = min(int(rng.expovariate(1.0 / (spread_ticks / 4))), spread_ticks)
            if side == "B":
                price = min(mid - off, ba - 1 if ba is not None else mid)
            else:
                price = max(mid + 1 + off, bb + 1 if bb is not None else mid + 1)
            price = max(price, 1)
            post = "1" if rand() < 0.1 else "0"
            line = f"N,{next_id},{side},L,{price},{randint(1, 10)},GTC,{post},{acct}"
            next_id += 1
        elif r < 0.80:
            if live and rand() < 0.97:
                oid = live[randint(0, len(live) - 1)]
            else:
                oid = randint(1, next_id)  # often long gone: reported, not crashed on
            line = f"C,{oid}"
        else:
            # Takers.  Their size steers the book towards target_orders.
            pressure = max(0.2, min(3.0, len(book) / target_orders))
            size = randint(1, int(30 * pressure * pressure) + 1)
            if side == "B":
                price = (ba if ba is not None else mid) + randint(0, 3)
            else:
                price = max((bb if bb is not None else mid) - randint(0, 3), 1)
            if r < 0.95:
                line = f"N,{next_id},{side},L,{price},{size},GTC,0,{acct}"
            else:
                kind = randint(0, 2)
                if kind == 0:
                    line = f"N,{next_id},{side},L,{price},{size},IOC,0,{acct}"
                elif kind == 1:
                    line = f"N,{next_id},{side},L,{price},{size},FOK,0,{acct}"
                else:
                    tif = "IOC" if rand() < 0.5 else "GTC"
                    line = f"N,{next_id},{side},M,0,{size},{tif},0,{acct}"
            next_id += 1
        for e in book.process(parse_line(line)):
            if type(e) is Trade:
                if not e.maker_remaining:
                    forget(e.maker_id)
            elif type(e) is Rested:
                where[e.order_id] = len(live)
                live.append(e.order_id)
            elif type(e) is Cancelled:
                forget(e.order_id)
        yield line


def write(path: str, n: int, **kwargs: int) -> None:
    """Write ``n`` generated commands to ``path``."""
    with open(path, "w", encoding="ascii") as fh:
        for line in generate(n, **kwargs):
            fh.write(line)
            fh.write("\n")
