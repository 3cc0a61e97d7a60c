"""The request body parser: DRF's JSON parser, refusing deeply nested documents and strings
holding NUL (which PostgreSQL cannot store) cleanly.

``json`` raises ``RecursionError`` (not ``ValueError``) on a document nested a few thousand
levels deep, which DRF's parser lets through as a server error; here it is a parse error
(400 ``validation_error``) like any other malformed JSON.
"""
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from . import errors
from .syntax import nul_path


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
        where = nul_path(data)
        if where is not None:
            raise errors.ValidationError.field(where[:64], "invalid", f"{where[:64]} holds a NUL character")
        return data
