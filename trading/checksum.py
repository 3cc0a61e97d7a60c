"""The level-2 book checksum every ``book:`` snapshot and update carries (docs/websocket.md).

CRC32 (unsigned, decimal) of the top ``CHECKSUM_DEPTH`` levels per side after the update,
interleaved ``bid_price:bid_qty:ask_price:ask_qty:…`` with the wire strings; once a side has
run out of levels it contributes nothing. A client that applies updates to its own copy and
computes the same value knows its copy matches the engine's book, not just its sequence.

``book_checksum`` is the definition. ``BookChecksum`` is the engine's incremental form: the
runner asks for the checksum after every update of a batch, and most updates change levels
below the top 25 or only ones it can see were outside them, so it recomputes (two
``nsmallest`` over the book's levels and 100 integer formats) only when a changed price lies
within the cached top.
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence
from decimal import Decimal

CHECKSUM_DEPTH = 25


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
    """The checksum of an engine ``OrderBook`` (integer ticks and lots), kept incrementally."""

    def __init__(self, book, tick_size: Decimal, quote_scale: int, lot_size: Decimal, base_scale: int):
        self.book = book
        self.price = _Units(tick_size, quote_scale)
        self.quantity = _Units(lot_size, base_scale)
        self._top: tuple[list[tuple[int, int]], list[tuple[int, int]]] | None = None
        self._value = 0

    def after(self, changes: Sequence[tuple[bool, int]]) -> int:
        """The checksum after an update that changed the levels ``changes`` (``(is_bid, price
        in ticks)``)."""
        top = self._top
        if top is not None and not any(self._within(top[0] if bid else top[1], bid, price) for bid, price in changes):
            return self._value
        bids, asks = self._top = self.book.depth(CHECKSUM_DEPTH)
        price, quantity = self.price, self.quantity
        self._value = book_checksum([(price(p), quantity(q)) for p, q in bids],
                                    [(price(p), quantity(q)) for p, q in asks])
        return self._value

    @staticmethod
    def _within(top: list[tuple[int, int]], bid: bool, price: int) -> bool:
        if len(top) < CHECKSUM_DEPTH:
            return True
        cutoff = top[-1][0]
        return price >= cutoff if bid else price <= cutoff
