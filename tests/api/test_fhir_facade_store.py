"""The facade as the store changes: imported copies served losslessly, only changed cases mapped again,
changes visible at once, a broken case left out with a warning, store failures as OperationOutcomes."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import fhir_cm.api.facade._index as facade_index
from fhir_cm.api.facade import FacadeIndex
from fhir_cm.api.routes.fhir import build_fhir_router
from fhir_cm.domain import Case, GoalStatus
from fhir_cm.mapping import ResourceKey, case_plan, case_to_resources, convert_resource
from fhir_cm.store import Store, StoreUnavailable, open_store, put_resources, save_case
from fhir_cm.synthetic import generate_cases
from tests.mapping.fhir_check import validate
from tests.pg import temporary_database, temporary_schema

SYSTEM = "urn:fhir-cm:id"
T0 = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
R5 = {"Accept": "application/fhir+json; fhirVersion=5.0"}
HOSPITAL_EXT = {"url": "https://hospital.example/fhir/StructureDefinition/priority-note", "valueString": "keep me"}
HOSPITAL_ID = {"system": "https://hospital.example/ids/goal", "value": "G-1"}
HOSPITAL_TAG = {"system": "https://hospital.example/tags", "code": "imported"}


def reader() -> str:
    return "service"


def client_for(store: Store, *, get_store: Callable[..., Any] | None = None, **options: Any) -> TestClient:
    app = FastAPI()
    app.include_router(build_fhir_router(get_store or (lambda: store), reader, identifier_system=SYSTEM, **options))
    return TestClient(app)


@pytest.fixture
def cases() -> list[Case]:
    return list(generate_cases(4, 23))


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with temporary_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store on SQLite, then on the real PostgreSQL (a schema of its own per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with temporary_schema(request.getfixturevalue("pg_database")) as url:
        yield url


@pytest.fixture
def store(store_url: str, cases: list[Case]) -> Iterator[Store]:
    with open_store(store_url) as opened:
        with opened.session() as s:
            for case in cases:
                save_case(s, case, now=T0)
        yield opened


def goal_ids(bundle: dict[str, Any]) -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"}


# --- imported copies ------------------------------------------------------------------------------------


def hospital_copy(case: Case, goal_index: int) -> tuple[str, dict[str, Any]]:
    """A goal as a hospital server holds it: its own id, meta, identifier and extension beside ours."""
    goal = case.goals[goal_index]
    # References as they would be on a server whose ids are the business identifiers (as the facade's are).
    ids = {key: key.value for key, _, _ in case_plan(case)}
    raw = case_to_resources(case, "R4", SYSTEM, server_ids=ids)[ResourceKey("Goal", goal.id)]
    raw = {
        "resourceType": "Goal",
        "id": "srv-17",
        "meta": {"versionId": "3", "lastUpdated": "2024-12-01T00:00:00Z", "tag": [HOSPITAL_TAG]},
        **{k: v for k, v in raw.items() if k != "resourceType"},
        "extension": [HOSPITAL_EXT],
    }
    raw["identifier"] = [*raw["identifier"], HOSPITAL_ID]
    return goal.id, raw


def test_an_imported_copy_is_served_with_what_the_adapter_does_not_own(store: Store, cases: list[Case]) -> None:
    case = cases[0]
    key, raw = hospital_copy(case, 0)
    later = T0 + dt.timedelta(hours=5)
    with store.session() as s:
        put_resources(s, case.id, [(key, raw)], fhir_version="R4", source="https://hospital.example/fhir", now=later)
    client = client_for(store)
    served = client.get(f"/fhir/Goal/{key}").json()
    assert served["id"] == key, "the facade id is the business identifier, not the hospital's server id"
    assert served["extension"] == [HOSPITAL_EXT]
    assert HOSPITAL_ID in served["identifier"] and {"system": SYSTEM, "value": key} in served["identifier"]
    assert served["meta"]["tag"] == [HOSPITAL_TAG]
    assert served["meta"]["versionId"] != "3"
    assert dt.datetime.fromisoformat(served["meta"]["lastUpdated"]) == later
    assert {k: v for k, v in served.items() if k not in ("id", "meta")} == {
        k: v for k, v in raw.items() if k not in ("id", "meta")
    }, "an imported copy the case did not change comes out as it was stored"
    validate(served, "R4")
    found = client.get(f"/fhir/Goal?identifier={HOSPITAL_ID['system']}|{HOSPITAL_ID['value']}").json()
    assert goal_ids(found) == {key}
    assert goal_ids(client.get("/fhir/Goal?_lastUpdated=gt2025-02-01T04:00:00Z").json()) == {key}
    as_r5 = client.get(f"/fhir/Goal/{key}", headers=R5).json()
    validate(as_r5, "R5")
    assert HOSPITAL_EXT in as_r5["extension"]


def test_a_decimal_is_served_with_the_precision_it_came_with(store: Store, cases: list[Case]) -> None:
    """1.50 is not 1.5 (FHIR keeps a decimal's precision): served as stored, in either version and
    with the elements asked for."""
    from fhir_cm import decimals

    case = cases[2]
    key, raw = hospital_copy(case, 0)
    raw["extension"] = [{"url": "https://hospital.example/score", "valueDecimal": "@"}]
    exact = decimals.loads(decimals.dumps(raw).replace(b'"@"', b"1.50"))
    with store.session() as s:
        put_resources(s, case.id, [(key, exact)], fhir_version="R4")
    client = client_for(store)
    for query, headers in (("", {}), ("", R5), ("?_elements=extension", {})):
        served = client.get(f"/fhir/Goal/{key}{query}", headers=headers)
        assert served.status_code == 200
        assert '"valueDecimal":1.50' in served.text.replace(" ", "")


def test_a_copy_stored_in_r5_is_served_in_r4_and_in_r5(store: Store, cases: list[Case]) -> None:
    case = cases[1]
    key, raw = hospital_copy(case, 0)
    r5 = convert_resource(raw, "R4", "R5")
    with store.session() as s:
        put_resources(s, case.id, [(key, r5)], fhir_version="R5")
    client = client_for(store)
    in_r4 = client.get(f"/fhir/Goal/{key}").json()
    validate(in_r4, "R4")
    assert in_r4["extension"] == [HOSPITAL_EXT]
    in_r5 = client.get(f"/fhir/Goal/{key}", headers=R5).json()
    assert {k: v for k, v in in_r5.items() if k not in ("id", "meta")} == {
        k: v for k, v in r5.items() if k not in ("id", "meta")
    }


def test_summary_true_cuts_inside_elements_too_as_hapi_does(store: Store, cases: list[Case]) -> None:
    """FHIR's summary flags hold at every level: a hospital's extension inside a CodeableConcept or a
    Coding is not part of the summary (Element.extension is not Σ), their own elements are."""
    case = cases[0]
    key, raw = hospital_copy(case, 0)
    raw["description"] = {**raw["description"], "extension": [HOSPITAL_EXT]}
    raw["category"] = [
        {"coding": [{"system": "https://hospital.example/goal-kind", "code": "social"}], "text": "Social"}
    ]
    raw["category"][0]["coding"][0]["extension"] = [HOSPITAL_EXT]
    with store.session() as s:
        put_resources(s, case.id, [(key, raw)], fhir_version="R4")
    client = client_for(store)
    served = client.get(f"/fhir/Goal/{key}").json()
    assert served["description"]["extension"] == [HOSPITAL_EXT] and served["category"] == raw["category"]
    for headers in ({}, R5):
        summary = client.get(f"/fhir/Goal/{key}?_summary=true", headers=headers).json()
        assert summary["description"] == {"text": raw["description"]["text"]}
        assert summary["category"] == [
            {"coding": [{"system": "https://hospital.example/goal-kind", "code": "social"}], "text": "Social"}
        ]
        assert summary["subject"] == served["subject"]
        assert not {"extension", "target", "identifier"} & set(summary)
        assert summary["meta"]["tag"][-1]["code"] == "SUBSETTED" and HOSPITAL_TAG in summary["meta"]["tag"]
        validate(summary, "R5" if headers else "R4")


def test_a_key_that_is_no_fhir_id_is_served_under_a_stable_substitute(tmp_path: Path, cases: list[Case]) -> None:
    long_id = "c" * 60  # a valid case id; its CarePlan's key "<id>-careplan" is longer than a FHIR id may be
    case = cases[0].model_copy(update={"id": long_id})
    with open_store(f"sqlite:///{tmp_path / 'long.db'}") as store:
        with store.session() as s:
            save_case(s, case)
        client = client_for(store)
        plans = [e["resource"] for e in client.get("/fhir/CarePlan").json()["entry"]]
        assert len(plans) == 1
        plan = plans[0]
        assert plan["id"] != f"{long_id}-careplan" and len(plan["id"]) <= 64
        assert {"system": SYSTEM, "value": f"{long_id}-careplan"} in plan["identifier"]
        validate(plan, "R4")
        assert client.get(f"/fhir/CarePlan/{plan['id']}").json() == plan
        again = client_for(store).get("/fhir/CarePlan").json()["entry"][0]["resource"]
        assert again["id"] == plan["id"], "the substitute is the same in every process"


# --- keeping in step --------------------------------------------------------------------------------------


@pytest.fixture
def mapped_cases(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the cases the facade maps, in order, as it maps them."""
    calls: list[str] = []
    real = facade_index.case_to_resources

    def counting(case: Case, *args: Any, **kwargs: Any) -> Any:
        calls.append(case.id)
        return real(case, *args, **kwargs)

    monkeypatch.setattr(facade_index, "case_to_resources", counting)
    return calls


def test_only_cases_that_changed_are_mapped_again(store: Store, cases: list[Case], mapped_cases: list[str]) -> None:
    client = client_for(store)
    assert client.get("/fhir/Goal").status_code == 200
    assert sorted(mapped_cases) == sorted(c.id for c in cases)
    mapped_cases.clear()
    for url in ("/fhir/Goal?status=active", "/fhir/EpisodeOfCare", f"/fhir/Goal/{cases[0].goals[0].id}"):
        assert client.get(url).status_code == 200
    assert mapped_cases == [], "an unchanged store is answered from the index"

    changed = cases[2].model_copy(update={"plan_summary": "Reviewed: plan continues."})
    with store.session() as s:
        save_case(s, changed)
    assert client.get("/fhir/CarePlan").status_code == 200
    assert mapped_cases == [changed.id]

    mapped_cases.clear()
    key, raw = hospital_copy(cases[3], 0)
    with store.session() as s:
        put_resources(s, cases[3].id, [(key, raw)], fhir_version="R4")
    assert client.get("/fhir/Goal").status_code == 200
    assert mapped_cases == [cases[3].id], "a new stored copy counts as a change of its case"

    mapped_cases.clear()
    assert client.get("/fhir/Goal", headers=R5).status_code == 200
    assert sorted(mapped_cases) == sorted(c.id for c in cases), "R5 is indexed on its own, when first asked for"


def test_an_unchanged_store_is_asked_outside_any_transaction(
    store: Store, cases: list[Case], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request on an unchanged store reads the version counters as a lookup (one round trip on
    PostgreSQL), and opens a snapshot only to catch up with a change: the stamps and the cases they
    stamp must then be read as of one moment."""
    client = client_for(store)
    goal = cases[0].goals[0]
    assert client.get(f"/fhir/Goal/{goal.id}").status_code == 200  # the index is built
    real = Store.session
    opened: list[dict[str, Any]] = []

    def session(self: Store, **options: Any) -> Any:
        opened.append(options)
        return real(self, **options)

    monkeypatch.setattr(Store, "session", session)
    for url in (f"/fhir/Goal/{goal.id}", "/fhir/Goal?_revinclude=Provenance:target", "/fhir/EpisodeOfCare"):
        assert client.get(url).status_code == 200
    assert opened == []

    changed = cases[0].model_copy(update={"goals": [goal.model_copy(update={"description": "Walk to the shop"})]})
    with real(store) as s:
        save_case(s, changed)
    served = client.get(f"/fhir/Goal/{goal.id}").json()
    assert served["description"]["text"] == "Walk to the shop"
    assert opened == [{"read_only": True}]


def test_a_request_waiting_on_the_store_does_not_hold_up_another(
    store: Store, cases: list[Case], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version lookup is a round trip to the database; made under the index's lock, every façade
    request of the process would wait in turn on it. Here a second read runs, start to end, while the
    first is still waiting on its lookup."""
    index = FacadeIndex(SYSTEM)
    index.warm(store, "R4")
    first, second = cases[0].goals[0].id, cases[1].goals[0].id
    real = Store.lookup
    started: list[str] = []
    served: list[Any] = []

    def lookup(self: Store) -> Any:
        started.append(threading.current_thread().name)
        if len(started) == 1:  # the first request's lookup: another request comes meanwhile
            other = threading.Thread(target=lambda: served.append(index.read(store, "R4", "Goal", second)))
            other.start()
            other.join(timeout=30)
        return real(self)

    monkeypatch.setattr(Store, "lookup", lookup)
    found = index.read(store, "R4", "Goal", first)
    assert found is not None and found.id == first
    assert len(started) == 2
    assert [r.id for r in served] == [second], "the second read waited for the first to finish"


def test_a_saved_change_is_visible_at_once(store: Store, cases: list[Case]) -> None:
    client = client_for(store)
    case = next(c for c in cases if any(g.status is GoalStatus.ACTIVE for g in c.goals))
    goal = next(g for g in case.goals if g.status is GoalStatus.ACTIVE)
    before = client.get(f"/fhir/Goal/{goal.id}").json()
    assert goal.id not in goal_ids(client.get("/fhir/Goal?status=cancelled&_count=200").json())

    saved = T0 + dt.timedelta(days=3)
    done = goal.model_copy(update={"status": GoalStatus.CANCELLED})
    with store.session() as s:
        save_case(s, case.model_copy(update={"goals": [done if g.id == goal.id else g for g in case.goals]}), now=saved)

    after = client.get(f"/fhir/Goal/{goal.id}").json()
    assert after["lifecycleStatus"] == "cancelled"
    assert after["meta"]["versionId"] != before["meta"]["versionId"]
    assert dt.datetime.fromisoformat(after["meta"]["lastUpdated"]) == saved
    assert goal.id in goal_ids(client.get("/fhir/Goal?status=cancelled&_count=200").json())
    assert goal.id not in goal_ids(client.get("/fhir/Goal?status=active&_count=200").json())
    untouched = next(c for c in cases if c.id != case.id).goals[0]
    assert dt.datetime.fromisoformat(client.get(f"/fhir/Goal/{untouched.id}").json()["meta"]["lastUpdated"]) == T0


def test_a_case_that_cannot_be_mapped_is_left_out_with_a_warning(
    store: Store, cases: list[Case], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken = cases[1]
    real = facade_index.case_to_resources

    def failing(case: Case, *args: Any, **kwargs: Any) -> Any:
        if case.id == broken.id:
            raise ValueError(f"cannot map {case.patient.name}")  # a message with PHI, as a bug might write
        return real(case, *args, **kwargs)

    monkeypatch.setattr(facade_index, "case_to_resources", failing)
    client = client_for(store)
    with caplog.at_level(logging.WARNING):
        bundle = client.get("/fhir/Goal?_count=200").json()
    assert goal_ids(bundle) == {g.id for c in cases if c is not broken for g in c.goals}
    assert bundle["total"] == len(goal_ids(bundle))
    outcome = next(e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome")
    assert outcome["issue"][0]["code"] == "incomplete" and "1 case" in outcome["issue"][0]["diagnostics"]
    assert client.get(f"/fhir/Goal/{broken.goals[0].id}").status_code == 404
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "ValueError" in logged
    assert broken.id not in logged and str(broken.patient.name) not in logged


# --- hooks and failures -------------------------------------------------------------------------------------


def test_the_audit_hook_hears_which_cases_were_served(store: Store, cases: list[Case]) -> None:
    heard: list[tuple[Any, str, list[str]]] = []
    client = client_for(store, audit=lambda principal, action, case_ids: heard.append((principal, action, case_ids)))
    goal = cases[2].goals[0]
    client.get(f"/fhir/Goal/{goal.id}")
    client.get(f"/fhir/EpisodeOfCare?patient={cases[1].patient.id}")
    client.get("/fhir/Goal/unknown")
    assert heard == [("service", "read", [cases[2].id]), ("service", "search", [cases[1].id])]


def test_an_unavailable_store_is_a_503_operation_outcome(tmp_path: Path) -> None:
    def unavailable() -> Store:
        raise StoreUnavailable("database locked")

    with open_store(f"sqlite:///{tmp_path / 'unused.db'}") as store:
        response = client_for(store, get_store=unavailable).get("/fhir/Goal")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert response.json()["issue"][0]["code"] == "transient"
    assert response.headers["retry-after"] == "1"


def test_an_unexpected_error_is_an_operation_outcome_that_logs_no_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> Store:
        raise RuntimeError("secret patient name")

    with caplog.at_level(logging.ERROR), open_store(f"sqlite:///{tmp_path / 'unused.db'}") as store:
        response = client_for(store, get_store=broken).get("/fhir/Goal")
    assert response.status_code == 500
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "secret" not in response.text
    assert "secret" not in " ".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in " ".join(r.getMessage() for r in caplog.records)


def test_router_options_are_checked() -> None:
    with pytest.raises(ValueError):
        build_fhir_router(reader, reader, default_count=300, max_count=200)


def test_a_store_failure_while_mapping_is_retried_not_remembered(
    store: Store, cases: list[Case], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = facade_index.get_case_records
    failures = iter([StoreUnavailable("database locked")])

    def flaky(session: Any, case_ids: list[str], **kwargs: Any) -> Any:
        if cases[0].id in case_ids and (exc := next(failures, None)) is not None:
            raise exc
        return real(session, case_ids, **kwargs)

    monkeypatch.setattr(facade_index, "get_case_records", flaky)
    client = client_for(store)
    assert client.get("/fhir/Goal").status_code == 503
    bundle = client.get("/fhir/Goal?_count=200").json()
    assert goal_ids(bundle) == {g.id for c in cases for g in c.goals}
    assert all(e["search"]["mode"] == "match" for e in bundle["entry"]), "no case is reported as left out"


@pytest.mark.parametrize(("status", "detail"), [(429, None), (499, None), (503, "maintenance")])
def test_any_status_the_auth_dependency_raises_becomes_an_operation_outcome(
    tmp_path: Path, status: int, detail: str | None
) -> None:
    class Refused(Exception):
        def __init__(self) -> None:
            super().__init__("refused")
            self.status, self.detail, self.headers = status, detail, {"Retry-After": "7"}

    def refusing() -> str:
        raise Refused

    app = FastAPI()
    with open_store(f"sqlite:///{tmp_path / 'unused.db'}") as store:
        app.include_router(build_fhir_router(lambda: store, refusing))
        response = TestClient(app).get("/fhir/Goal")
    assert response.status_code == status
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.headers["retry-after"] == "7"
    if detail:
        assert response.json()["issue"][0]["diagnostics"] == detail
