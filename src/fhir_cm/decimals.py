"""FHIR JSON with its decimals as they were written: 1.50 stays 1.50, never 1.5.

FHIR says a decimal's precision is significant and must be kept (a lab value of 1.50 was measured to
the hundredth). Parsed into a float, ``1.50``, ``1.5e3`` and ``0.000010`` all print otherwise,
so every resource that passed through the adapter — pulled, stored, imported — went out changed.

:func:`loads` parses as ``orjson`` does and then, only when the text holds a number a float would
print otherwise, parses it again keeping each such number as an :class:`ExactDecimal` (a float that
remembers its text: arithmetic and comparisons work as before). :func:`dumps` writes one back as its
text. Every other number is a plain float, and most resources hold none of these, so the check is
all they cost. Any ``orjson.dumps`` of resource data must be this one: orjson refuses the subclass.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

__all__ = ["ExactDecimal", "dumps", "integer", "loads", "number"]


class ExactDecimal(float):
    """A JSON number whose text a float would not give back (``1.50``): the float, and that text."""

    __slots__ = ("text",)

    text: str

    def __new__(cls, text: str) -> ExactDecimal:
        value = super().__new__(cls, text)
        value.text = text
        return value

    def __reduce__(self) -> tuple[type[ExactDecimal], tuple[str]]:  # pickled to a check worker and back
        return ExactDecimal, (self.text,)


#: Where a float may print a number otherwise, found by what follows its decimal point: a fraction
#: ending in 0 (``1.50``), an exponent (``1.5e3``), a run of zeros (``0.000010``), more digits than a
#: float holds. Led by the point itself, so the search costs a tenth of the parse (a pattern led by a
#: character class costs more than the parse). A string that only looks so costs the second parse,
#: which keeps its numbers as they print.
_SUSPECT = re.compile(rb"\.(?:[0-9]*(?:0[\s,\]}]|[eE][-+]?[0-9])|0000|[0-9]{15})")

#: The numbers a plain parse changes that the point does not lead to: an exponent with no point
#: (``1e3`` comes back ``1000.0``), an integer past 64 bits, more digits before the point than a float
#: holds (``12345678901234567.5``). A search led by a digit costs as much as the parse, so the text is
#: searched in the form :data:`_PLAIN` gives it: every digit, point and minus sign a ``0``, ``E`` an
#: ``e``, whatever may come before a number a ``:``, blanks gone; such a number is then a ``:0`` (a
#: two-byte lead, quick to search) with an exponent or 16 characters or more (a float's digits are
#: 15 sure ones), ending where a number ends. About a quarter of the parse; a string or a shorter
#: number that only looks so (``"ratio: 1e5, ..."``, ``-123456789012.5``) costs the second parse.
_PLAIN = bytes.maketrans(b"123456789-.E,[", b"00000000000e::")
_BLANKS = b" \t\r\n"
_PLAIN_SUSPECT = re.compile(rb":0(?:0*e\+?0+|0{15,})[:}\]]")

#: The integers a plain parse keeps as integers (orjson's range); any other is kept as written.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def number(text: str) -> float:
    """A JSON number's text as a float, or an :class:`ExactDecimal` when a float would print otherwise
    (``json.loads(..., parse_float=number, parse_int=integer)``)."""
    value = float(text)
    return value if orjson.dumps(value) == text.encode() else ExactDecimal(text)


def integer(text: str) -> int | float:
    """A JSON integer's text as an int, or an :class:`ExactDecimal` past the 64 bits orjson writes."""
    if len(text) < 19:
        return int(text)
    value = int(text) if len(text) <= 21 else None
    return value if value is not None and _INT_MIN <= value <= _INT_MAX else ExactDecimal(text)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """JSON parsed as :func:`orjson.loads` parses it (same errors), with decimals kept as written."""
    value = orjson.loads(data)
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if _SUSPECT.search(raw) is None and _PLAIN_SUSPECT.search(raw.translate(_PLAIN, _BLANKS)) is None:
        return value
    return json.loads(raw, parse_float=number, parse_int=integer)


def _default(value: Any) -> Any:
    if type(value) is ExactDecimal:
        return orjson.Fragment(value.text)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def dumps(value: Any, option: int | None = None) -> bytes:
    """:func:`orjson.dumps`, writing an :class:`ExactDecimal` as the text it was read from."""
    return orjson.dumps(value, default=_default, option=option)
