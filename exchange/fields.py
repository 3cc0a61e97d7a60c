"""Reusable DRF fields for the wire conventions.

``DecimalStringField`` is the field for every price, quantity, amount and fee in a request:
it accepts only a JSON string holding a plain decimal (``"0.0100"``), never a JSON number,
because a number has already been through a binary float in most clients' JSON encoders
and may not be the value the caller meant.
"""
import re
from decimal import Decimal, InvalidOperation

from rest_framework import serializers

# Plain positional decimals: optional sign, digits, optional fraction. No exponent, no
# NaN/Infinity, no spaces, no thousands separators.
_DECIMAL = re.compile(r"\A[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)\Z")


class DecimalStringField(serializers.Field):
    """A money value sent as a decimal string; returns a ``Decimal``.

    ``max_places`` caps the decimals (the market filters check tick and lot sizes later);
    ``positive`` refuses zero and negatives.
    """

    default_error_messages = {
        "not_a_string": "must be a decimal string such as \"0.0100\", not a JSON {kind}.",
        "invalid": "is not a plain decimal number (digits with an optional '.'; no exponent).",
        "not_positive": "must be greater than zero.",
        "max_places": "has more than {max_places} decimal places.",
        "max_digits": "has too many digits.",
    }

    def __init__(self, *, positive: bool = True, max_places: int = 18, max_digits: int = 38, **kwargs):
        self.positive = positive
        self.max_places = max_places
        self.max_digits = max_digits
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            kind = "boolean" if isinstance(data, bool) else "number" if isinstance(data, (int, float)) else type(data).__name__
            self.fail("not_a_string", kind=kind)
        text = data.strip()
        if text != data or not _DECIMAL.match(text):
            self.fail("invalid")
        try:
            value = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern already excludes these
            self.fail("invalid")
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)  # the pattern admits finite decimals only
        if -exponent > self.max_places:
            self.fail("max_places", max_places=self.max_places)
        if len(value.as_tuple().digits) > self.max_digits:
            self.fail("max_digits")
        if self.positive and value <= 0:
            self.fail("not_positive")
        return value

    def to_representation(self, value):
        return format(value, "f")


try:  # describe the field to drf-spectacular as a string with a decimal pattern
    from drf_spectacular.extensions import OpenApiSerializerFieldExtension
    from drf_spectacular.plumbing import build_basic_type
    from drf_spectacular.types import OpenApiTypes

    class DecimalStringFieldExtension(OpenApiSerializerFieldExtension):
        target_class = DecimalStringField

        def map_serializer_field(self, auto_schema, direction):
            schema = build_basic_type(OpenApiTypes.STR)
            assert schema is not None  # STR is always a basic type
            schema["pattern"] = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"
            schema["examples"] = ["0.0100"]
            return schema

except ImportError:  # pragma: no cover
    pass
