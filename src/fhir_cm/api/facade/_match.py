"""FHIR search values: reading them from a resource, parsing them from a query, matching the two.

Three kinds of search parameter are enough for the facade (http://hl7.org/fhir/R5/search.html):

* **token** — ``code``, ``system|code``, ``|code`` (no system) and ``system|`` (any code of the
  system), over code elements, Codings, CodeableConcepts (and R5 CodeableReferences) and Identifiers;
* **reference** — ``id``, ``Type/id`` or an absolute URL, compared by type and id and where the
  reference points: a relative one, or one at a base of this façade's own (the URL it is served at,
  the server its pulled copies came from), names a local resource; an absolute URL at any other
  base names another server's resource, and matches only references to exactly that URL
  (``https://other.example/fhir/Patient/1`` is not the local ``Patient/1``: read as such, it
  answered a question about another system's patient with this one's data);
* **date** — an instant or a partial date with a prefix (``eq`` ``ne`` ``gt`` ``ge`` ``lt`` ``le``
  ``sa`` ``eb``). A partial value is the whole period it names (``2025-03`` is all of March), in the
  query and in the resource alike, and the prefixes compare the two periods as FHIR says: a goal due
  ``2025-03-04`` is due ``ge2025-03-04T10:00Z`` (its day runs past ten) but not ``eq2025-03-04T00:00Z``.
  A value with a time is the instant it names; a time without a zone is UTC.

Values are read from the resources once, when the index is built, and kept as plain tuples, so a
search compares tuples and never walks JSON. Token and reference values are pairs whose second part
(the code, the id) a matcher may name as its ``key``: the index looks those up instead of comparing
every resource of the type (see ``_index``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from fhir_cm.mapping import base_key, parse_reference, reference_base

from ._errors import InvalidSearch, UnsupportedParameter

__all__ = [
    "ANY",
    "DateMatch",
    "Kind",
    "Matcher",
    "RefMatch",
    "TokenMatch",
    "base_key",
    "extract",
    "only_type",
    "parse_instant",
    "parse_matcher",
    "sort_text",
    "split_or",
]

Kind = Literal["token", "reference", "date"]

#: A token part that matches anything (``system|`` has ANY code; ``code`` alone has ANY system).
ANY: Any = object()


class Matcher(Protocol):
    """One alternative of a search parameter's value: does it match the values a resource holds?"""

    def matches(self, values: tuple[Any, ...]) -> bool: ...

    @property
    def key(self) -> str | None:
        """The second part every value it matches has (a code, an id), or None when there is none:
        only a resource holding a value with this key can match."""
        ...


# --- splitting query values -------------------------------------------------------------------------


def _split_unescaped(text: str, sep: str) -> list[str]:
    r"""Split on ``sep`` except where escaped with a backslash; ``\,`` ``\|`` ``\$`` ``\\`` unescape."""
    parts, current, chars = [], [], iter(text)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, "\\"))
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def split_or(value: str) -> list[str]:
    """The alternatives of one parameter value (comma-separated; ``\\,`` is a literal comma, ``\\\\``
    a backslash). Escapes are kept, for the kind's parser to read."""
    return [part for part in re.findall(r"(?:[^,\\]|\\.?)*", value, re.DOTALL) if part != ""]


# --- tokens -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenMatch:
    """``system|code``; ``system`` is ANY (no bar given), None (``|code``) or a URI; ``code`` may be ANY."""

    system: Any
    code: Any

    def matches(self, values: tuple[Any, ...]) -> bool:
        return any(
            (self.system is ANY or system == self.system) and (self.code is ANY or code == self.code)
            for system, code in values
        )

    @property
    def key(self) -> str | None:
        return None if self.code is ANY else self.code


def _token(raw: str) -> TokenMatch:
    parts = _split_unescaped(raw, "|")
    if len(parts) == 1:
        return TokenMatch(ANY, parts[0])
    if len(parts) != 2:
        raise InvalidSearch("a token is code, system|code, |code or system|")
    system, code = parts
    if not system and not code:
        raise InvalidSearch("a token needs a system or a code")
    return TokenMatch(system or None, code if code else ANY)


# The readers append to a list rather than yield: they run for every resource the index holds.


def _token_values(node: Any, out: list[Any]) -> None:
    if type(node) is str:
        out.append((None, node))
    elif type(node) is dict:
        concept = node.get("concept")  # R5 CodeableReference
        if concept is not None:
            _token_values(concept, out)
        for coding in node.get("coding") or ():
            _token_values(coding, out)
        code = node.get("code")  # Coding.code
        if code is None:
            code = node.get("value")  # Identifier.value
        if type(code) is str:
            system = node.get("system")
            out.append((system if type(system) is str else None, code))


# --- references ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefMatch:
    """A reference by type (None: any type), id and base: None for a local resource (a relative
    reference, or one at a base of the façade's own), else the other server's (see :func:`base_key`)."""

    type: str | None
    id: str
    base: str | None = None

    def matches(self, values: tuple[Any, ...]) -> bool:
        return any(
            rid == self.id and base == self.base and (self.type is None or rtype == self.type)
            for rtype, rid, base in values
        )

    @property
    def key(self) -> str | None:
        return self.id


def _where(literal: str, own: Collection[str]) -> str | None:
    """None when ``literal`` names a local resource (relative, or at one of the ``own`` bases, given
    as :func:`base_key`), else the :func:`base_key` of the other server it names."""
    base = reference_base(literal)
    if base is None:
        return None
    key = base_key(base)
    return None if key in own else key


#: A relative reference: ``Type/id``, optionally versioned. Anything more before it is a URL's.
_RELATIVE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?$")


def _reference(raw: str, target: str | None, own: Collection[str]) -> RefMatch:
    if "/" in raw:
        parsed = parse_reference(raw)
        if parsed is None or not (_RELATIVE.match(raw) or _absolute(raw)):
            raise InvalidSearch("a reference is id, Type/id or an absolute URL ending in Type/id")
        return RefMatch(*parsed, _where(raw, own))
    return RefMatch(target, raw)


def _absolute(raw: str) -> bool:
    """Whether a reference is a URL with a scheme and a host before its ``Type/id`` (``http:/x/Patient/1``
    and ``https:///Patient/1`` are not: read as relative, they named the local patient)."""
    try:
        parts = urlsplit(raw)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return "://" in raw and bool(parts.scheme and parts.netloc) and reference_base(raw) is not None


def _ref_values(node: Any, out: list[Any], own: Collection[str]) -> None:
    """``(type, id, None)`` of a local reference — and, when it is absolute, also ``(type, id, its
    base)``: a search by that exact URL finds it too —; ``(type, id, base)`` of another server's."""
    if type(node) is dict and type(node.get("reference")) is str:
        literal = node["reference"]
        parsed = parse_reference(literal)
        if parsed is not None:
            where = _where(literal, own)
            out.append((*parsed, where))
            base = reference_base(literal) if where is None else None
            if base is not None:
                out.append((*parsed, base_key(base)))


# --- dates ----------------------------------------------------------------------------------------------

_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_PREFIXES = ("eq", "ne", "gt", "ge", "lt", "le", "sa", "eb")


def _zone(text: str | None) -> dt.tzinfo:
    if text is None or text == "Z":
        return dt.UTC
    sign = 1 if text[0] == "+" else -1
    hours, minutes = int(text[1:3]), int(text[4:6])
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


def _add_month(day: dt.datetime, months: int) -> dt.datetime:
    total = day.month - 1 + months
    return day.replace(year=day.year + total // 12, month=total % 12 + 1)


@functools.lru_cache(maxsize=4096)
def parse_instant(text: str) -> tuple[dt.datetime, dt.datetime]:
    """The period ``[start, end)`` a FHIR date, dateTime or instant names, in UTC.

    ``2025`` is the whole year, ``2025-03-01T10:00`` that minute, ``…:00.5`` a tenth of a second.
    Raises ``ValueError`` for text that is none of these.
    """
    # A '+' in an unencoded query string arrives as a space: take it back.
    m = _DATE.match(re.sub(r" (\d{2}:\d{2})$", r"+\1", text.strip()))
    if m is None:
        raise ValueError("not a FHIR date")
    try:
        return _period(m.groupdict())
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValueError("date out of range") from None


def _period(g: dict[str, str | None]) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime(
        int(g["y"] or 0),
        int(g["m"] or 1),
        int(g["d"] or 1),
        int(g["H"] or 0),
        int(g["M"] or 0),
        int(g["S"] or 0),
        int((g["f"] or "0")[:6].ljust(6, "0")),
        tzinfo=_zone(g["tz"]),
    ).astimezone(dt.UTC)
    if g["f"] is not None:
        end = start + dt.timedelta(microseconds=max(1, 10 ** (6 - min(len(g["f"]), 6))))
    elif g["S"] is not None:
        end = start + dt.timedelta(seconds=1)
    elif g["M"] is not None:
        end = start + dt.timedelta(minutes=1)
    elif g["d"] is not None:
        end = start + dt.timedelta(days=1)
    elif g["m"] is not None:
        end = _add_month(start, 1)
    else:
        end = start.replace(year=start.year + 1)
    return start, end


@dataclass(frozen=True, slots=True)
class DateMatch:
    """A prefixed date: is a period ``[start, end)`` a resource holds where the prefix says, relative
    to the period ``[lo, hi)`` of the search value? (http://hl7.org/fhir/R4/search.html#prefix)"""

    prefix: str
    lo: dt.datetime
    hi: dt.datetime

    def _one(self, period: tuple[dt.datetime, dt.datetime]) -> bool:
        start, end = period
        p = self.prefix
        within = self.lo <= start and end <= self.hi
        if p == "eq":
            return within
        if p == "ne":
            return not within
        if p == "gt":  # some of it after the search value's period
            return end > self.hi
        if p == "ge":
            return end > self.hi or within
        if p == "lt":  # some of it before
            return start < self.lo
        if p == "le":
            return start < self.lo or within
        if p == "sa":  # all of it after
            return start >= self.hi
        return end <= self.lo  # eb: all of it before

    def matches(self, values: tuple[Any, ...]) -> bool:
        return any(self._one(t) for t in values)

    @property
    def key(self) -> str | None:
        return None  # a range: no one value to look up


def _date(raw: str) -> DateMatch:
    prefix, text = (raw[:2], raw[2:]) if raw[:2] in _PREFIXES else ("eq", raw)
    if raw[:2] == "ap":
        raise UnsupportedParameter(f"date prefix ap is not supported: use one of {', '.join(_PREFIXES)}")
    try:
        lo, hi = parse_instant(text)
    except ValueError:
        raise InvalidSearch(
            "a date is YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.fff]][Z|±hh:mm], "
            "optionally after a prefix (eq, ne, gt, ge, lt, le, sa, eb)"
        ) from None
    return DateMatch(prefix, lo, hi)


_INSTANT = dt.timedelta(microseconds=1)


_OPEN_START = dt.datetime.min.replace(tzinfo=dt.UTC)
_OPEN_END = dt.datetime.max.replace(tzinfo=dt.UTC)


def _date_values(node: Any, out: list[Any]) -> None:
    """A date's period: the whole day, month or year of a partial date; the instant of a time; and
    a Period's from its start to its end — open where either is missing (a stay under way has no
    end yet), as FHIR searches a Period (a stay is dated by every day it lasted, not its first)."""
    if type(node) is str:
        with contextlib.suppress(ValueError):
            out.append(_span(node))
    elif type(node) is dict and ("start" in node or "end" in node):
        with contextlib.suppress(ValueError):
            start, end = node.get("start"), node.get("end")
            first = _span(start)[0] if type(start) is str else _OPEN_START
            last = _span(end)[1] if type(end) is str else _OPEN_END
            if first < last:
                out.append((first, last))


def _span(text: str) -> tuple[dt.datetime, dt.datetime]:
    start, end = parse_instant(text)
    return (start, start + _INSTANT) if "T" in text else (start, end)


def sort_text(value: Any) -> str:
    """What ``_sort`` orders a value by: a date by its start (as UTC text), a token by its pair."""
    if type(value) is tuple and value and isinstance(value[0], dt.datetime):
        return value[0].isoformat()
    return str(value)


# --- by kind --------------------------------------------------------------------------------------------


def parse_matcher(kind: Kind, raw: str, target: str | None = None, own: Collection[str] = ()) -> Matcher:
    """One alternative of a query value as a matcher; raises :class:`InvalidSearch` when it is not one.
    ``own`` are the façade's own bases (:func:`base_key`): a reference there is the local one."""
    if kind == "token":
        return _token(raw)
    if kind == "reference":
        return _reference(raw, target, own)
    return _date(raw)


_READERS = {"token": _token_values, "date": _date_values}


def _nodes(resource: Any, path: str) -> list[Any]:
    """The values at a dotted element path, lists flattened at every step."""
    current = [resource]
    for step in path.split("."):
        following: list[Any] = []
        for node in current:
            value = node.get(step) if type(node) is dict else None
            if type(value) is list:
                following.extend(value)
            elif value is not None:
                following.append(value)
        current = following
    return current


def extract(kind: Kind, resource: Mapping[str, Any], path: str, own: Collection[str] = ()) -> tuple[Any, ...]:
    """What a resource holds at ``path`` as search values of ``kind``, each once; a reference is
    local when relative or at one of the ``own`` bases (:func:`base_key`)."""
    values: list[Any] = []
    for one in path.split("|"):  # R4 and R5 names of one element (period | actualPeriod)
        for node in _nodes(resource, one):
            if kind == "reference":
                _ref_values(node, values, own)
            else:
                _READERS[kind](node, values)
    return tuple(dict.fromkeys(values))


def only_type(values: tuple[Any, ...], target: str | None) -> tuple[Any, ...]:
    """Reference values limited to one resource type (all of them when ``target`` is None)."""
    return values if target is None else tuple(v for v in values if v[0] == target)
