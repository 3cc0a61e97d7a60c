"""The engine's loop reads a market's pending commands when woken, not again after every
batch: a batch that took fewer commands than its limit took every command committed before
its read, and each later one wakes the engine after its commit. A market is read anyway when
its last read filled the limit, and every market once per ``IDLE_WAIT_S`` (a lost wake-up)."""
import time

import pytest

from tests.factories import AccountFactory
from tests.support import fund
from trading.models import Command, Order
from trading.runner import MarketRunner
from trading.services import order_submit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def loop(market, engine_process, monkeypatch):
    """The engine process's loop run by hand, counting the pending-command reads per market."""
    reads: list[int] = []
    pending = MarketRunner._pending

    def counted(runner, limit):
        reads.append(runner.market.pk)
        return pending(runner, limit)

    monkeypatch.setattr(MarketRunner, "_pending", counted)
    monkeypatch.setattr(type(engine_process), "IDLE_WAIT_S", 0.2)  # an idle turn waits this long at most
    engine_process.acquire()
    engine_process.fire_dead_man()
    engine_process._recheck_at = time.monotonic() + 3600  # no fallback re-read unless a test asks
    engine_process._iterate()  # the first read of the market after taking it: nothing pending
    assert reads == [market.pk]
    reads.clear()
    return engine_process, reads


def _buy(account, cid):
    return order_submit(account=account, market="BTC-USD", side="buy", type="limit", price="100.00",
                        quantity="0.0200", client_order_id=cid).order


def test_a_batch_is_not_followed_by_an_empty_read(loop, market):
    process, reads = loop
    account = AccountFactory()
    fund(account, USD="1000")
    order = _buy(account, "a")
    process._iterate()  # woken: one read takes the order
    assert reads == [market.pk]
    order.refresh_from_db()
    assert order.status == Order.Status.OPEN
    process._iterate()  # nothing woke it: no read, an idle wait
    process._iterate()
    assert reads == [market.pk]
    second = _buy(account, "b")
    process._iterate()  # the next wake-up is read at once
    assert reads == [market.pk, market.pk]
    second.refresh_from_db()
    assert second.status == Order.Status.OPEN


def test_a_read_that_filled_its_limit_is_followed_by_another(loop, market, settings):
    process, reads = loop
    settings.BOURSE_ENGINE_BATCH = 2
    account = AccountFactory()
    fund(account, USD="1000")
    orders = [_buy(account, f"o{index}") for index in range(3)]
    process._iterate()  # two commands: the limit, so more may be waiting
    process._iterate()  # the third, unwoken since the first read took its wake-up
    process._iterate()  # one command of a limit of two: drained
    assert reads == [market.pk, market.pk]
    assert {o.status for o in Order.objects.filter(pk__in=[o.pk for o in orders])} == {Order.Status.OPEN}


def test_a_command_whose_wake_up_was_lost_is_read_at_the_fallback(loop, market):
    process, reads = loop
    account = AccountFactory()
    fund(account, USD="1000")
    order = _buy(account, "a")
    process._iterate()
    reads.clear()
    # A command committed without its wake-up (the submitter's NOTIFY lost with its connection).
    Command.objects.create(market=market, kind=Command.Kind.CANCEL, order=order)
    process._iterate()
    assert reads == []  # not woken: not read yet
    process._recheck_at = 0.0  # IDLE_WAIT_S later
    process._iterate()
    assert reads == [market.pk]
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED


def test_a_lost_database_found_by_the_dead_man_check_reconnects_the_engine(engine_process, monkeypatch):
    """The dead-man check is the loop's first database call after an idle spell. A failure of
    its own is logged and retried, but a lost database is the engine's to handle: left to the
    check, it reopened Django's connection and the markets ran on while their lock connection
    (their ownership) was gone, until the next ``acquire``."""
    from django.db import OperationalError

    from trading.services import deadman

    def fails():
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(deadman, "deadman_fire_due", fails)
    connected = [True]
    monkeypatch.setattr(engine_process, "_connected", lambda: connected[0])
    engine_process.fire_dead_man()  # the database answers: the check's own failure, logged

    connected[0] = False
    with pytest.raises(OperationalError):
        engine_process.fire_dead_man()

    # run() hands it to reconnect(), whose log line the operators alert on.
    lost: list[BaseException] = []

    def reconnect(error):
        lost.append(error)
        engine_process.stopping = True

    monkeypatch.setattr(engine_process, "acquire", lambda: None)
    monkeypatch.setattr(engine_process, "reconnect", reconnect)
    engine_process._next_dead_man = 0.0
    engine_process.run()
    assert len(lost) == 1 and isinstance(lost[0], OperationalError)
