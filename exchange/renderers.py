"""The response renderer: DRF's JSON renderer, encoding with orjson.

Responses are built from ``exchange.wire`` strings, so orjson's output is byte for byte what
DRF's renderer writes (compact separators, UTF-8 unescaped). Anything orjson would write
differently, or cannot write, goes to DRF's renderer instead: a requested indent, a value
orjson does not encode itself (``Decimal``, ``datetime`` — DRF's encoder has its own format —,
lazy translations, integers beyond 64 bits, non-string keys), and text holding U+2028 or
U+2029, which DRF escapes.
"""
import orjson
from rest_framework.renderers import JSONRenderer

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_LINE_SEPARATORS = (b"\xe2\x80\xa8", b"\xe2\x80\xa9")


class FastJSONRenderer(JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        if self.get_indent(accepted_media_type or "", renderer_context or {}) is None:
            try:
                out = orjson.dumps(data, option=_OPTIONS)
            except TypeError:
                out = None
            if out is not None and not any(mark in out for mark in _LINE_SEPARATORS):
                return out
        return super().render(data, accepted_media_type, renderer_context)
