"""A case's served resources as the store keeps them between starts (``store.facade_copies``).

A copy is the case's :class:`Indexed` resources — JSON as served, version, time and search values —
encoded so that reading it back costs a fraction of mapping the case again: per case, compressed, a
small JSON header with each search value as the façade holds it (a date's period as two instants, the
rest as text), then the bodies as served. Decoded, it equals what the mapping made, resource for
resource (the tests compare).

``made_with`` names everything else a served resource depends on: this package's code and mapping
rules (a hash of their files, read once per process), the libraries the mapping validates with, the
FHIR version, the identifier system and the façade's own bases. Any of them changed — an upgrade, an
edited mapping file, another setting — and no earlier copy is used: the cases are mapped again.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import zlib
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from fhir_cm.terminology import mappings_dir

from ._indexed import Indexed
from ._params import params_for

__all__ = ["decode_copy", "encode_copy", "made_with"]

#: The encoding's own version: raised when its layout changes.
_FORMAT = "1"
#: zlib's fastest level: the synthetic cases' FHIR JSON shrank seven- to ninefold; level 6 took 2.6
#: times the CPU for a fifth less.
_LEVEL = 1
_LIBRARIES = ("fhir.resources", "fhir-core", "pydantic", "orjson")


def encode_copy(resources: Sequence[Indexed]) -> bytes:
    """The case's resources as one payload: a JSON header (each resource's type, id, version, time,
    search values held and body length), then the bodies as they are served, one after the other —
    not as JSON strings, which reading back would have to unescape."""
    header = [
        [r.type, r.id, r.version_id, r.last_updated, {k: v for k, v in r.values.items() if v}, len(r.body)]
        for r in resources
    ]
    head = orjson.dumps(header)
    return zlib.compress(b"".join([len(head).to_bytes(4, "big"), head, *(r.body for r in resources)]), _LEVEL)


def decode_copy(payload: bytes, case_id: str) -> list[Indexed]:
    """The resources of a payload :func:`encode_copy` made; ValueError (or KeyError, for a type or
    parameter the façade no longer has) when it is not one."""
    data = zlib.decompress(payload)
    start = 4 + int.from_bytes(data[:4], "big")
    out = []
    for rtype, rid, version_id, last_updated, found, size in orjson.loads(data[4:start]):
        values = _values(rtype, found)
        body, start = data[start : start + size], start + size
        out.append(Indexed(rtype, rid, case_id, body, version_id, dt.datetime.fromisoformat(last_updated), values))
    if start != len(data):
        raise ValueError("a kept copy's bodies do not add up to its length")
    return out


_instant = dt.datetime.fromisoformat


@functools.cache
def _none_held(rtype: str) -> dict[str, tuple[Any, ...]]:
    return dict.fromkeys(params_for(rtype), ())


@functools.cache
def _dates(rtype: str) -> frozenset[str]:
    return frozenset(name for name, p in params_for(rtype).items() if p.kind == "date")


def _values(rtype: str, found: dict[str, list[list[Any]]]) -> dict[str, tuple[Any, ...]]:
    """Every search parameter's values, as :func:`~._indexed.indexed` holds them: tuples, a date's as two
    instants; a parameter the resource holds no value of, as an empty tuple (most of them)."""
    values = dict(_none_held(rtype))
    dates = _dates(rtype)
    for name, held in found.items():
        if name not in values:
            raise KeyError(name)
        if name in dates:
            values[name] = tuple((_instant(lo), _instant(hi)) for lo, hi in held)
        else:
            values[name] = tuple(map(tuple, held))
    return values


def made_with(fhir_version: str, identifier_system: str, bases: Iterable[str]) -> str:
    """The fingerprint of what a copy is made with (see the module's docstring)."""
    what = [_FORMAT, _code(), fhir_version, identifier_system, *sorted(bases)]
    return hashlib.sha256("\n".join(what).encode()).hexdigest()


@functools.cache
def _code() -> str:
    """A hash of this package's code and mapping files, and of the versions of the libraries it maps with."""
    digest = hashlib.sha256()
    for library in _LIBRARIES:
        digest.update(f"{library}=={metadata.version(library)}\n".encode())
    package = Path(__file__).resolve().parents[2]  # fhir_cm
    for root, pattern in ((package, "*.py"), (mappings_dir(), "*")):
        for path in sorted(p for p in root.rglob(pattern) if p.is_file()):
            digest.update(f"{path.relative_to(root).as_posix()}\n".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()
