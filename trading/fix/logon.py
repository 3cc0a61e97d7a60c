"""The FIX Logon check: the same key, signature and status rules as every other transport.

The signed string is ``SendingTime ␁ MsgType ␁ MsgSeqNum ␁ SenderCompID ␁ TargetCompID``
(the field values exactly as sent, joined by SOH), signed like a REST request with the
key's HMAC secret or Ed25519 private key and sent base64-encoded in ``RawData(96)`` with
``RawDataLength(95)``. The decision is the verifier's (``apikeys.verifier``), the same
functions REST and WebSocket call, so nothing here decides differently:

throttled source -> missing RawData -> malformed RawData or SendingTime -> SendingTime
outside the window -> unknown key or wrong signature (indistinguishable, with the same
decoy work) -> revoked -> expired -> source IP -> replayed Logon -> scope ``trade``.

Every refusal raises a ``BourseError`` whose ``code`` and message become the Logout's
``Text``, and is audited (``verifier.audit_refusal``, channel ``fix``).
"""
from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings

from apikeys import verifier
from exchange import errors
from exchange.syntax import ascii_digits

if TYPE_CHECKING:
    from apikeys.models import ApiKey

log = logging.getLogger("bourse.fix")

SOH = "\x01"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def signed_string(sending_time: str, msg_type: str, seq: str, sender: str, target: str) -> str:
    return SOH.join([sending_time, msg_type, seq, sender, target])


def parse_utc_timestamp(text: str) -> datetime | None:
    """FIX UTCTimestamp ``YYYYMMDD-HH:MM:SS[.sss|.ssssss|.sssssssss]`` -> aware datetime."""
    base, _, fraction = text.partition(".")
    try:
        moment = datetime.strptime(base, "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    if fraction:
        if not ascii_digits(fraction) or len(fraction) not in (3, 6, 9):
            return None
        moment += timedelta(microseconds=int(fraction[:6].ljust(6, "0")))
    return moment


def format_utc_timestamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%d-%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _audited(source_ip: str | None, key_id: str | None, error: errors.BourseError) -> None:
    """Audit a refused Logon (channel ``fix``), as REST and WebSocket audit theirs."""
    verifier.audit_refusal(error, channel="fix", source_ip=source_ip, key_id=key_id)
    log.info("FIX logon refused: %s", error.code, extra={"source_ip": source_ip, "key_id": key_id})


def logon_verify(*, sender: str, target: str, seq: str, sending_time: str, raw_data: str | None, source_ip: str | None) -> ApiKey:
    """Authenticate a Logon; return the key (with its account) or raise a ``BourseError``.

    The same verifier functions as REST and WebSocket decide (``check_failure_budget``,
    ``verify_signed_message``, ``require_scope``); this adds only the FIX-specific parsing.
    """
    try:
        return _verify(sender=sender, target=target, seq=seq, sending_time=sending_time, raw_data=raw_data, source_ip=source_ip)
    except errors.BourseError as error:
        _audited(source_ip, sender, error)
        raise


def _verify(*, sender: str, target: str, seq: str, sending_time: str, raw_data: str | None, source_ip: str | None) -> ApiKey:
    verifier.check_failure_budget(source_ip)
    if not raw_data:
        raise errors.MissingCredentials("Logon needs RawData(96) with the signature and RawDataLength(95).")
    signature = verifier.decode_signature(raw_data)
    if signature is None:
        raise verifier.count_failure(source_ip, errors.InvalidCredentials("RawData(96) must be the base64 signature."))
    moment = parse_utc_timestamp(sending_time)
    if moment is None:
        raise verifier.count_failure(source_ip, errors.InvalidCredentials("SendingTime(52) is not a UTCTimestamp."))
    key = verifier.verify_signed_message(
        key_id=sender,
        message=signed_string(sending_time, "A", seq, sender, target).encode("latin-1"),
        signature=signature,
        timestamp_ms=int((moment - _EPOCH).total_seconds() * 1000),
        window_ms=settings.BOURSE_FIX_LOGON_WINDOW_MS,
        # A captured Logon replayed inside the window is refused: its signature is its nonce.
        replay_token="fix-" + hashlib.sha256(signature).hexdigest()[:40],
        source_ip=source_ip,
    )
    try:
        verifier.require_scope(key, "trade")
    except errors.PermissionDenied as error:
        raise errors.PermissionDenied("FIX order entry needs the 'trade' scope.", required_scope="trade") from error
    return key
