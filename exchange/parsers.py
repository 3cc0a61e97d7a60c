"""The request body parser: JSON decoded with orjson, refusing deeply nested documents and
strings holding NUL (which PostgreSQL cannot store) cleanly.

orjson decodes a UTF-8 body several times faster than ``json``. Whatever orjson refuses
(malformed JSON, but also what ``json`` takes and orjson does not: integers beyond 64 bits,
lone surrogates, nesting past 1,024 levels) and any body not in UTF-8 or opening with a BOM
is parsed again by DRF's parser, so what is accepted and every refusal's message are exactly
``json``'s. ``json`` raises ``RecursionError`` (not ``ValueError``) on a document nested a
few thousand levels deep, which DRF's parser lets through as a server error; here it is a
parse error (400 ``validation_error``) like any other malformed JSON.
"""
import io

import orjson
from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from . import errors
from .syntax import nul_path

_UTF8 = frozenset({"utf-8", "utf8"})
_BOM = b"\xef\xbb\xbf"


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read() if stream is not None else b""
        data = _fast(raw) if encoding.lower() in _UTF8 and not raw.startswith(_BOM) else None
        if data is None:
            try:
                data = super().parse(io.BytesIO(raw), media_type, parser_context)
            except RecursionError:
                raise ParseError("JSON parse error - nested too deeply") from None
        else:
            data = data[0]
        where = nul_path(data)
        if where is not None:
            raise errors.ValidationError.field(where[:64], "invalid", f"{where[:64]} holds a NUL character")
        return data


def _fast(raw: bytes):
    """``(document,)``, or None when orjson does not take it (then ``json`` decides)."""
    try:
        return (orjson.loads(raw),)
    except orjson.JSONDecodeError:
        return None
