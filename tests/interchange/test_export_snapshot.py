"""An export read while a pull or an import writes (PostgreSQL, where each statement of a transaction
would otherwise see what was committed before it): the Bundle is the store of one moment."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.interchange import _export, export_cases, import_files
from fhir_cm.store import open_store, save_case
from fhir_cm.synthetic import generate_cases
from tests.pg import temporary_database


def _goals(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Goal"}


def test_an_export_while_an_import_writes_is_of_one_moment(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export read the cases, then each case's stored resources: a case changed in between was read
    as it was and its resources as they became, and the export wrote the case's old values into the new
    copies — a Goal both new and old, that no server and no case ever held."""
    (case,) = [c for c in generate_cases(12, seed=5) if c.goals][:1]
    with temporary_database() as url, open_store(url) as store:
        with store.session() as s:
            save_case(s, case)
        first = export_cases(store, settings)
        for entry in first["entry"]:  # as a server holds them: versioned
            entry["resource"]["meta"] = {"versionId": "1"}
        changed = copy.deepcopy(first)
        goal = next(e["resource"] for e in changed["entry"] if e["resource"]["resourceType"] == "Goal")
        goal["lifecycleStatus"] = "cancelled" if goal["lifecycleStatus"] != "cancelled" else "active"
        goal["meta"] = {"versionId": "2"}
        paths = [tmp_path / "first.json", tmp_path / "changed.json"]
        for path, bundle in zip(paths, (first, changed), strict=True):
            path.write_text(json.dumps(bundle))
        import_files(store, [paths[0]], settings)
        before = export_cases(store, settings)

        reads = _export.get_resources

        def while_a_write_commits(session: Any, case_id: str) -> Any:
            if not written:
                written.append(import_files(store, [paths[1]], settings))  # another session, committed
            return reads(session, case_id)

        written: list[Any] = []
        monkeypatch.setattr(_export, "get_resources", while_a_write_commits)
        during = export_cases(store, settings)
        monkeypatch.undo()
        after = export_cases(store, settings)

    assert written and _goals(after) != _goals(before)  # the write did change the Goal
    assert _goals(during) in (_goals(before), _goals(after))
