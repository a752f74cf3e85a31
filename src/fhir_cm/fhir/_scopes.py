"""SMART scopes: which of the scopes asked for a token a granted set leaves out.

A token endpoint may grant fewer scopes than asked (the client's registration allows only reads) and
say so in the token response's ``scope``; every request outside them is then refused with a 403 that
rarely says why. v1 (``system/*.read``) and v2 (``system/*.rs``) spellings of the same permission
cover each other: a v2 server may answer v1 scopes in v2 words.
"""

from __future__ import annotations

import re

__all__ = ["left_out"]

_SCOPE = re.compile(r"^(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]*)\.(?P<perms>[^?]+)(?:\?.*)?$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}


def left_out(asked: str, granted: str) -> list[str]:
    """The scopes of ``asked`` that no scope of ``granted`` covers, in the order asked."""
    given = granted.split()
    return [scope for scope in asked.split() if not any(_covers(g, scope) for g in given)]


def _covers(granted: str, asked: str) -> bool:
    if granted == asked:
        return True
    g, a = _SCOPE.match(granted), _SCOPE.match(asked)
    if g is None or a is None or g["context"] != a["context"] or g["type"] not in ("*", a["type"]):
        return False
    return set(_perms(a["perms"])) <= set(_perms(g["perms"]))


def _perms(text: str) -> str:
    return _V1.get(text, text)
