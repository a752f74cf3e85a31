"""write_export: the export streamed case by case gives the bytes the whole Bundle gave, and writes
before it has read the last cases (what keeps its memory flat in the number of cases)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.orm import Session

import fhir_cm.interchange._export as export_module
from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.interchange import case_resources, import_files, write_export
from fhir_cm.mapping import References
from fhir_cm.store import Store, UnreadableCase, get_resources, list_cases, save_case
from fhir_cm.synthetic import generate_cases
from tests.fixtures_hl7 import FIXTURES
from tests.unreadable import make_unreadable

IMPORTED = [FIXTURES / "r4" / f"{n}.json" for n in ("EpisodeOfCare-example", "Goal-stop-smoking", "Encounter-home")]


def whole_bundle(store: Store, settings: Settings) -> bytes:
    """The export as it was built before it streamed: every case's entries in one Bundle, dumped once."""
    refs = References(settings.identifier_system)
    entries: list[dict[str, Any]] = []
    with store.session(read_only=True) as s:
        for case in list_cases(s):
            for key, resource in case_resources(case, get_resources(s, case.id), settings.identifier_system):
                entries.append({"fullUrl": refs.full_url(key), "resource": resource})
    return orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})


def streamed(store: Store, settings: Settings, **options: Any) -> bytes:
    out = io.BytesIO()
    write_export(store, settings, out.write, **options)
    return out.getvalue()


def fill(store: Store, cases: list[Case]) -> None:
    with store.session() as s:
        for case in cases:
            save_case(s, case)


@pytest.mark.parametrize("chunk", [1, 2, 3, 100])  # 6 cases: pages ending on the last case and short of it
def test_streamed_bytes_are_the_whole_bundles(store: Store, settings: Settings, chunk: int) -> None:
    import_files(store, IMPORTED, settings)  # a case given back as it came, among adapter-made ones
    fill(store, generate_cases(5, seed=21))

    out = streamed(store, settings, chunk=chunk)

    assert out == whole_bundle(store, settings)
    with store.session(read_only=True) as s:
        assert len(list_cases(s)) == 6


def test_an_empty_store_streams_an_empty_collection(store: Store, settings: Settings) -> None:
    assert streamed(store, settings) == b'{"resourceType":"Bundle","type":"collection"}'


def test_output_is_written_before_the_last_cases_are_read(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(store, generate_cases(6, seed=22))
    events: list[tuple[str, int]] = []
    read = export_module.list_cases

    def reading(session: Session, **kw: Any) -> list[Case]:
        cases = read(session, **kw)
        events.append(("read", len(cases)))
        return cases

    monkeypatch.setattr(export_module, "list_cases", reading)
    out = io.BytesIO()

    def write(data: bytes) -> None:
        if data.startswith(b'{"fullUrl"'):
            events.append(("entry", 0))
        out.write(data)

    write_export(store, settings, write, chunk=2)

    reads = [n for kind, n in events if kind == "read"]
    assert reads == [2, 2, 2, 0]  # never more than a page of cases at a time
    read_at = [i for i, (kind, _) in enumerate(events) if kind == "read"]
    for before, after in zip(read_at, read_at[1:]):  # each page's entries were out before the next was read
        assert ("entry", 0) in events[before:after]
    assert orjson.loads(out.getvalue())["entry"]


def test_an_unreadable_case_within_a_page_does_not_end_the_export(store: Store, settings: Settings) -> None:
    cases = sorted(generate_cases(5, seed=23), key=lambda c: c.id)
    fill(store, cases)
    make_unreadable(store, cases[1].id)
    skipped: list[UnreadableCase] = []

    bundle = orjson.loads(streamed(store, settings, chunk=2, skipped=skipped))

    episodes = {
        e["resource"]["identifier"][0]["value"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "EpisodeOfCare"
    }
    assert episodes == {c.id for c in cases} - {cases[1].id}
    assert [u.case_id for u in skipped] == [cases[1].id]


def test_a_streamed_file_imports_back_to_the_same_export(
    tmp_path: Path, store: Store, settings: Settings, new_store: Any
) -> None:
    import_files(store, IMPORTED, settings)
    fill(store, generate_cases(4, seed=24))
    path = tmp_path / "export.json"
    path.write_bytes(streamed(store, settings, chunk=2))

    target = new_store()
    import_files(target, [path], settings)

    again, first = (orjson.loads(b)["entry"] for b in (streamed(target, settings, chunk=3), path.read_bytes()))
    key = lambda e: e["fullUrl"]  # the cases' ids, and so their order, are the importing store's
    assert sorted(again, key=key) == sorted(first, key=key) and len(first) > 4
