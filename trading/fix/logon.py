"""The FIX Logon check: the same key, signature and status rules as every other transport.

The signed string is ``SendingTime ␁ MsgType ␁ MsgSeqNum ␁ SenderCompID ␁ TargetCompID``
(the field values exactly as sent, joined by SOH), signed like a REST request with the
key's HMAC secret or Ed25519 private key and sent base64-encoded in ``RawData(96)`` with
``RawDataLength(95)``. The checks run in the verifier's order (``apikeys.verifier``) and use
its primitives, so nothing here decides differently from REST:

throttled source -> missing RawData -> malformed RawData -> SendingTime outside the window
-> unknown key or wrong signature (indistinguishable) -> revoked -> expired -> source IP
-> replayed Logon -> scope ``trade``.

Every refusal raises a ``BourseError`` whose ``code`` and message become the Logout's
``Text``, and is audited (``audit_auth_failure`` channel ``fix``).
"""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta, timezone

from django.conf import settings

from apikeys import verifier
from apikeys.models import ApiKey
from apikeys.replay import FUTURE_SKEW_MS, nonce_claim
from exchange import errors, ratelimit, wire
from exchange.syntax import ascii_digits

log = logging.getLogger("bourse.fix")

SOH = "\x01"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def signed_string(sending_time: str, msg_type: str, seq: str, sender: str, target: str) -> str:
    return SOH.join([sending_time, msg_type, seq, sender, target])


def parse_utc_timestamp(text: str) -> datetime | None:
    """FIX UTCTimestamp ``YYYYMMDD-HH:MM:SS[.sss|.ssssss|.sssssssss]`` -> aware datetime."""
    base, _, fraction = text.partition(".")
    try:
        moment = datetime.strptime(base, "%Y%m%d-%H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    if fraction:
        if not ascii_digits(fraction) or len(fraction) not in (3, 6, 9):
            return None
        moment += timedelta(microseconds=int(fraction[:6].ljust(6, "0")))
    return moment


def format_utc_timestamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%d-%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _fail(source_ip, key_id, error: errors.BourseError, *, count: bool = True) -> errors.BourseError:
    if count and source_ip:
        ratelimit.hit(ratelimit.AUTH_FAILURES, source_ip)
    try:
        from audit.services import audit_auth_failure

        audit_auth_failure(source_ip, key_id, error.code, channel="fix")
    except Exception:  # an audit outage must not turn a refusal into a crash
        log.exception("could not audit a FIX logon failure")
    log.info("FIX logon refused: %s", error.code, extra={"source_ip": source_ip, "key_id": key_id})
    return error


def logon_verify(*, sender: str, target: str, seq: str, sending_time: str, raw_data: str | None, source_ip: str | None) -> ApiKey:
    """Authenticate a Logon; return the key (with its account) or raise a ``BourseError``."""
    if source_ip:
        failures = ratelimit.hit(ratelimit.AUTH_FAILURES, source_ip, increment=False)
        if failures.count >= failures.policy.quota:
            raise _fail(source_ip, sender, ratelimit.refusal(failures), count=False)
    if not raw_data:
        raise _fail(source_ip, sender, errors.MissingCredentials("Logon needs RawData(96) with the signature and RawDataLength(95)."), count=False)
    signature = verifier.decode_signature(raw_data)
    if signature is None:
        raise _fail(source_ip, sender, errors.InvalidCredentials("RawData(96) must be the base64 signature."))

    moment = parse_utc_timestamp(sending_time)
    window_ms = settings.BOURSE_FIX_LOGON_WINDOW_MS
    server_ms = verifier.now_ms()
    if moment is None:
        raise _fail(source_ip, sender, errors.InvalidCredentials("SendingTime(52) is not a UTCTimestamp."))
    sent_ms = int((moment - _EPOCH).total_seconds() * 1000)
    if not server_ms - window_ms <= sent_ms <= server_ms + FUTURE_SKEW_MS:
        raise _fail(
            source_ip,
            sender,
            errors.TimestampOutOfWindow(
                f"SendingTime {sending_time} is outside the {window_ms} ms logon window; server time is "
                f"{wire.timestamp(_EPOCH + timedelta(milliseconds=server_ms))}. Check the client clock.",
                server_epoch_ms=server_ms,
            ),
        )

    key = None
    if verifier.KEY_ID.match(sender or ""):
        key = ApiKey.objects.select_related("account").filter(key_id=sender).first()
    message = signed_string(sending_time, "A", seq, sender, target).encode("latin-1")
    if key is None or not verifier.signature_valid(key, message, signature):
        raise _fail(source_ip, sender, errors.InvalidCredentials("Unknown API key or wrong signature."))
    if key.status == ApiKey.Status.REVOKED:
        raise _fail(source_ip, sender, errors.KeyRevoked(f"API key {key.key_id} was revoked."), count=False)
    if key.is_expired:
        raise _fail(source_ip, sender, errors.KeyExpired(f"API key {key.key_id} expired at {wire.timestamp(key.expires_at)}."), count=False)
    if not verifier.ip_allowed(key, source_ip):
        raise _fail(source_ip, sender, errors.IpNotAllowed(f"Connections from {source_ip} are not allowed for this key."), count=False)
    # A captured Logon replayed inside the window is refused: its signature is its nonce.
    if not nonce_claim(key.key_id, "fix-" + hashlib.sha256(signature).hexdigest()[:40]):
        raise _fail(source_ip, sender, errors.NonceReused("This Logon was already used; sign a fresh SendingTime."))
    try:
        verifier.require_scope(key, "trade")
    except errors.PermissionDenied as error:
        raise _fail(source_ip, sender, errors.PermissionDenied("FIX order entry needs the 'trade' scope.", required_scope="trade"), count=False) from error
    return key
