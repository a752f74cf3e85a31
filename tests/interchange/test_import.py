"""import_files: formats, version detection, grouping into cases, bad input, idempotence, three-way merge."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Acuity, Case, Contact, Referral
from fhir_cm.interchange import (
    DEFAULT_PROGRAMME,
    BadInputError,
    export_cases,
    import_files,
)
from fhir_cm.mapping import case_to_resources
from fhir_cm.store import (
    Store,
    get_case,
    get_case_record,
    get_resource,
    get_resources,
    list_cases,
    save_case,
)
from tests.fixtures_hl7 import FIXTURES
from tests.mapping.builders import full_case

from .conftest import SYSTEM


def example(version: str, name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / version.lower() / f"{name}.json").read_bytes())


def write(path: Path, *documents: Any, lines: bool = False) -> Path:
    path.write_text("\n".join(json.dumps(d) for d in documents) if lines else json.dumps(documents[0]))
    return path


def stored_cases(store: Store) -> list[Case]:
    with store.session(read_only=True) as s:
        return list_cases(s)


def case_lines(path: Path, *cases: Case) -> Path:
    """Cases as ``fhir-cm generate`` writes them: JSON lines."""
    path.write_text("".join(c.model_dump_json() + "\n" for c in cases))
    return path


def stored(store: Store, case_id: str) -> tuple[Case, int]:
    """A stored case and its revision."""
    with store.session(read_only=True) as s:
        record = get_case_record(s, case_id)
    assert record is not None
    return record.case, record.revision


def edited(store: Store, case_id: str, edit: Callable[[Case], object]) -> Case:
    """The case as saved after ``edit`` (what an edit through the API or a pull does to the store)."""
    with store.session() as s:
        case = get_case(s, case_id)
        assert case is not None
        edit(case)
        save_case(s, case)
    return case


# --- formats and versions --------------------------------------------------------------------------


@pytest.mark.parametrize("bundle_type", ["collection", "searchset", "transaction", "batch", "document"])
def test_bundles_of_any_type_are_opened(tmp_path: Path, store: Store, settings: Settings, bundle_type: str) -> None:
    entries = [
        {"fullUrl": f"http://x/{r['resourceType']}/{r['id']}", "resource": r}
        for r in (example("R4", "Goal-stop-smoking"), example("R4", "Encounter-home"))
    ]
    path = write(tmp_path / "b.json", {"resourceType": "Bundle", "type": bundle_type, "entry": entries})

    report = import_files(store, [path], settings)

    assert report.resources == 2
    with store.session(read_only=True) as s:
        assert get_resource(s, "Goal", "stop-smoking") is not None and get_resource(s, "Encounter", "home") is not None


def test_a_searchsets_outcome_entry_is_the_servers_message_not_data(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    # A search answer saved to a file: HAPI adds an OperationOutcome (search.mode "outcome") for warnings.
    goal = example("R4", "Goal-stop-smoking")
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "warning", "code": "processing", "diagnostics": "Unknown search parameter"}],
    }
    entries = [
        {"fullUrl": "http://x/Goal/stop-smoking", "resource": goal, "search": {"mode": "match"}},
        {"resource": outcome, "search": {"mode": "outcome"}},
    ]
    path = write(tmp_path / "s.json", {"resourceType": "Bundle", "type": "searchset", "entry": entries})

    report = import_files(store, [path], settings)

    assert (report.resources, report.cases_created) == (1, 1)
    assert [e["resource"]["resourceType"] for e in export_cases(store, settings)["entry"]] == ["Goal"]


def test_a_json_array_and_json_lines_are_read(tmp_path: Path, store: Store, settings: Settings) -> None:
    array = write(tmp_path / "a.json", [example("R4", "Goal-stop-smoking"), example("R4", "Encounter-home")])
    lines = write(tmp_path / "l.jsonl", example("R4", "Encounter-emerg"), example("R4", "Condition-f001"), lines=True)

    assert import_files(store, [array, lines], settings).resources == 4


def test_elements_of_one_release_decide_the_version(tmp_path: Path, store: Store, settings: Settings) -> None:
    r4 = write(tmp_path / "r4.json", example("R4", "Encounter-f001"))  # hospitalization, period
    r5 = write(tmp_path / "r5.json", example("R5", "Encounter-f202"))  # actualPeriod

    report = import_files(store, [r4, r5], settings)

    assert report.versions == {"R4": 1, "R5": 1}
    with store.session(read_only=True) as s:
        assert get_resource(s, "Encounter", "f001").fhir_version == "R4"  # type: ignore[union-attr]
        assert get_resource(s, "Encounter", "f202").fhir_version == "R5"  # type: ignore[union-attr]


def test_a_resource_both_releases_accept_follows_its_file(tmp_path: Path, store: Store, settings: Settings) -> None:
    # Condition-example is valid in R4 and R5; the R5 Encounter next to it says the file is R5.
    path = write(tmp_path / "r5.json", [example("R5", "Condition-example"), example("R5", "Encounter-f202")])

    assert import_files(store, [path], settings).versions == {"R5": 2}


def test_a_forced_version_refuses_the_other_release(tmp_path: Path, store: Store, settings: Settings) -> None:
    path = write(tmp_path / "r4.json", example("R4", "Encounter-f001"))

    with pytest.raises(BadInputError, match=r"r4\.json: document: not a valid FHIR R5 Encounter"):
        import_files(store, [path], settings, fhir_version="R5")
    assert import_files(store, [path], settings, fhir_version="R4").versions == {"R4": 1}


# --- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"resourceType": "Goal"', r"bad\.json: line 1, column \d+: not JSON"),
        (
            (
                '{"resourceType": "Goal", "lifecycleStatus": "active", "description": {"text": "walk"}, '
                '"subject": {"reference": "Patient/p"}}\n{oops}\n'
            ),
            r"bad\.json: line 2, column 2: not JSON",
        ),
        ('{"resourceType": "NoSuchThing"}', r"bad\.json: document: not a valid FHIR R4 or R5 NoSuchThing"),
        ('{"resourceType": "HumanName", "family": "Doe"}', r"document: .*R4: HumanName is not a FHIR R4 resource type"),
        (
            '[{"resourceType": "Coding", "code": "x"}, {"resourceType": "DomainResource", "id": "d"}]',
            r"bad\.json: item 1: .*Coding is not a FHIR R4 resource type",
        ),
        ('{"resourceType": "DomainResource", "id": "d"}', r"DomainResource is not a FHIR R5 resource type"),
        ('{"hello": "world"}', r"bad\.json: document: neither a FHIR resource .* nor a case"),
        ('[{"resourceType": "Goal", "lifecycleStatus": 7}]', r"bad\.json: item 1: not a valid FHIR R4 or R5 Goal"),
        ('{"programme": "health-care"}', r"bad\.json: document: invalid case: "),
        (
            (
                '{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Goal", '
                '"status": "bogus"}}]}'
            ),
            r"bad\.json: document, entry 1: not a valid FHIR",
        ),
        ("42", r"bad\.json: document: expected a JSON object"),
        (
            '{"resourceType": "Goal", "lifecycleStatus": "active", "description": {"text": "walk"}, '
            '"subject": {"reference": "Patient/p"}, "note": []}',
            r"bad\.json: document: not valid FHIR JSON: Goal\.note is an empty array",
        ),
        (
            '{"resourceType": "Goal", "lifecycleStatus": "active", "description": {"text": "walk", "coding": [{}]}, '
            '"subject": {"reference": "Patient/p"}}',
            r"document: not valid FHIR JSON: Goal\.description\.coding\[0\] is an empty object",
        ),
        (
            '{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Goal", '
            '"lifecycleStatus": "active", "description": {"text": "walk"}, "subject": {"reference": "Patient/p"}, '
            '"priority": null}}]}',
            r"document, entry 1: not valid FHIR JSON: Goal\.priority is null",
        ),
    ],
)
def test_bad_input_names_file_and_position_and_writes_nothing(
    tmp_path: Path, store: Store, settings: Settings, text: str, message: str
) -> None:
    good = write(tmp_path / "good.json", example("R4", "Goal-stop-smoking"))
    bad = tmp_path / "bad.json"
    bad.write_text(text)

    with pytest.raises(BadInputError, match=message):
        import_files(store, [good, bad], settings)

    assert stored_cases(store) == []


def test_a_resource_nested_too_deep_for_the_models_is_bad_input(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    # JSON this deep reads (the parser allows about 1000 levels), but the models recurse per level.
    extension: dict[str, Any] = {"url": "http://example.org/x", "valueString": "v"}
    for _ in range(200):
        extension = {"url": "http://example.org/x", "extension": [extension]}
    goal = {**example("R4", "Goal-stop-smoking"), "extension": [extension]}

    with pytest.raises(BadInputError, match=r"deep\.json: document: not a valid FHIR R4 or R5 Goal .*nested too deep"):
        import_files(store, [write(tmp_path / "deep.json", goal)], settings)


def test_a_missing_file_is_bad_input(tmp_path: Path, store: Store, settings: Settings) -> None:
    with pytest.raises(BadInputError, match="nope.json: cannot read"):
        import_files(store, [tmp_path / "nope.json"], settings)


# --- grouping into cases ---------------------------------------------------------------------------


def test_resources_of_a_patient_without_an_episode_make_one_synthesised_case(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    names = ["Condition-f201", "Condition-f202", "Encounter-f201", "Encounter-f202", "CarePlan-f201"]
    paths = [write(tmp_path / f"{n}.json", example("R4", n)) for n in names]

    report = import_files(store, paths, settings)

    (case,) = stored_cases(store)
    assert report.cases_created == 1 and report.case_ids == [case.id]
    assert case.patient.id == "f201" and case.programme == DEFAULT_PROGRAMME
    assert case.period.start == dt.date(2012, 12, 1)  # the earliest date in the five files (a recordedDate)
    with store.session(read_only=True) as s:
        assert len(get_resources(s, case.id)) == len(names)


def test_an_episode_gathers_its_patients_resources_and_the_rest_stays_apart(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    paths = [
        write(tmp_path / f"{n}.json", example("R4", n))
        for n in ("EpisodeOfCare-example", "Goal-stop-smoking", "Encounter-home", "Encounter-f203", "ServiceRequest-ob")
    ]

    import_files(store, paths, settings)

    with store.session(read_only=True) as s:
        where = {
            k: get_resource(s, *k).case_id
            for k in [("Goal", "stop-smoking"), ("Encounter", "home"), ("Encounter", "f203"), ("ServiceRequest", "ob")]  # type: ignore[union-attr]
        }
        case = get_case(s, "example")
    assert where["Goal", "stop-smoking"] == where["Encounter", "home"] == "example"
    # Encounter-f203 names the episode but is about another patient; ServiceRequest-ob names no patient.
    assert where["Encounter", "f203"] not in ("example", where["ServiceRequest", "ob"])
    assert where["ServiceRequest", "ob"] != "example"
    assert (
        case is not None and [g.id for g in case.goals] == ["stop-smoking"] and [s.id for s in case.stays] == ["home"]
    )


def test_a_later_file_joins_the_case_already_in_the_store(tmp_path: Path, store: Store, settings: Settings) -> None:
    import_files(store, [write(tmp_path / "eoc.json", example("R4", "EpisodeOfCare-example"))], settings)
    report = import_files(store, [write(tmp_path / "goal.json", example("R4", "Goal-stop-smoking"))], settings)

    assert (report.cases_created, report.cases_updated) == (0, 1)
    with store.session(read_only=True) as s:
        assert [g.id for g in get_case(s, "example").goals] == ["stop-smoking"]  # type: ignore[union-attr]


# --- our own resources and case documents ----------------------------------------------------------


def test_generated_case_lines_are_saved_as_cases_and_reimport_is_idempotent(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    cases = [full_case(), full_case(id="case-2", programme="social-work")]
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(c.model_dump_json() + "\n" for c in cases))

    first = import_files(store, [path], settings)
    second = import_files(store, [path], settings)

    assert (first.case_documents, first.cases_created, first.resources) == (2, 2, 0)
    assert (second.cases_created, second.cases_updated, second.cases_unchanged) == (0, 0, 2)
    assert sorted(stored_cases(store), key=lambda c: c.id) == sorted(cases, key=lambda c: c.id)


def test_reimporting_a_case_document_keeps_a_change_made_in_the_store(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    path = case_lines(tmp_path / "cases.jsonl", full_case())
    import_files(store, [path], settings)

    def edit(case: Case) -> None:
        case.goals[0].target = "keys in hand"
        case.plan_summary = "Housing first, then the stairs."

    case = edited(store, "case-1", edit)
    _, revision = stored(store, "case-1")

    report = import_files(store, [path], settings)

    assert stored(store, "case-1") == (case, revision)
    assert (report.cases_updated, report.cases_unchanged) == (0, 1) and not report.replaced


def test_a_changed_case_document_applies_its_changes_and_keeps_the_stores_others(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    first = full_case()
    import_files(store, [case_lines(tmp_path / "v1.jsonl", first)], settings)

    def edit(case: Case) -> None:
        case.goals[0].target = "keys in hand"
        case.contacts.append(Contact(id="contact-2", date=dt.date(2024, 1, 9), mode="phone"))

    edited(store, "case-1", edit)
    second = first.model_copy(deep=True)
    second.acuity = Acuity.LOW
    second.goals[1].description = "Walk 500 m"
    second.contacts = []  # contact-1 was removed at the source

    report = import_files(store, [case_lines(tmp_path / "v2.jsonl", second)], settings)

    assert (report.cases_updated, report.cases_unchanged) == (1, 0)
    case, _ = stored(store, "case-1")
    assert case.acuity == "low" and case.goals[1].description == "Walk 500 m"
    assert case.goals[0].target == "keys in hand" and [c.id for c in case.contacts] == ["contact-2"]


def test_a_first_case_document_for_a_stored_case_wins_its_fields_and_keeps_other_entities(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    document = full_case()
    with store.session() as s:
        save_case(
            s,
            full_case(
                acuity="low",
                contacts=[Contact(id="contact-9", date=dt.date(2024, 1, 9), mode="phone"), *document.contacts],
            ),
        )

    report = import_files(store, [case_lines(tmp_path / "cases.jsonl", document)], settings)

    assert report.cases_updated == 1
    case, _ = stored(store, "case-1")
    assert case.acuity == document.acuity
    assert sorted(c.id for c in case.contacts) == ["contact-1", "contact-9"]


def test_store_changes_that_no_longer_fit_the_document_are_replaced_and_reported(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    first = full_case()
    import_files(store, [case_lines(tmp_path / "v1.jsonl", first)], settings)
    follow_up = Referral(
        id="ref-3", kind="follow-up", service="Call after discharge", authored=dt.date(2024, 1, 5), for_stay="stay-1"
    )
    edited(store, "case-1", lambda case: case.referrals.append(follow_up))
    second = full_case(stays=[], referrals=[r for r in first.referrals if r.for_stay is None])

    report = import_files(store, [case_lines(tmp_path / "v2.jsonl", second)], settings)

    assert report.replaced == ["case-1"] and "replaced by the files' in case-1" in report.line()
    assert stored(store, "case-1")[0] == second


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_our_own_resources_read_back_into_the_case(
    tmp_path: Path, store: Store, settings: Settings, version: str
) -> None:
    case = full_case()
    resources = list(case_to_resources(case, version, SYSTEM).values())
    path = write(tmp_path / "ours.json", resources)

    report = import_files(store, [path], settings, fhir_version=version)

    assert (report.cases_created, report.raw_only) == (1, 0)
    assert stored_cases(store) == [case]


def test_reimporting_keeps_a_change_made_in_the_store(tmp_path: Path, store: Store, settings: Settings) -> None:
    paths = [
        write(tmp_path / f"{n}.json", example("R4", n))
        for n in ("EpisodeOfCare-example", "Goal-stop-smoking", "Encounter-home")
    ]
    import_files(store, paths, settings)
    with store.session() as s:
        case = get_case(s, "example")
        assert case is not None
        case.goals[0].target = "no cigarettes for a month"
        save_case(s, case)
    exported = export_cases(store, settings)

    report = import_files(store, paths, settings)

    assert (report.cases_updated, report.cases_unchanged) == (0, 1)
    with store.session(read_only=True) as s:
        assert get_case(s, "example").goals[0].target == "no cigarettes for a month"  # type: ignore[union-attr]
    assert export_cases(store, settings) == exported


def test_a_changed_resource_from_the_source_updates_the_case(tmp_path: Path, store: Store, settings: Settings) -> None:
    goal = example("R4", "Goal-stop-smoking")
    paths = [write(tmp_path / "eoc.json", example("R4", "EpisodeOfCare-example")), write(tmp_path / "goal.json", goal)]
    import_files(store, paths, settings)
    goal["lifecycleStatus"] = "cancelled"

    report = import_files(store, [write(tmp_path / "goal.json", goal)], settings)

    assert report.cases_updated == 1
    with store.session(read_only=True) as s:
        assert get_case(s, "example").goals[0].status == "cancelled"  # type: ignore[union-attr]
        assert get_resource(s, "Goal", "stop-smoking").raw["lifecycleStatus"] == "cancelled"  # type: ignore[union-attr]


def test_a_resource_with_a_modifier_stays_raw_and_comes_back_as_it_came(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    case = full_case()
    resources = case_to_resources(case, "R4", SYSTEM)
    negated = {"url": "http://ehr.example.org/fhir/StructureDefinition/negated", "valueBoolean": True}
    need = next(r for r in resources.values() if r["resourceType"] == "Condition")
    need["modifierExtension"] = [negated]
    request = next(r for r in resources.values() if r["resourceType"] == "ServiceRequest")
    request["doNotPerform"] = True

    report = import_files(store, [write(tmp_path / "case.json", list(resources.values()))], settings)

    held = stored_cases(store)[0]
    assert report.raw_only == 3  # the Condition, the ServiceRequest and its Task (whose referral is gone)
    assert need["identifier"][0]["value"] not in {n.id for n in held.needs}
    assert request["identifier"][0]["value"] not in {r.id for r in held.referrals}
    exported = [e["resource"] for e in export_cases(store, settings)["entry"]]
    assert need in exported and request in exported


def _episode_and_goal(patient: str, goal_text: str) -> list[dict[str, Any]]:
    """What a server's export holds: logical ids it numbered itself (every server starts at 1)."""
    return [
        {
            "resourceType": "EpisodeOfCare",
            "id": f"eoc-{patient}",
            "status": "active",
            "patient": {"reference": f"Patient/{patient}"},
            "type": [
                {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/episodeofcare-type", "code": "hacc"}]}
            ],
            "period": {"start": "2024-01-01"},
        },
        {
            "resourceType": "Goal",
            "id": "1",
            "lifecycleStatus": "active",
            "description": {"text": goal_text},
            "subject": {"reference": f"Patient/{patient}"},
            "startDate": "2024-01-02",
        },
    ]


def test_another_patients_resource_under_the_same_id_is_refused_and_replaces_nothing(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    first = write(tmp_path / "a.json", _episode_and_goal("A", "Goal of A"))
    second = write(tmp_path / "b.json", _episode_and_goal("B", "Goal of B"))
    import_files(store, [first], settings)
    before = export_cases(store, settings)

    with pytest.raises(BadInputError, match=r"b\.json: item 2: Goal 1 is another patient's resource in the store"):
        import_files(store, [second], settings)

    assert export_cases(store, settings) == before
    assert [g.description for g in stored(store, "eoc-A")[0].goals] == ["Goal of A"]


def test_two_files_of_one_import_giving_two_patients_one_id_are_refused(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    first = write(tmp_path / "a.json", _episode_and_goal("A", "Goal of A"))
    second = write(tmp_path / "b.json", _episode_and_goal("B", "Goal of B"))

    with pytest.raises(BadInputError, match=r"b\.json: item 2: Goal 1 is another patient's resource earlier in this"):
        import_files(store, [first, second], settings)

    assert stored_cases(store) == []
    # The same resource twice (in a Bundle and on its own, or a file imported again) is no clash.
    assert import_files(store, [first, first], settings).cases_created == 1


def test_a_kept_case_document_this_version_cannot_read_is_merged_against_as_none(
    tmp_path: Path, store: Store, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The document last imported was stored before a rule of the case model ('..' as a contact id):
    the next import of the case goes on as for a case imported before documents were kept."""
    import logging

    from sqlalchemy import select, update

    from fhir_cm.store._documents import CaseDocumentRow

    first = full_case()
    import_files(store, [case_lines(tmp_path / "v1.jsonl", first)], settings)
    with store.session() as s:
        data = s.execute(select(CaseDocumentRow.data)).scalar_one()
        old = {"id": "..", "date": "2024-01-02", "mode": "phone", "note": "Hidden Note"}
        s.execute(update(CaseDocumentRow).values(data={**data, "contacts": [*data["contacts"], old]}))
    second = first.model_copy(update={"acuity": Acuity.LOW})

    with caplog.at_level(logging.WARNING):
        report = import_files(store, [case_lines(tmp_path / "v2.jsonl", second)], settings)

    assert report.cases_updated == 1
    assert stored(store, "case-1")[0] == second
    assert "case document of case-1" in caplog.text and "Hidden Note" not in caplog.text
