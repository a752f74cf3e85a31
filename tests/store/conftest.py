"""Store fixtures: every store test runs on a SQLite file and on the real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fhir_cm.domain import Case, CaseStatus, Party, PartyKind, Period, ProgrammeType
from fhir_cm.store import Store, open_store, save_case
from fhir_cm.store._tables import Base
from tests.pg import temporary_database, temporary_schema

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of this test session (created here, dropped at the end)."""
    with temporary_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file (not ``:memory:``, so WAL and several connections are real)."""
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[str]:
    """A database with nothing in it, on each backend (on PostgreSQL: a new schema of the session's database)."""
    if request.param == "sqlite":
        yield sqlite_url
    else:
        with temporary_schema(request.getfixturevalue("pg_url")) as url:
            yield url


@pytest.fixture
def pg_store_url(pg_url: str) -> str:
    """The session's PostgreSQL database, migrated and emptied for this test."""
    with open_store(pg_url) as store, store.session() as s:
        # DELETE, children first: on tables this small it is much cheaper than TRUNCATE.
        for table in reversed(Base.metadata.sorted_tables):
            s.execute(table.delete())
    return pg_url


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """The URL of an empty store on each backend in turn."""
    if request.param == "sqlite":
        return sqlite_url
    url: str = request.getfixturevalue("pg_store_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open store on an empty database."""
    with open_store(store_url) as opened:
        yield opened


@pytest.fixture
def store_with_cases(store: Store, make_case: Callable[..., Case]) -> Store:
    """A store holding two plain cases, ``case-1`` and ``case-2``, for rows that must belong to a case."""
    with store.session() as s:
        save_case(s, make_case("case-1"))
        save_case(s, make_case("case-2"))
    return store


@pytest.fixture
def make_case() -> Callable[..., Case]:
    """Build a valid case; keyword arguments override the fields."""

    def build(case_id: str = "case-1", **fields: Any) -> Case:
        values: dict[str, Any] = {
            "id": case_id,
            "programme": ProgrammeType.HEALTH_CARE,
            "status": CaseStatus.ACTIVE,
            "period": Period(start=dt.date(2024, 3, 1)),
            "patient": Party(kind=PartyKind.PATIENT, id="patient-1"),
            "case_manager": Party(kind=PartyKind.PRACTITIONER, id="cm-1"),
        }
        return Case.model_validate(values | fields)

    return build
