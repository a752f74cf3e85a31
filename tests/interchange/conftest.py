"""Interchange fixtures: empty SQLite stores without paying for a migration (or a new engine) per test."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fhir_cm.config import Settings
from fhir_cm.interchange import import_files
from fhir_cm.store import Store, open_store
from fhir_cm.store._tables import Base
from tests.fixtures_hl7 import hl7_examples

SYSTEM = "urn:fhir-cm:interchange-test"


@pytest.fixture(scope="session")
def _migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "store.db"
    open_store(f"sqlite:///{path}").close()
    return path


@pytest.fixture
def new_store(_migrated: Path, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens a fresh, empty store each time it is called (closed after the test)."""
    opened: list[Store] = []

    def make() -> Store:
        path = tmp_path / f"store-{len(opened)}.db"
        shutil.copy(_migrated, path)
        opened.append(open_store(f"sqlite:///{path}"))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


@pytest.fixture(scope="session")
def _shared(_migrated: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path = tmp_path_factory.mktemp("shared") / "store.db"
    shutil.copy(_migrated, path)
    with open_store(f"sqlite:///{path}") as store:
        yield store


@pytest.fixture
def store(_shared: Store) -> Store:
    """An empty store: one engine for the session (its compiled statements are reused), emptied per test."""
    with _shared.session() as s:
        for table in reversed(Base.metadata.sorted_tables):
            s.execute(table.delete())
    return _shared


def make_settings() -> Settings:
    return Settings(database_url="sqlite://", identifier_system=SYSTEM, fhir_version="auto")


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture(scope="session")
def _imported(tmp_path_factory: pytest.TempPathFactory, _migrated: Path) -> Callable[[str], Path]:
    """A store file holding every HL7 example of a version, imported together (once per session)."""
    made: dict[str, Path] = {}

    def make(version: str) -> Path:
        if version not in made:
            path = tmp_path_factory.mktemp(f"hl7-{version}") / "store.db"
            shutil.copy(_migrated, path)
            with open_store(f"sqlite:///{path}") as store:
                import_files(store, [e.path for e in hl7_examples((version,))], make_settings())  # type: ignore[arg-type]
            made[version] = path
        return made[version]

    return make


@pytest.fixture
def examples_store(_imported: Callable[[str], Path], tmp_path: Path) -> Iterator[Callable[[str], Store]]:
    """Opens a private copy of the store with every HL7 example of a version imported."""
    opened: list[Store] = []

    def make(version: str) -> Store:
        path = tmp_path / f"examples-{version}.db"
        shutil.copy(_imported(version), path)
        opened.append(open_store(f"sqlite:///{path}"))
        return opened[-1]

    yield make
    for store in opened:
        store.close()
