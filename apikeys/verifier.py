"""The one request-signature verifier. REST, the WebSocket ``auth`` op and FIX Logon all
call it, so a key is accepted or refused the same way on every transport.

``verify_request`` takes the credential values exactly as received (strings, or None when
absent) and the request facts, and returns the ``ApiKey`` or raises a precise
``BourseError``. The checks run in an order that leaks nothing to someone without the key:

1. a source address that failed too often recently gets 429 ``rate_limited`` at once;
2. absent credentials: 401 ``missing_credentials`` (``errors`` names each header);
3. malformed ones (timestamp not an integer, nonce not 16-64 of ``A-Za-z0-9_-``, window not
   1-60000, signature not base64): 401 ``invalid_credentials`` naming the header;
4. an unknown key or a wrong signature, indistinguishably: 401 ``invalid_credentials`` —
   or, when the timestamp is also outside ``[now - window, now + 1 s]``, 401
   ``timestamp_out_of_window`` with ``server_time`` (so a wrong clock is reported as such);
5. with the signature proven, the nonce is claimed (spent, whatever follows); then the
   timestamp outside the window: ``timestamp_out_of_window``;
6. ``key_revoked``, ``key_expired``,
   ``owner_deactivated`` (403: the owner's Active flag is off), then ``ip_not_allowed``
   (403), then the nonce (``nonce_reused``) claimed in step 5, then a request new to a
   replay store that lost its memory after it was signed (``replay_guard_reset``; see
   ``apikeys.replay``). A request refused here, or
   for its scope or a rate limit afterwards, has used its nonce: it can never be accepted.

``standing_refusal`` is step 6 without the nonce: the same rules, re-applied to an open
WebSocket or FIX session whenever its key changes (``apikeys.live``), so a session is closed
for exactly the reasons a new request would be refused.

Failures in steps 3-5 and a reused nonce count against the source address (``auth_failures`` policy).
``require_scope`` is the separate scope check (403 ``permission_denied``).

Steps 4-6 are ``verify_signed_message``, for a transport that signs a string of its own
(FIX Logon): it calls ``check_failure_budget``, parses its fields (``count_failure`` for a
malformed one), then that function.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.utils import timezone as dj_timezone

from audit.services import audit_auth_failure
from exchange import errors, metrics, ratelimit, wire

from . import crypto, gate, keycache, signing
from .models import ApiKey
from .replay import FUTURE_SKEW_MS, MAX_WINDOW_MS

log = logging.getLogger("bourse.auth")

DEFAULT_WINDOW_MS = 5_000
NONCE = re.compile(r"\A[A-Za-z0-9_-]{16,64}\Z")
TIMESTAMP = re.compile(r"\A[0-9]{1,16}\Z")
WINDOW = re.compile(r"\A[0-9]{1,6}\Z")
KEY_ID = re.compile(r"\A[A-Za-z0-9_-]{1,40}\Z")
# last_used_at is a convenience for operators, not an audit log: refresh it at most once a
# minute per key so that verifying a request stays a read-only operation almost always.
LAST_USED_RESOLUTION = timedelta(seconds=60)

HEADERS = {
    "key_id": "X-API-Key",
    "timestamp": "X-API-Timestamp",
    "nonce": "X-API-Nonce",
    "signature": "X-API-Signature",
    "window": "X-API-Window",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Which budgets an accepted request spends: (policy name, identity) pairs, from its key.
Budgets = Callable[[ApiKey], tuple[tuple[str, str], ...]]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def signature_valid(key: ApiKey, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` (raw bytes, already base64-decoded) signs ``message`` under the
    key. Constant-time for HMAC. The FIX Logon calls this with its own signed string."""
    if key.scheme == ApiKey.Scheme.HMAC:
        assert key.secret_encrypted is not None  # the database constraint: an HMAC key has its secret
        secret = crypto.decrypt_secret(key.secret_encrypted)
        expected = hmac.new(secret.encode(), message, hashlib.sha256).digest()
        return hmac.compare_digest(expected, signature)
    return crypto.ed25519_verify(key.public_key, message, signature)


def decode_signature(raw: str) -> bytes | None:
    try:
        decoded = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if decoded else None


def ip_allowed(key: ApiKey, source_ip: str | None) -> bool:
    if not key.ip_allowlist:
        return True
    try:
        address = ipaddress.ip_address((source_ip or "").strip("[]"))
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in key.ip_allowlist)


def _scope_error(key: ApiKey, scope: str) -> errors.PermissionDenied:
    scope = str(getattr(scope, "value", scope))  # a Scope member names itself as the docs do
    return errors.PermissionDenied(
        f"This endpoint needs the {scope!r} scope; the key has {', '.join(key.scopes) or 'none'}.",
        required_scope=scope,
    )


def require_scope(key: ApiKey, scope: str) -> None:
    if not key.has_scope(scope):
        raise _scope_error(key, scope)


def audit_refusal(error: errors.BourseError, *, channel: str, source_ip: str | None, key_id: str | None) -> None:
    """Audit a refused authentication (``auth.failed``, target the claimed key id) the same
    way for every transport: ``channel`` is ``api``, ``ws`` or ``fix``. Every refusal is
    audited — credential failures (401), refusals of a verified key (403), a throttled source
    (429), a second FIX session (409) — and the trail stays bounded because failures past the
    first few per source and window are only counted (``audit_auth_failure``). Never raises:
    an audit outage must not turn a refusal into a crash."""
    metrics.AUTH_REFUSALS.labels(channel, error.code).inc()
    try:
        key_id = key_id if isinstance(key_id, str) else None
        account_id = None
        if key_id and KEY_ID.match(key_id):  # the account too, so the failure shows on its console page
            known = keycache.key_get(key_id).key  # the record the verifier just read: no extra query
            account_id = known.account_id if known is not None else None
        audit_auth_failure(source_ip, key_id, error.code, channel=channel, account=account_id)
    except Exception:
        log.exception("could not audit an authentication failure", extra={"channel": channel})


def _malformed(header: str, message: str) -> errors.InvalidCredentials:
    return errors.InvalidCredentials(
        f"{header} {message}.", errors=[{"field": header, "code": "invalid", "message": f"{header} {message}."}]
    )


def count_failure(source_ip: str | None, error: errors.BourseError) -> errors.BourseError:
    """Count a failed authentication against ``source_ip``'s budget and return ``error`` (to
    raise). Transports call it for refusals they detect themselves (a malformed field)."""
    if source_ip:
        ratelimit.hit(ratelimit.AUTH_FAILURES, ratelimit.ip_identity(source_ip))
    log.info("authentication refused: %s", error.code, extra={"source_ip": source_ip})
    return error


def verify_request(
    *,
    key_id: str | None,
    timestamp: str | None,
    nonce: str | None,
    signature: str | None,
    method: str,
    path: str,
    query: str,
    body_sha256: str,
    source_ip: str | None,
    window: str | None = None,
) -> ApiKey:
    """Authenticate one signed request; return its ``ApiKey`` or raise a ``BourseError``."""
    return verify_request_budgeted(
        key_id=key_id, timestamp=timestamp, nonce=nonce, signature=signature, method=method, path=path,
        query=query, body_sha256=body_sha256, source_ip=source_ip, window=window,
    )[0]


def verify_request_budgeted(
    *,
    key_id: str | None,
    timestamp: str | None,
    nonce: str | None,
    signature: str | None,
    method: str,
    path: str,
    query: str,
    body_sha256: str,
    source_ip: str | None,
    window: str | None = None,
    budgets: Budgets | None = None,
) -> tuple[ApiKey, list[ratelimit.Usage]]:
    """``verify_request`` that also counts, on acceptance and in the same round trip to the
    shared store (``apikeys.gate``), the budgets ``budgets(key)`` names — (policy, identity)
    pairs, in order; it returns their usages (the caller records them and refuses an
    exceeded one: the last usage, when it is exceeded)."""
    given = {"key_id": key_id, "timestamp": timestamp, "nonce": nonce, "signature": signature}
    missing = [HEADERS[name] for name, value in given.items() if value is None or value == ""]
    if missing or key_id is None or timestamp is None or nonce is None or signature is None:
        _gate_failure(source_ip, counted=False)  # a throttled address hears 429 first, as always
        raise errors.MissingCredentials(
            f"Signed request headers missing: {', '.join(missing)}.",
            errors=[{"field": header, "code": "required", "message": f"{header} is required."} for header in missing],
        )

    if not TIMESTAMP.match(timestamp):
        raise _failed(source_ip, _malformed(HEADERS["timestamp"], "must be Unix epoch milliseconds (an integer)"))
    if not NONCE.match(nonce):
        raise _failed(source_ip, _malformed(HEADERS["nonce"], "must be 16-64 characters of A-Za-z0-9_-"))
    window_ms = DEFAULT_WINDOW_MS
    if window is not None and window != "":
        if not WINDOW.match(window) or not 1 <= int(window) <= MAX_WINDOW_MS:
            raise _failed(source_ip, _malformed(HEADERS["window"], f"must be an integer from 1 to {MAX_WINDOW_MS}"))
        window_ms = int(window)
    signature_bytes = decode_signature(signature)
    if signature_bytes is None:
        raise _failed(source_ip, _malformed(HEADERS["signature"], "must be base64"))

    return _verify_signed(
        key_id=key_id,
        message=signing.signed_string(timestamp, nonce, method, path, query, body_sha256).encode(),
        signature=signature_bytes,
        timestamp_ms=int(timestamp),
        window_ms=window_ms,
        replay_token=nonce,
        source_ip=source_ip,
        budgets=budgets,
    )


def check_failure_budget(source_ip: str | None) -> None:
    """Step 1: refuse (429) an address that failed authentication too often lately."""
    if source_ip:
        failures = ratelimit.hit(ratelimit.AUTH_FAILURES, ratelimit.ip_identity(source_ip), increment=False)
        if failures.count >= failures.policy.quota:
            raise ratelimit.refusal(failures)


def _gate_failure(source_ip: str | None, *, counted: bool) -> None:
    """Steps 1 and the failure count of a refusal found before the nonce, in one round trip:
    raises 429 when the address is already past its failure budget (nothing counted), else
    counts this failure (``counted``) and returns."""
    outcome = gate.run(source_ip=source_ip, mode="fail" if counted else "check")
    if outcome.outcome == gate.THROTTLED:
        assert outcome.failures is not None
        raise ratelimit.refusal(outcome.failures)


def _failed(source_ip: str | None, error: errors.BourseError) -> errors.BourseError:
    _gate_failure(source_ip, counted=True)
    log.info("authentication refused: %s", error.code, extra={"source_ip": source_ip})
    return error


def verify_signed_message(
    *,
    key_id: str,
    message: bytes,
    signature: bytes,
    timestamp_ms: int,
    window_ms: int,
    replay_token: str,
    source_ip: str | None,
) -> ApiKey:
    """Steps 4-6 for a message a transport has already parsed and built: the time window,
    key and signature, status, allowlist, then the one-time ``replay_token`` (the nonce;
    a transport without nonces can pass a digest of the signature). A transport with its
    own signed string (FIX Logon) calls ``check_failure_budget`` and then this."""
    return _verify_signed(key_id=key_id, message=message, signature=signature, timestamp_ms=timestamp_ms,
                          window_ms=window_ms, replay_token=replay_token, source_ip=source_ip, budgets=None)[0]


def _verify_signed(
    *,
    key_id: str,
    message: bytes,
    signature: bytes,
    timestamp_ms: int,
    window_ms: int,
    replay_token: str,
    source_ip: str | None,
    budgets: Budgets | None,
) -> tuple[ApiKey, list[ratelimit.Usage]]:
    server_ms = now_ms()
    in_window = server_ms - window_ms <= timestamp_ms <= server_ms + FUTURE_SKEW_MS

    # The key from the process's cache (``keycache``: at most BOURSE_KEY_CACHE_S old). An
    # unknown key id still pays for an HMAC (and, when not cached, a look-up and a
    # decryption), so that response time does not tell a prober which key ids exist.
    entry = keycache.key_get(key_id) if KEY_ID.match(key_id or "") else keycache.unknown()
    key = entry.key
    if entry.secret is not None:
        valid = hmac.compare_digest(hmac.new(entry.secret, message, hashlib.sha256).digest(), signature)
    else:
        assert key is not None  # an unknown key id carries a decoy HMAC secret
        valid = crypto.ed25519_verify(key.public_key, message, signature)
    if key is None or not valid:
        if not in_window:
            raise _failed(source_ip, _out_of_window(timestamp_ms, window_ms, server_ms))
        raise _failed(source_ip, errors.InvalidCredentials("Unknown API key or wrong signature."))

    # The signature is proven: this message is spent from now on, whatever follows, so a
    # refused request cannot be accepted later (with a longer X-API-Window, say). What the
    # process knows decides the verdict; the shared store then claims the nonce, checks the
    # replay epoch and counts the failure or the budgets in one round trip (``apikeys.gate``).
    refusal = standing_refusal(key, source_ip) if in_window else None
    verdict = "late" if not in_window else "refused" if refusal is not None else "accept"
    outcome = gate.run(
        source_ip=source_ip, mode="claim", key_id=key.key_id, nonce=replay_token, verdict=verdict,
        timestamp_ms=timestamp_ms, now_ms=server_ms, budgets=budgets(key) if budgets is not None else (),
    )
    if outcome.outcome == gate.THROTTLED:
        assert outcome.failures is not None
        raise ratelimit.refusal(outcome.failures)
    if not in_window:
        raise _logged(source_ip, _out_of_window(timestamp_ms, window_ms, server_ms))
    if refusal is not None:
        raise refusal
    if outcome.outcome == gate.NONCE_REUSED:
        raise _logged(source_ip, errors.NonceReused("This nonce was already used by this key; use a fresh one."))
    if outcome.outcome == gate.REPLAY_RESET:
        # New to a store that lost its memory since the request was signed: it may be a replay.
        raise _logged(source_ip, errors.ReplayGuardReset(
            "The replay guard restarted after this request was signed; sign it again with a fresh timestamp and nonce."))

    _touch(key)
    return key, outcome.usages


def _logged(source_ip: str | None, error: errors.BourseError) -> errors.BourseError:
    log.info("authentication refused: %s", error.code, extra={"source_ip": source_ip})
    return error


def standing_refusal(key: ApiKey, source_ip: str | None, scope: str | None = None) -> errors.BourseError | None:
    """Why a key whose signature verified may not be used from ``source_ip`` (and, with
    ``scope``, for that scope), or None: revoked, expired, owner deactivated, address outside
    the allowlist, scope missing, in that order. ``key`` needs ``account__owner`` loaded."""
    if key.status == ApiKey.Status.REVOKED:
        return errors.KeyRevoked(f"API key {key.key_id} was revoked.")
    if key.is_expired:
        return errors.KeyExpired(f"API key {key.key_id} expired at {wire.timestamp(key.expires_at)}.")
    owner = key.account.owner
    if owner is not None and not owner.is_active:
        return errors.OwnerDeactivated(f"The owner of API key {key.key_id} is deactivated.")
    if not ip_allowed(key, source_ip):
        return errors.IpNotAllowed(f"Requests from {source_ip} are not allowed for this key.")
    if scope is not None and not key.has_scope(scope):
        return _scope_error(key, scope)
    return None


def keys_standing(key_ids) -> dict[str, ApiKey]:
    """The current state of these keys (with account and owner), by key id; a deleted key
    is absent. Live sessions call it when a key-state event names their key."""
    return {key.key_id: key for key in ApiKey.objects.select_related("account__owner").filter(key_id__in=list(key_ids))}


def _out_of_window(timestamp_ms: int, window_ms: int, server_ms: int) -> errors.TimestampOutOfWindow:
    moment = _EPOCH + timedelta(milliseconds=server_ms)
    return errors.TimestampOutOfWindow(
        f"Timestamp {timestamp_ms} is outside [{server_ms - window_ms}, {server_ms + FUTURE_SKEW_MS}] "
        f"(window {window_ms} ms); check the client clock.",
        server_time=wire.timestamp(moment),
        server_epoch_ms=server_ms,
    )


def _touch(key: ApiKey) -> None:
    now = dj_timezone.now()
    previous = key.last_used_at
    if previous is not None and now - previous < LAST_USED_RESOLUTION:
        return
    # Conditional on the value we read: of several processes racing here, one writes.
    match = {"last_used_at__isnull": True} if previous is None else {"last_used_at": previous}
    ApiKey.objects.filter(pk=key.pk, **match).update(last_used_at=now)
    key.last_used_at = now
