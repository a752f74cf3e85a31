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

__all__ = ["ExactDecimal", "dumps", "loads", "number"]


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
#: which keeps its numbers as they print; an exponent without a point (``1e3``) is not looked for.
_SUSPECT = re.compile(rb"\.(?:[0-9]*(?:0[\s,\]}]|[eE][-+]?[0-9])|0000|[0-9]{15})")


def number(text: str) -> float:
    """A JSON number's text as a float, or an :class:`ExactDecimal` when a float would print otherwise
    (``json.loads(..., parse_float=number)``)."""
    value = float(text)
    return value if orjson.dumps(value) == text.encode() else ExactDecimal(text)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """JSON parsed as :func:`orjson.loads` parses it (same errors), with decimals kept as written."""
    value = orjson.loads(data)
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if _SUSPECT.search(raw) is None:
        return value
    return json.loads(raw, parse_float=number)


def _default(value: Any) -> Any:
    if type(value) is ExactDecimal:
        return orjson.Fragment(value.text)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def dumps(value: Any, option: int | None = None) -> bytes:
    """:func:`orjson.dumps`, writing an :class:`ExactDecimal` as the text it was read from."""
    return orjson.dumps(value, default=_default, option=option)
