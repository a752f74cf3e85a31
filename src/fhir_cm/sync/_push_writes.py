"""The writes of a push's round, and whether the server's copy holds what one sent.

A round's entries (``Write``: the resource, how it is sent, whether it creates or updates) are
what the case's push (``_push_case``) sends, records and compares: a copy equal to what was sent
(the ``urn:uuid`` references read as the ids the server gave) settles the case without one more
round; a copy whose version moved on since the ledger's was edited by another system.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..fhir import BundleEntry, WriteResult
from ..mapping import PlannedEntry, ResourceKey
from ..store import content_json
from ._push_session import version_of

__all__ = ["Write", "assigned_ids", "kept_as_sent", "moved_on", "on_the_wire", "same_as_sent"]


@dataclass
class Write:
    """One entry of a round's transaction, with the resource it writes."""

    key: ResourceKey
    entry: BundleEntry
    kind: str  # "create" | "update"
    known_content: bytes | None = field(default=None, repr=False)  # ``content``, if made already

    @property
    def resource(self) -> dict[str, Any]:
        return self.entry.resource or {}

    @property
    def target(self) -> str:
        return self.entry.full_url or self.entry.url

    @functools.cached_property
    def content(self) -> bytes:
        """``content_json`` of what is sent: for its Provenance's id and to compare with the copy
        (planning an entry changes at most its ``id``, which the content leaves out)."""
        return self.known_content if self.known_content is not None else content_json(self.resource)


def on_the_wire(planned: PlannedEntry) -> BundleEntry:
    """The planned entry as sent: a PUT is addressed by its url, only a POST needs its ``urn:uuid``."""
    full_url = planned.full_url if planned.method == "POST" else None
    return BundleEntry(planned.method, planned.url, planned.resource, full_url, planned.if_none_exist, planned.if_match)


def moved_on(old: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether the server copy changed since ``old``: by ``versionId`` where both have one, else (a
    server keeping no versions) by content — equal missing versions said "unchanged" whatever the
    copy held."""
    before, now = version_of(old), version_of(current)
    if before is not None and now is not None:
        return before != now
    return content_json(old) != content_json(current)


def assigned_ids(writes: list[Write], results: list[WriteResult]) -> dict[str, str]:
    """``urn:uuid`` of each resource the round created by POST → the ``Type/id`` the server gave it."""
    out: dict[str, str] = {}
    for write, outcome in zip(writes, results, strict=False):
        if write.entry.method == "POST" and write.entry.full_url and outcome.ok and outcome.id:
            out[write.entry.full_url] = f"{outcome.resource_type or write.key.type}/{outcome.id}"
    return out


def same_as_sent(sent: Mapping[str, Any], copy: Mapping[str, Any], assigned: Mapping[str, str]) -> bool:
    """Whether the server's ``copy`` holds what was ``sent``, a ``urn:uuid`` reference of the bundle
    reading as the id the server assigned (``id`` and ``meta``, the server's, left out)."""
    return kept_as_sent(content_json(sent), content_json(copy), assigned)


def kept_as_sent(sent: bytes, copy: bytes, assigned: Mapping[str, str]) -> bool:
    """``same_as_sent`` on ``content_json`` forms: the urns replaced in the JSON text (one pass), then
    compared. An urn the round did not assign stays as it is, and so differs from the copy."""
    if b'"urn:uuid:' in sent:
        sent = _URN.sub(lambda m: b'"%s"' % assigned.get(m[1].decode(), m[1].decode()).encode(), sent)
    return sent == copy


_URN = re.compile(rb'"(urn:uuid:[0-9a-fA-F-]{36})"')
