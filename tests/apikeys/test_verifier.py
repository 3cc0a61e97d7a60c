"""The request verifier, through REST and called directly: every refusal and its code."""
import base64
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apikeys import keycache, services, verifier
from apikeys.models import ApiKey
from apikeys.signing import EMPTY_BODY_SHA256, body_sha256, sign_hmac, signed_string
from exchange import errors
from tests.factories import ApiKeyFactory
from tests.signed import SignedClient, fresh_nonce

pytestmark = pytest.mark.django_db

PATH = "/api/v1/account"


@pytest.fixture(params=["hmac", "ed25519"])
def key(request, trader):
    return ApiKeyFactory(account=trader, scheme=request.param)


@pytest.fixture
def signed(key):
    return SignedClient(key)


def code_of(response):
    assert response["Content-Type"] == "application/problem+json", response.content
    return response.json()["code"]


def test_valid_signature_is_accepted_for_both_schemes(signed, key):
    response = signed.get(PATH)
    assert response.status_code == 200, response.content
    assert response.json()["api_key"]["scheme"] == key.scheme


def test_signed_query_and_body_are_accepted(signed):
    assert signed.get("/api/v1/ledger", query="limit=5&asset=").status_code == 200
    # A body on a GET is unusual but must be signed like any other.
    assert signed.get(PATH, body=b'{"hello": "world"}').status_code == 200


def test_wrong_secret_is_invalid_credentials(trader):
    key = ApiKeyFactory(account=trader)
    key.secret = "not-the-secret"
    assert code_of(SignedClient(key).get(PATH)) == "invalid_credentials"


def test_signature_made_by_another_ed25519_key_is_refused(trader):
    key = ApiKeyFactory(account=trader, scheme="ed25519")
    key.private_key = ApiKeyFactory(account=trader, scheme="ed25519").private_key
    assert code_of(SignedClient(key).get(PATH)) == "invalid_credentials"


@pytest.mark.parametrize(
    "tamper",
    [
        {"method": "POST"},
        {"path": "/api/v1/balances"},
        {"query": "asset=USD"},
        {"body": b'{"x": 1}'},
    ],
    ids=["method", "path", "query", "body"],
)
def test_tampering_with_any_signed_part_is_invalid_credentials(signed, tamper):
    # given headers signed for GET /api/v1/ledger?asset=BTC with an empty body
    headers = signed.headers("GET", "/api/v1/ledger", "asset=BTC", b"")
    # when one signed part of the request differs from what was signed
    method = tamper.get("method", "GET")
    path = tamper.get("path", "/api/v1/ledger")
    query = tamper.get("query", "asset=BTC")
    body = tamper.get("body", b"")
    response = signed.client.generic(method, f"{path}?{query}", data=body, content_type="application/json", headers=headers)
    # then the signature does not verify
    assert response.status_code == 401
    assert code_of(response) == "invalid_credentials"


def test_unknown_key_is_indistinguishable_from_bad_signature(signed, key):
    unknown = signed.get(PATH, overrides={"X-API-Key": "bk_doesnotexist000000000000"})
    bad_sig = signed.get(PATH, overrides={"X-API-Signature": base64.b64encode(b"x" * 32).decode()})
    assert unknown.status_code == bad_sig.status_code == 401
    assert unknown.json()["code"] == bad_sig.json()["code"] == "invalid_credentials"
    assert unknown.json()["detail"] == bad_sig.json()["detail"]


@pytest.mark.parametrize("offset_ms, accepted", [(-4_000, True), (-6_000, False), (900, True), (2_000, False)])
def test_timestamp_window_default(signed, offset_ms, accepted):
    response = signed.get(PATH, timestamp=int(time.time() * 1000) + offset_ms)
    if accepted:
        assert response.status_code == 200, response.content
    else:
        assert response.status_code == 401
        body = response.json()
        assert body["code"] == "timestamp_out_of_window"
        assert body["server_time"].endswith("Z") and abs(body["server_epoch_ms"] - time.time() * 1000) < 5_000


def test_longer_window_accepts_older_timestamps(signed):
    old = int(time.time() * 1000) - 30_000
    assert code_of(signed.get(PATH, timestamp=old)) == "timestamp_out_of_window"
    assert signed.get(PATH, timestamp=old, window=60_000).status_code == 200


def test_reused_nonce_is_refused(signed):
    nonce = fresh_nonce()
    assert signed.get(PATH, nonce=nonce).status_code == 200
    replay = signed.get(PATH, nonce=nonce)
    assert replay.status_code == 401 and code_of(replay) == "nonce_reused"


def test_exact_replay_with_a_longer_window_is_still_refused(signed):
    # X-API-Window is not signed: the nonce must outlive any window a replayer could claim.
    headers = signed.headers("GET", PATH)
    assert signed.client.get(PATH, headers=headers).status_code == 200
    replay = signed.client.get(PATH, headers={**headers, "X-API-Window": "60000"})
    assert code_of(replay) == "nonce_reused"


def test_same_nonce_on_two_keys_is_fine(trader):
    nonce = fresh_nonce()
    first, second = ApiKeyFactory(account=trader), ApiKeyFactory(account=trader)
    assert SignedClient(first).get(PATH, nonce=nonce).status_code == 200
    assert SignedClient(second).get(PATH, nonce=nonce).status_code == 200


@pytest.mark.parametrize(
    "header, value",
    [
        ("X-API-Nonce", "short"),
        ("X-API-Nonce", "has spaces in it and is long enough"),
        ("X-API-Nonce", "semi;colon-0123456789"),
        ("X-API-Nonce", "x" * 65),
        ("X-API-Timestamp", "12.5"),
        ("X-API-Timestamp", "-1700000000000"),
        ("X-API-Window", "0"),
        ("X-API-Window", "60001"),
        ("X-API-Window", "five"),
        ("X-API-Signature", "not base64!!"),
    ],
)
def test_malformed_credential_headers_are_invalid_credentials_naming_the_header(signed, header, value):
    response = signed.get(PATH, overrides={header: value})
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "invalid_credentials"
    assert body["errors"][0]["field"] == header


@pytest.mark.parametrize("missing", ["X-API-Key", "X-API-Timestamp", "X-API-Nonce", "X-API-Signature"])
def test_partial_headers_are_missing_credentials(signed, missing):
    response = signed.get(PATH, overrides={missing: None})
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "missing_credentials"
    assert [e["field"] for e in body["errors"]] == [missing]


def test_revoked_key_is_reported_only_after_the_signature_verified(signed, key):
    services.apikey_revoke(key=key)
    assert code_of(signed.get(PATH)) == "key_revoked"
    forged = signed.get(PATH, overrides={"X-API-Signature": base64.b64encode(b"y" * 32).decode()})
    assert code_of(forged) == "invalid_credentials"  # no oracle on key status without the key


def test_expired_key(signed, key):
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert code_of(signed.get(PATH)) == "key_expired"
    forged = signed.get(PATH, overrides={"X-API-Signature": base64.b64encode(b"y" * 32).decode()})
    assert code_of(forged) == "invalid_credentials"


def test_key_expiring_later_still_works(signed, key):
    services.apikey_update(key=key, expires_at=timezone.now() + timedelta(hours=1))
    assert signed.get(PATH).status_code == 200


def test_a_refused_request_burns_its_nonce(signed, key):
    """Refused once its signature verified: the same signed request can never come back."""
    nonce = fresh_nonce()
    services.apikey_update(key=key, ip_allowlist=["203.0.113.0/24"])
    assert code_of(signed.get(PATH, nonce=nonce)) == "ip_not_allowed"
    services.apikey_update(key=key, ip_allowlist=[])
    assert code_of(signed.get(PATH, nonce=nonce)) == "nonce_reused"


def test_last_used_at_is_written_at_most_once_a_minute(signed, key):
    assert key.last_used_at is None
    signed.get(PATH)
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None
    signed.get(PATH)
    key.refresh_from_db()
    assert key.last_used_at == first  # within the minute: no write
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=first - timedelta(minutes=2))
    keycache.forget(key.key_id)  # a change behind the services: the process would see it within BOURSE_KEY_CACHE_S
    signed.get(PATH)
    key.refresh_from_db()
    assert key.last_used_at > first


def test_verify_request_directly_transport_agnostic(key, trader):
    # The WebSocket auth op signs GET /ws/v1 with empty query and body.
    ts, nonce = str(int(time.time() * 1000)), fresh_nonce()
    message = signed_string(ts, nonce, "GET", "/ws/v1", "", EMPTY_BODY_SHA256)
    signature = SignedClient(key).headers("GET", "/ws/v1", timestamp=int(ts), nonce=nonce)["X-API-Signature"]
    verified = verifier.verify_request(
        key_id=key.key_id, timestamp=ts, nonce=nonce, signature=signature, method="GET", path="/ws/v1",
        query="", body_sha256=EMPTY_BODY_SHA256, source_ip="127.0.0.1",
    )
    assert verified.pk == key.pk and verified.account_id == trader.pk
    assert verifier.signature_valid(verified, message.encode(), base64.b64decode(signature))
    assert not verifier.signature_valid(verified, message.encode() + b"x", base64.b64decode(signature))


def test_signature_valid_for_a_fix_logon_string(trader):
    key = ApiKeyFactory(account=trader)
    soh = "\x01"
    logon = soh.join(["20261123-18:00:00.123", "A", "1", key.key_id, "BOURSE"]).encode()
    signature = base64.b64decode(sign_hmac(key.secret, logon))
    assert verifier.signature_valid(key, logon, signature)
    assert not verifier.signature_valid(key, logon.replace(b"BOURSE", b"OTHER"), signature)


def test_require_scope(key):
    verifier.require_scope(key, "read")
    services.apikey_update(key=key, scopes=["read"])
    key.refresh_from_db()
    with pytest.raises(errors.PermissionDenied):
        verifier.require_scope(key, "trade")


def test_body_hash_is_over_raw_bytes():
    assert body_sha256(b"") == EMPTY_BODY_SHA256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_unknown_key_costs_what_a_known_key_costs(trader, monkeypatch, django_assert_num_queries):
    # Equal work for a known HMAC key id and an unknown one, cached or not: response time is
    # no key-existence oracle. First request: one look-up and one decryption; then neither.
    signed = SignedClient(ApiKeyFactory(account=trader, scheme="hmac"))
    decryptions = []
    real_decrypt = keycache.crypto.decrypt_secret
    monkeypatch.setattr(keycache.crypto, "decrypt_secret", lambda token: decryptions.append(1) or real_decrypt(token))

    def work(**overrides):
        decryptions.clear()
        with CaptureQueriesContext(connection) as queries:
            response = signed.get(PATH, overrides=overrides)
        looked_up = sum('"apikeys_apikey"' in q["sql"] and q["sql"].startswith("SELECT") for q in queries.captured_queries)
        return response.status_code, looked_up, len(decryptions)

    unknown = {"X-API-Key": "bk_doesnotexist000000000000"}
    assert work() == (200, 1, 1)
    assert work(**unknown) == (401, 1, 1)
    assert work() == (200, 0, 0)
    assert work(**unknown) == (401, 0, 0)


def test_verify_signed_message_for_a_transport_with_its_own_signed_string(trader):
    # A FIX-like transport: its own message, a timestamp it parsed, a digest as replay token.
    key = ApiKeyFactory(account=trader)
    message = "\x01".join(["20261123-18:00:00.123", "A", "1", key.key_id, "BOURSE"]).encode()
    signature = base64.b64decode(sign_hmac(key.secret, message))
    now = int(time.time() * 1000)
    call = dict(key_id=key.key_id, message=message, signature=signature, timestamp_ms=now, window_ms=5000,
                replay_token="fix-" + "ab" * 10, source_ip="127.0.0.1")
    assert verifier.verify_signed_message(**call).pk == key.pk
    with pytest.raises(errors.NonceReused):
        verifier.verify_signed_message(**call)
    with pytest.raises(errors.TimestampOutOfWindow):
        verifier.verify_signed_message(**{**call, "timestamp_ms": now - 10_000, "replay_token": "other-token-0001"})
    with pytest.raises(errors.InvalidCredentials):
        verifier.verify_signed_message(**{**call, "message": message + b"x", "replay_token": "other-token-0002"})
