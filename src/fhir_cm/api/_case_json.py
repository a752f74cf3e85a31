"""A case's JSON as the read routes answer it, kept per process by case id and revision.

Serialising a case — hundreds of fields, its transitions worked out from its stays — costs more than
finding it: a page of twenty cases spent more CPU in ``to_json`` than in the store. What a read
answers of a case (``CaseOut``) depends on the stored row alone, and every save raises the row's
revision, so the JSON kept under (id, revision, last saved) is the JSON the row would give again:
never stale, whichever process saved the case. Bytes are not tracked by the garbage collector, so
unlike decoded cases they may come and go freely (least recently used out).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel

from fhir_cm.store import CaseRecord, Store

from ._answers import json_bytes
from ._kept import KeptAnswers

__all__ = ["CaseJson", "page_json"]


class CaseJson:
    """A bounded, thread-safe map from (kind of answer, case id, revision, saved at) to JSON bytes."""

    def __init__(self, size: int) -> None:
        self._kept: KeptAnswers[tuple[str, str, int, str], bytes] = KeptAnswers(size)

    def of(self, store: Store, record: CaseRecord, kind: str, make: Callable[[CaseRecord], BaseModel]) -> bytes:
        """The JSON of ``make(record)``, ``record`` read from ``store``: kept from an earlier answer of
        the same kind at this revision, or made now."""
        key = (kind, record.case.id, record.revision, record.updated_at.isoformat())
        kept = self._kept.get(store, key)
        return kept if kept is not None else self._kept.put(store, key, json_bytes(make(record)))

    def __len__(self) -> int:
        return len(self._kept)


def page_json(frame: BaseModel, items: Sequence[bytes]) -> bytes:
    """The JSON of ``frame`` — a page model whose first field is ``items``, made with none — with the
    items' JSON put in: what serialising the page with those items would give."""
    empty = json_bytes(frame)
    head = b'{"items":[]'
    if not empty.startswith(head):
        raise ValueError("a page's first field must be its items")
    return b'{"items":[' + b",".join(items) + b"]" + empty[len(head) :]
