"""The level-2 book checksum every ``book:`` snapshot and update carries (docs/websocket.md).

CRC32 (unsigned, decimal) of the top ``CHECKSUM_DEPTH`` levels per side after the update,
interleaved ``bid_price:bid_qty:ask_price:ask_qty:…`` with the wire strings; once a side has
run out of levels it contributes nothing. A client that applies updates to its own copy and
computes the same value knows its copy matches the engine's book, not just its sequence.

``book_checksum`` is the definition. ``BookChecksum`` is the engine's incremental form: the
runner asks for the checksum after every update of a batch (see its docstring for the cost).
"""
from __future__ import annotations

import zlib
from bisect import bisect_left
from collections.abc import Sequence
from decimal import Decimal

CHECKSUM_DEPTH = 25
HELD_DEPTH = 2 * CHECKSUM_DEPTH  # levels per side the engine's form holds, so removals seldom reread


def book_checksum(bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]], depth: int = CHECKSUM_DEPTH) -> int:
    """The checksum of a book given as wire levels (``[[price, quantity], …]``, best first)."""
    parts: list[str] = []
    for i in range(depth):
        if i < len(bids):
            parts += bids[i][:2]
        if i < len(asks):
            parts += asks[i][:2]
    return zlib.crc32(":".join(parts).encode())


class _Units:
    """Integer ticks or lots -> the wire string (``step`` × n with ``scale`` places), by integer
    formatting when the step is a whole number of the scale's quanta (always, for a valid
    market), else through ``Decimal``."""

    def __init__(self, step: Decimal, scale: int):
        self.step, self.scale = step, scale
        quanta = step.scaleb(scale)
        self.quanta = int(quanta) if quanta == quanta.to_integral_value() else None

    def __call__(self, n: int) -> str:
        scale = self.scale
        if self.quanta is None:
            return format((self.step * n).quantize(Decimal(1).scaleb(-scale)), "f")
        digits = str(self.quanta * n)
        if not scale:
            return digits
        digits = digits.rjust(scale + 1, "0")
        return f"{digits[:-scale]}.{digits[-scale:]}"


class BookChecksum:
    """The checksum of an engine ``OrderBook`` (integer ticks and lots), kept incrementally.

    Each side's best ``HELD_DEPTH`` levels are held with their wire strings, and every
    update's changed levels are applied to them: a change beyond the held levels is ignored
    (noting that the side has more), a new or changed level among them is placed by bisection,
    and only when removals leave fewer than ``CHECKSUM_DEPTH`` held while the side has more is
    it read again from the book (``OrderBook.depth``, which scans its levels). So an update
    costs a few list operations, one or two string formats and the CRC of the joined top 25,
    not a sort and 100 formats."""

    def __init__(self, book, tick_size: Decimal, quote_scale: int, lot_size: Decimal, base_scale: int):
        self.book = book
        self.price = _Units(tick_size, quote_scale)
        self.quantity = _Units(lot_size, base_scale)
        # per side (True: bids): sort keys (-price for bids) and [price, qty] wire strings, best first
        self._keys: dict[bool, list[int]] = {}
        self._wire: dict[bool, list[list[str]]] = {}
        self._more: dict[bool, bool] = {}  # the side may have levels beyond those held
        self._value: int | None = None

    def _load(self, bid: bool, levels: list[tuple[int, int]]) -> None:
        self._keys[bid] = [-p if bid else p for p, _ in levels]
        self._wire[bid] = [[self.price(p), self.quantity(q)] for p, q in levels]
        self._more[bid] = len(levels) >= HELD_DEPTH

    def after(self, changes: Sequence[tuple[bool, int, int]]) -> int:
        """The checksum after an update whose changed levels are ``changes`` (``(is_bid, price
        in ticks, new total in lots)``, total 0 for a removed level)."""
        if self._value is None:
            bids, asks = self.book.depth(HELD_DEPTH)
            self._load(True, bids)
            self._load(False, asks)
            changes = ()
        changed = False
        reload: set[bool] = set()
        for bid, price, total in changes:
            keys, wire = self._keys[bid], self._wire[bid]
            key = -price if bid else price
            at = bisect_left(keys, key)
            present = at < len(keys) and keys[at] == key
            if present:
                if total:
                    wire[at][1] = self.quantity(total)
                else:
                    del keys[at], wire[at]
                    if len(keys) < CHECKSUM_DEPTH and self._more[bid]:
                        reload.add(bid)  # levels not held move into the top 25: read them
                changed = changed or at < CHECKSUM_DEPTH
            elif total and (not self._more[bid] or at < len(keys)):
                keys.insert(at, key)
                wire.insert(at, [self.price(price), self.quantity(total)])
                if len(keys) > HELD_DEPTH:
                    del keys[-1], wire[-1]
                    self._more[bid] = True
                changed = changed or at < CHECKSUM_DEPTH
            elif total:
                self._more[bid] = True  # a level beyond those held
        if reload:
            bids, asks = self.book.depth(HELD_DEPTH)
            for bid in reload:
                self._load(bid, bids if bid else asks)
        if changed or reload or self._value is None:
            self._value = book_checksum(self._wire[True], self._wire[False])
        return self._value
