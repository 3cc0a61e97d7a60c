"""Orders are validated against a per-process cached copy of their market
(``trading/services/marketcache.py``), yet never accepted or refused against a stale one: the
write checks the market is unchanged, and a refusal is only given for the market as it is now.
Each test changes the market behind the cache's back (an ORM update: what another process's
edit looks like to this one)."""
from decimal import Decimal
from decimal import Decimal as D

import pytest
from django.db import connection

from exchange import errors
from tests.support import fund
from trading.models import Market, Order
from trading.services import marketcache, order_submit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def long_lived_cache(settings):
    settings.BOURSE_MARKET_CACHE_S = 3600  # only the checks can notice a change within the test


@pytest.fixture
def funded(trader):
    fund(trader, USD="100000", BTC="10")
    return trader


def _buy(trader, price="100.00", quantity="0.5000"):
    return order_submit(account=trader, market="BTC-USD", side="buy", type="limit", price=price,
                        quantity=quantity).order


def _cached(market):
    _buy_cached = marketcache.market_get(market.symbol)
    assert _buy_cached is marketcache.market_get(market.symbol)  # it is cached now
    return _buy_cached


def test_a_halt_behind_the_cache_refuses_the_order_and_writes_nothing(market, funded):
    _cached(market)
    Market.objects.filter(pk=market.pk).update(status=Market.Status.HALTED)
    with pytest.raises(errors.MarketHalted):
        _buy(funded)
    assert not Order.objects.exists()


def test_a_resume_behind_the_cache_accepts_the_order(market, funded):
    Market.objects.filter(pk=market.pk).update(status=Market.Status.HALTED)
    _cached(market)
    Market.objects.filter(pk=market.pk).update(status=Market.Status.OPEN)
    assert _buy(funded).status == Order.Status.PENDING


def test_a_stricter_filter_behind_the_cache_refuses(market, funded):
    _cached(market)
    Market.objects.filter(pk=market.pk).update(min_notional=D("1000"))  # 100 x 0.5 = 50 is too small now
    with pytest.raises(errors.ValidationError) as refused:
        _buy(funded)
    assert "min_notional" in str(refused.value.errors)
    assert not Order.objects.exists()


def test_a_looser_filter_behind_the_cache_accepts(market, funded):
    Market.objects.filter(pk=market.pk).update(min_notional=D("1000"))
    _cached(market)
    Market.objects.filter(pk=market.pk).update(min_notional=D("1"))
    assert _buy(funded).status == Order.Status.PENDING


def test_a_fee_change_behind_the_cache_holds_the_new_fee(market, funded):
    _cached(market)
    Market.objects.filter(pk=market.pk).update(taker_fee_rate=D("0.01"))
    order = _buy(funded)
    assert order.hold_amount == D("50.500000")  # 100 x 0.5 plus 1 % (the cached 0.2 % would hold 50.100000)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement write is PostgreSQL's")
def test_the_pins_text_form_reads_back_as_the_values(db):
    """``unchanged`` passes the pinned columns as array literals: PostgreSQL must read each one
    back as exactly the values, whatever their notation (exponents, trailing zeros, NULLs) or
    characters (quotes, backslashes, commas, braces)."""
    numbers = [Decimal("0.01"), Decimal("1E+3"), Decimal("1.500000000000000000"), None, Decimal("-0"), Decimal("7")]
    texts = ['USD', 'a"b', "c\\d", "e,f", "{g}", None, "NULL", ""]
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::numeric[] = %s::numeric[], %s::text[] IS NOT DISTINCT FROM %s::text[], %s::text[]",
                       [marketcache.array_literal(numbers), numbers, marketcache.array_literal(texts), texts,
                        marketcache.array_literal(texts)])
        same_numbers, same_texts, read = cursor.fetchone()
    assert same_numbers and same_texts and read == texts


def test_an_expired_entry_is_read_again_by_one_thread_while_the_others_use_it(market, monkeypatch):
    """While one thread re-reads an expired market, the process's other request threads go on
    with the copy they have (the write checks it) instead of all running the same query."""
    import threading
    import time

    from django.db import connections

    stale = _cached(market)
    expired = time.monotonic() - 2 * 3600  # past long_lived_cache's hour
    monkeypatch.setattr(marketcache, "_entries", {market.symbol: (stale, expired)})
    reading, release, reads = threading.Event(), threading.Event(), []

    class SlowReads:  # Market.objects, whose first read of the market waits for the test
        def select_related(self, *fields):
            return self

        def filter(self, **lookups):
            self.lookups = lookups
            return self

        def first(self):
            reads.append(self.lookups["symbol"])
            if len(reads) == 1:
                reading.set()
                release.wait(10)
            return Market.objects.select_related("base", "quote").filter(**self.lookups).first()

    class ModelReadSlowly:
        objects = SlowReads()

    monkeypatch.setattr(marketcache, "Market", ModelReadSlowly)
    got = {}

    def first():
        try:
            got["first"] = marketcache.market_get(market.symbol)
        finally:
            connections.close_all()

    reader = threading.Thread(target=first)
    reader.start()
    assert reading.wait(10)
    others = [marketcache.market_get(market.symbol) for _ in range(5)]  # meanwhile: the other threads
    release.set()
    reader.join(10)
    assert reads == [market.symbol]  # one read, not six
    assert all(other is stale for other in others)
    assert got["first"] is not stale and got["first"].pk == market.pk  # the fresh copy
    assert marketcache.market_get(market.symbol) is got["first"]  # now cached
    # a symbol with no entry at all is read by whoever asks (nothing to go on with)
    marketcache.forget(market.symbol)
    assert marketcache.market_get(market.symbol) is not got["first"]
    assert reads == [market.symbol] * 2
