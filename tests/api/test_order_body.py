"""An order body's fast path (``trading.api.serializers.order_submit_body``) answers exactly as
``OrderSubmitSerializer`` does: for every body it accepts, the same validated data; every
body the serializer refuses, it leaves to the serializer (so the errors are the documented
ones). Checked on hand-picked edge cases and on generated bodies."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from trading.api.serializers import OrderSubmitSerializer, _fast_order_body, order_submit_body


def _drf(body):
    serializer = OrderSubmitSerializer(data=body)
    return dict(serializer.validated_data) if serializer.is_valid() else None


def _agree(body):
    fast, drf = _fast_order_body(body), _drf(body)
    if fast is not None:
        assert drf is not None, f"fast path accepted what the serializer refuses: {body!r}"
        assert fast == drf and list(fast) == list(drf), (body, fast, drf)
    return fast, drf


BASE = {"market": "BTC-USD", "side": "buy", "type": "limit", "price": "100.00", "quantity": "0.5000"}

CASES = [
    BASE,
    {**BASE, "client_order_id": "abc-1", "time_in_force": "ioc", "post_only": True, "stp": "cancel_both"},
    {**BASE, "type": "stop_limit", "stop_price": "99.5"},
    {"market": "BTC-USD", "side": "buy", "type": "market", "quote_quantity": "250.00"},
    {**BASE, "time_in_force": "gtd", "expire_time": "2026-12-31T23:59:59Z"},
    {**BASE, "price": None, "client_order_id": None, "expire_time": None},
    {**BASE, "price": " 100"}, {**BASE, "price": "1e3"}, {**BASE, "price": "-1"}, {**BASE, "price": "0"},
    {**BASE, "price": 100}, {**BASE, "price": "1." + "0" * 19}, {**BASE, "quantity": "9" * 39},
    {**BASE, "market": " BTC-USD"}, {**BASE, "market": ""}, {**BASE, "market": "btc-usd"}, {**BASE, "market": 1},
    {**BASE, "side": "BUY"}, {**BASE, "side": None}, {**BASE, "side": ["buy"]}, {**BASE, "type": True},
    {**BASE, "time_in_force": None}, {**BASE, "time_in_force": "GTC"}, {**BASE, "post_only": "true"},
    {**BASE, "post_only": 1}, {**BASE, "post_only": None}, {**BASE, "stp": None},
    {**BASE, "client_order_id": "abc\n"}, {**BASE, "client_order_id": ""}, {**BASE, "client_order_id": 7},
    {**BASE, "client_order_id": "x" * 37}, {**BASE, "expire_time": ""}, {**BASE, "expire_time": " "},
    {**BASE, "expire_time": "x" * 41}, {**BASE, "expire_time": "2026-12-31 23:59:59Z"},
    {**BASE, "extra": 1}, [], "text", None, {},
]


@pytest.mark.parametrize("body", CASES)
def test_edge_cases_answer_as_the_serializer(body):
    _agree(body)


def test_plain_bodies_take_the_fast_path():
    for body in CASES[:6]:
        assert _fast_order_body(body) is not None, body


def test_a_refused_body_raises_the_serializers_error():
    with pytest.raises(serializers.ValidationError) as refused:
        order_submit_body({**BASE, "side": "BUY"})
    assert "side" in refused.value.detail


_text = st.one_of(st.sampled_from(["buy", "sell", "limit", "market", "gtc", "gtd", "BTC-USD", "", " ", "0.01",
                                   "100", "1e5", "-1", "abc_-1", "2026-12-31T23:59:59Z"]), st.text(max_size=45))
_value = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _text)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(OrderSubmitSerializer._declared_fields) + ["extra"]), _value),
       st.sampled_from([{}, BASE]))
def test_generated_bodies_answer_as_the_serializer(fields, base):
    _agree({**base, **fields})
