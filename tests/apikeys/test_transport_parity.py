"""One verifier (issue 13, item 2): the same bad credentials get the same code and the same
audit event on REST, the WebSocket ``auth`` op and the FIX Logon — against the real servers
(daphne for REST and WebSocket, the FIX gateway process) — and the decision path does the
same work for an unknown key as for a known key with a wrong signature, on every transport
(no timing oracle)."""
import json
import time
import urllib.request
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.error import HTTPError

import pytest
from websockets.sync.client import connect

from apikeys import signing
from audit.models import AuditEvent
from tests.factories import ApiKeyFactory, AssetFactory, MarketFactory
from tests.fix.support import Processes, RawClient, logon_signature, now_fix
from tests.signed import fresh_nonce
from tests.ws.helpers import auth_op
from tests.ws.test_live_server import daphne, recv

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PATH = "/api/v1/balances"


class Forged:
    """A key-like object for signing: a real key id with a wrong secret, or an unknown id."""

    def __init__(self, key_id, secret, scheme="hmac"):
        self.key_id, self.secret, self.scheme, self.private_key = key_id, secret, scheme, None


def rest_code(base: str, key, *, timestamp=None) -> str:
    headers = signing.signed_headers(
        key_id=key.key_id, timestamp=timestamp or int(time.time() * 1000), nonce=fresh_nonce(),
        method="GET", path=PATH, query="", body=b"", secret=key.secret, private_key=None,
    )
    request = urllib.request.Request(base + PATH, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.status)
    except HTTPError as error:
        return json.loads(error.read())["code"]


def ws_code(url: str, key, *, timestamp=None) -> str:
    with connect(url, open_timeout=10) as ws:
        ws.send(json.dumps(auth_op(key, timestamp=timestamp)))
        frame = recv(ws)
        return frame["type"] if frame["type"] == "auth" else frame["code"]


def fix_code(port: int, key, *, timestamp=None) -> str:
    raw = RawClient(port, key)
    try:
        sending_time = now_fix() if timestamp is None else _fix_time(timestamp)
        raw.logon(sending_time=sending_time, signature=logon_signature(key, sending_time, 1))
        message = raw.read(5)
        assert message is not None
        if message.msg_type == "A":
            return "A"
        assert message.msg_type == "5", message.fields
        return message.get(58).split(":", 1)[0]
    finally:
        raw.close()


def _fix_time(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.strftime("%Y%m%d-%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


@contextmanager
def servers():
    usd, btc = AssetFactory(code="USD", scale=6), AssetFactory(code="BTC", scale=8)
    MarketFactory(base=btc, quote=usd)
    processes = Processes()
    try:
        with daphne() as url:
            yield url.replace("ws://", "http://").removesuffix("/ws/v1"), url, processes.port
    finally:
        print(processes.stop())


def test_the_same_bad_credentials_get_the_same_code_and_audit_event_on_every_transport():
    good = ApiKeyFactory()
    revoked = ApiKeyFactory()
    from apikeys.services import apikey_revoke, apikey_update

    apikey_revoke(key=revoked)
    fenced = ApiKeyFactory()
    apikey_update(key=fenced, ip_allowlist=["10.0.0.0/8"])
    frozen = ApiKeyFactory()
    owner = frozen.account.owner
    owner.is_active = False
    owner.save()
    cases = [  # (credentials, timestamp, the code every transport gives)
        (Forged("bk_unknownkey00000000000000", "x" * 43), None, "invalid_credentials"),
        (Forged(good.key_id, "y" * 43), None, "invalid_credentials"),
        (good, int(time.time() * 1000) - 120_000, "timestamp_out_of_window"),
        (revoked, None, "key_revoked"),
        (fenced, None, "ip_not_allowed"),
        (frozen, None, "owner_deactivated"),
    ]
    with servers() as (base, ws_url, fix_port):
        for key, timestamp, expected in cases:
            before = set(AuditEvent.objects.filter(action="auth.failed").values_list("pk", flat=True))
            got = {
                "api": rest_code(base, key, timestamp=timestamp),
                "ws": ws_code(ws_url, key, timestamp=timestamp),
                "fix": fix_code(fix_port, key, timestamp=timestamp),
            }
            assert got == {"api": expected, "ws": expected, "fix": expected}, (key.key_id, got)
            audited = AuditEvent.objects.filter(action="auth.failed").exclude(pk__in=before)
            rows = sorted((e.after["channel"], e.reason, e.target_id) for e in audited)
            assert rows == [(channel, expected, key.key_id) for channel in ("api", "fix", "ws")], rows
        # and the good key works on all three
        assert rest_code(base, good) == "200"
        assert ws_code(ws_url, good) == "auth"
        assert fix_code(fix_port, good) == "A"


def _work_per_refusal(monkeypatch, attempt) -> dict[str, int]:
    """The work an attempt triggers in the decision path, from a cold key cache: secret
    decryptions and HMAC comparisons."""
    import hmac

    from apikeys import crypto, keycache

    counts = {"decrypt": 0, "compare": 0}
    real_decrypt, real_compare = crypto.decrypt_secret, hmac.compare_digest

    def decrypt(token):
        counts["decrypt"] += 1
        return real_decrypt(token)

    def compare(a, b):
        counts["compare"] += 1
        return real_compare(a, b)

    keycache.forget_all()
    with monkeypatch.context() as patch:
        patch.setattr(crypto, "decrypt_secret", decrypt)
        patch.setattr(hmac, "compare_digest", compare)
        attempt()
    return counts


@pytest.mark.parametrize("transport", ["api", "ws", "fix"])
def test_unknown_key_and_wrong_signature_do_the_same_work(monkeypatch, transport, market):
    """No timing oracle: an unknown key id costs the same decryption and HMAC as a known key
    with a wrong signature, through each transport's entry point into the verifier."""
    from asgiref.sync import async_to_sync

    from tests.signed import SignedClient
    from tests.ws.helpers import connected
    from trading.fix.logon import logon_verify

    good = ApiKeyFactory()

    def attempt(key):
        if transport == "api":
            assert SignedClient(key).get(PATH).json()["code"] == "invalid_credentials"
        elif transport == "ws":
            async def run():
                async with connected() as client:
                    return await client.ask(auth_op(key))
            assert async_to_sync(run)()["code"] == "invalid_credentials"
        else:
            sending_time = now_fix()
            with pytest.raises(Exception) as refused:
                logon_verify(sender=key.key_id, target="BOURSE", seq="1", sending_time=sending_time,
                             raw_data=logon_signature(key, sending_time, 1), source_ip="127.0.0.1")
            assert getattr(refused.value, "code", None) == "invalid_credentials"

    unknown = _work_per_refusal(monkeypatch, lambda: attempt(Forged("bk_unknownkey00000000000000", "x" * 43)))
    wrong = _work_per_refusal(monkeypatch, lambda: attempt(Forged(good.key_id, "y" * 43)))
    assert unknown == wrong == {"decrypt": 1, "compare": 1}


def test_a_second_fix_session_is_refused_with_session_active_and_audited(market):
    key = ApiKeyFactory()
    processes = Processes()
    try:
        first = RawClient(processes.port, key)
        first.logon()
        first.expect("A")
        second = RawClient(processes.port, key)
        second.logon()
        logout = second.expect("5")
        assert logout.get(58).startswith("session_active: ")
        assert second.wait_closed()
        event = AuditEvent.objects.get(action="auth.failed", reason="session_active")
        assert (event.target_id, event.after["channel"]) == (key.key_id, "fix")
        first.send("0", [])  # the first session is unaffected
        assert first.read(1) is None or not first.closed
        first.close()
        second.close()
    finally:
        print(processes.stop())


def test_a_throttled_source_is_audited_too(market, settings):
    settings.BOURSE_RATE_LIMITS = {**settings.BOURSE_RATE_LIMITS, "auth_failures": "2/86400"}
    from tests.signed import SignedClient

    wrong = Forged(ApiKeyFactory().key_id, "z" * 43)
    codes = [SignedClient(wrong).get(PATH).json()["code"] for _ in range(3)]
    assert codes == ["invalid_credentials", "invalid_credentials", "rate_limited"]
    reasons = list(AuditEvent.objects.filter(action="auth.failed").order_by("id").values_list("reason", flat=True))
    assert reasons == codes
