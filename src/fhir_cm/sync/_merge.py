"""Three-way comparison when the server copy moved on since the pusher last saw it (409/412).

``old`` is the ledger's copy (what the update was built on), ``local`` the update the adapter
wanted to send, ``new`` the server's current copy. Compared element by element (top-level
elements; ``id`` and ``meta`` are the server's):

* elements only the adapter changed are applied to the new copy;
* elements only the server changed are kept as the server has them — a merge must not quietly
  put back the value the adapter last saw;
* elements both changed to the same value are fine (a lost answer: the update was applied);
* elements both changed differently clash: a conflict for a person, nothing is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ThreeWay", "ancestor", "compare", "keep_server"]

_SERVER_OWNED = frozenset({"id", "meta"})


@dataclass(frozen=True)
class ThreeWay:
    """The elements each side changed since ``old``, and those where they disagree."""

    adapter: frozenset[str]
    server: frozenset[str]
    clash: frozenset[str]

    @property
    def server_only(self) -> frozenset[str]:
        """Elements to keep as the server has them when the adapter's update is re-built."""
        return self.server - self.adapter


def _changed(a: Mapping[str, Any], b: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(k for k in (a.keys() | b.keys()) - _SERVER_OWNED if a.get(k) != b.get(k))


def compare(old: Mapping[str, Any], local: Mapping[str, Any], new: Mapping[str, Any]) -> ThreeWay:
    adapter, server = _changed(old, local), _changed(old, new)
    clash = frozenset(k for k in adapter & server if local.get(k) != new.get(k))
    return ThreeWay(adapter, server, clash)


def keep_server(resource: dict[str, Any], server: Mapping[str, Any], elements: frozenset[str]) -> None:
    """Put the server's value of ``elements`` back into ``resource`` (removing those it lacks), in place."""
    for name in elements:
        if name in server:
            resource[name] = server[name]
        else:
            resource.pop(name, None)


def ancestor(
    copy: Mapping[str, Any], ours: Mapping[str, Any], elements: frozenset[str], version: str | None
) -> dict[str, Any]:
    """What the ledger keeps of a written ``copy`` that holds the server's edits of ``elements`` (kept
    by a merge): those as the case maps them (``ours``, absent where it has none) and the version the
    edits were read at. The copy is then the common ancestor of the case and the server, as after a
    pull: the next pull takes the edits into the case (the server's version is newer), and a push
    before it meets the copy moved on (``If-Match`` on that version) and keeps them again. Recorded
    as written, the edits were the ledger's own: the pull passed them by, and the next push mapped
    the case's values over them."""
    held = {k: v for k, v in copy.items() if k not in elements}
    held.update({k: ours[k] for k in elements if k in ours})
    meta = dict(copy.get("meta") or {})
    if version is None:
        meta.pop("versionId", None)
    else:
        meta["versionId"] = version
    held["meta"] = meta
    return held
