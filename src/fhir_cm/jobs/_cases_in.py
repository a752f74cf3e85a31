"""Cases as people hand them in: one JSON object, an array of them, or JSON lines (``-`` = stdin)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from ..domain import Case
from ..errors import FhirCmError

__all__ = ["CaseInputError", "parse_cases", "read_cases"]


class CaseInputError(FhirCmError, ValueError):
    """The input cannot be read, is not JSON, or holds something that is not a valid case.

    The message is one line naming where (``line 3``, ``item 2``) and what is wrong, never the data.
    """


def read_cases(source: str) -> list[Case]:
    """The cases in the file ``source`` (``-``: stdin); a file without any is refused, as a wrong
    file named by mistake would otherwise pass as "nothing to do"."""
    try:
        # utf-8-sig: files saved by Windows tools start with a byte-order mark, which is no JSON.
        text = (
            sys.stdin.read().removeprefix("\ufeff") if source == "-" else Path(source).read_text(encoding="utf-8-sig")
        )
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseInputError(f"cannot read {source}: {getattr(exc, 'strerror', None) or exc}") from None
    cases = parse_cases(text)
    if not cases:
        raise CaseInputError(f"{'stdin' if source == '-' else source}: no cases in it")
    return cases


def parse_cases(text: str) -> list[Case]:
    """The cases in ``text``: one JSON object, an array of them, or JSON lines."""
    cases: list[Case] = []
    for where, data in _documents(text):
        try:
            cases.append(Case.model_validate(data))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "case"
            raise CaseInputError(f"{where}: invalid case: {field}: {err['msg']}") from None
    return cases


def _documents(text: str) -> Iterator[tuple[str, object]]:
    """``(where, data)`` for each document in ``text``."""
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    else:
        if isinstance(whole, list):
            yield from ((f"item {i}", d) for i, d in enumerate(whole, 1))
        else:
            yield "input", whole
        return
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield f"line {number}", json.loads(line)
            except json.JSONDecodeError as exc:
                raise CaseInputError(f"line {number}: not JSON ({exc.msg} at column {exc.colno})") from None
