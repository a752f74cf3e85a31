"""What the tests of the store's read commands (`fhir-cm worklist`, `caseload`) share: a real store of either
kind, the cases they hold, and the API's answer over the same store to compare with."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fhir_cm.api import create_app
from fhir_cm.cli import app
from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.store import ApiRole, create_api_key, open_store
from tests.api.test_worklist import LATE_GOAL, SEEN
from tests.pg import temporary_database

__all__ = ["STORES", "api_answer", "case", "refused_before_the_store", "store_url"]

#: The kinds of store the read commands are tested on (PostgreSQL marked: it needs the server).
STORES = ["sqlite", "postgres"]


@contextmanager
def store_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty store of ``kind`` (a SQLite file, or a PostgreSQL database dropped after)."""
    if kind == "postgres":
        with temporary_database() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'cli.db'}"


def case(case_id: str, manager: str, **fields: Any) -> Case:
    """An active health-care case of ``manager``'s with a goal past due and a visit yesterday."""
    return Case.model_validate(
        {
            "id": case_id,
            "programme": "health-care",
            "status": "active",
            "period": {"start": "2025-01-10"},
            "patient": {"kind": "patient", "id": f"patient-{case_id}", "name": "Ada Example"},
            "case_manager": {"kind": "practitioner", "id": manager},
            "goals": [LATE_GOAL],
            "contacts": SEEN,
        }
        | fields
    )


def api_answer(url: str, today: dt.date, path: str, params: dict[str, Any]) -> dict[str, Any]:
    """The API's answer on the store at ``url`` to an all-programmes supervisor, today being ``today``."""
    with open_store(url) as store:
        with store.session() as s:
            _, key = create_api_key(s, name="t", role=ApiRole.SUPERVISOR)
        api = create_app(Settings(database_url=url, fhir_base=None), store=store, clock=lambda: today)
        with TestClient(api) as client:
            answer = client.get(path, params=params, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def refused_before_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], option: str) -> None:
    """``fhir-cm *args`` is a usage error (exit 2) naming ``option``, with no traceback, refused before the
    store is opened (its file is never made)."""
    monkeypatch.setenv("FHIR_CM_DATABASE_URL", f"sqlite:///{tmp_path / 'untouched.db'}")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert option in result.stderr and "Traceback" not in result.output
    assert result.stdout == "" and not (tmp_path / "untouched.db").exists()
