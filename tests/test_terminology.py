"""The mappings in mappings/: complete for the domain, valid FHIR, and read the way the docs say."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fhir_cm import terminology as T
from fhir_cm.terminology import VOCABULARIES, MappingFileError, UnmappedValueError, load_terminology

SCT = "http://snomed.info/sct"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

#: Maps that fill `code`-typed elements (statuses, Encounter.class): they must send a code for every value.
CODE_MAPS = [
    "case-status-episodeofcare",
    "case-status-careplan",
    "case-status-careteam",
    "goal-status-lifecycle",
    "referral-status-servicerequest",
    "referral-status-task",
    "stay-status-encounter-r4",
    "stay-status-encounter-r5",
    "care-setting-encounter-class",
]


def test_every_domain_vocabulary_is_fully_mapped() -> None:
    assert T.terminology().coverage_problems() == []


@pytest.mark.parametrize("vocabulary", sorted(VOCABULARIES))
def test_every_value_has_our_own_coding(vocabulary: str) -> None:
    for value in VOCABULARIES[vocabulary]:
        (coding,) = T.codings(vocabulary, value)
        assert coding["system"] == T.system_url(vocabulary)
        assert coding["code"] == value.value
        assert coding["display"]


@pytest.mark.parametrize("map_name", CODE_MAPS)
def test_status_maps_send_a_code_for_every_value_and_read_it_back(map_name: str) -> None:
    source = T.terminology().concept_maps[map_name]["group"][0]["source"]
    vocabulary = next(v for v in VOCABULARIES if T.system_url(v) == source)
    for value in VOCABULARIES[vocabulary]:
        code = T.code(map_name, value)
        assert code
        # Where one FHIR code stands for several values, reading it back gives one of them.
        back = T.domain_value_of_code(map_name, code)
        assert back is not None and T.code(map_name, back) == code


@pytest.mark.parametrize("map_name", ["case-status-episodeofcare", "referral-status-task", "goal-status-lifecycle"])
def test_one_to_one_status_maps_round_trip_exactly(map_name: str) -> None:
    source = T.terminology().concept_maps[map_name]["group"][0]["source"]
    vocabulary = next(v for v in VOCABULARIES if T.system_url(v) == source)
    assert all(T.domain_value_of_code(map_name, T.code(map_name, v)) == v for v in VOCABULARIES[vocabulary])


def test_codes_are_recognised_among_codings_of_other_systems() -> None:
    codings = [
        {"system": "http://ehr.example.org/roles", "code": "CM"},
        {"system": SCT, "code": "768832004"},
        {"code": "no-system"},
        "not even a coding",
    ]
    assert T.domain_value("team-role-careteam", codings) == "case-manager"  # type: ignore[arg-type]


def test_our_own_coding_wins_over_any_mapped_code() -> None:
    codings = [{"system": ACT, "code": "HH"}, {"system": T.system_url("care-setting"), "code": "home"}]
    assert T.domain_value("care-setting-encounter-class", codings) == "home"


def test_an_equivalent_code_wins_over_a_broader_one() -> None:
    # IMP (inpatient encounter) is broader than an acute stay; ACUTE is its equivalent.
    assert T.match("care-setting-encounter-class", [{"system": ACT, "code": "IMP"}]) == (4, "acute-hospital")
    assert T.match("care-setting-encounter-class", [{"system": ACT, "code": "ACUTE"}]) == (1, "acute-hospital")
    # HH is the home-health class; "home" only relates to it.
    assert T.domain_value("care-setting-encounter-class", [{"system": ACT, "code": "HH"}]) == "home-health"


def test_a_more_specific_code_is_recognised_but_never_sent() -> None:
    registered_nurse = {"system": SCT, "code": "224535009"}
    assert T.domain_value("team-role-careteam", [registered_nurse]) == "nurse"
    assert registered_nurse["code"] not in {c["code"] for c in T.codings("team-role-careteam", "nurse")}


def test_unknown_codes_and_empty_input_mean_nothing() -> None:
    assert T.domain_value("team-role-careteam", [{"system": SCT, "code": "0"}]) is None
    assert T.domain_value("team-role-careteam", None) is None
    assert T.domain_value_of_code("case-status-episodeofcare", "no-such-status") is None


def test_asking_for_what_is_not_there_says_so() -> None:
    with pytest.raises(UnmappedValueError, match="no mapping named 'nope'"):
        T.coding("nope", "x")
    with pytest.raises(UnmappedValueError, match="no entry for 'nope'"):
        T.coding("acuity", "nope")
    with pytest.raises(UnmappedValueError, match="sends no code"):
        T.code("acuity", "high")


def test_results_are_copies_the_caller_may_change() -> None:
    T.concept("acuity", "high")["coding"][0]["code"] = "changed"
    assert T.coding("acuity", "high")["code"] == "high"


# --- loading ---------------------------------------------------------------------------------------


@pytest.fixture()
def mappings_copy(tmp_path: Path) -> Path:
    target = tmp_path / "mappings"
    shutil.copytree(T.mappings_dir(), target)
    return target


def test_the_copy_loads(mappings_copy: Path) -> None:
    assert load_terminology(mappings_copy).coverage_problems() == []


def test_a_file_that_is_not_json_is_named(mappings_copy: Path) -> None:
    (mappings_copy / "ConceptMap-team-role-careteam.json").write_text("{ not json")
    with pytest.raises(MappingFileError, match="ConceptMap-team-role-careteam.json cannot be read"):
        load_terminology(mappings_copy)


def test_a_file_that_is_not_a_valid_fhir_resource_is_named(mappings_copy: Path) -> None:
    path = mappings_copy / "CodeSystem-acuity.json"
    data = json.loads(path.read_text())
    del data["concept"][0]["code"]
    path.write_text(json.dumps(data))
    with pytest.raises(
        MappingFileError, match=r"CodeSystem-acuity.json is not a valid FHIR CodeSystem: concept.0.code"
    ):
        load_terminology(mappings_copy)


def test_a_map_from_a_code_our_vocabulary_lacks_is_named(mappings_copy: Path) -> None:
    path = mappings_copy / "ConceptMap-contact-mode-medium.json"
    data = json.loads(path.read_text())
    data["group"][0]["element"][0]["code"] = "carrier-pigeon"
    path.write_text(json.dumps(data))
    with pytest.raises(MappingFileError, match="ConceptMap-contact-mode-medium.json: 'carrier-pigeon' is not a code"):
        load_terminology(mappings_copy)


def test_a_missing_mapping_shows_as_a_coverage_problem(mappings_copy: Path) -> None:
    path = mappings_copy / "ConceptMap-contact-mode-medium.json"
    data = json.loads(path.read_text())
    data["group"][0]["element"] = [e for e in data["group"][0]["element"] if e["code"] != "video"]
    path.write_text(json.dumps(data))
    problems = load_terminology(mappings_copy).coverage_problems()
    assert problems == [
        (
            "ConceptMap 'contact-mode-medium' group to "
            "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode has no element for 'video'"
        )
    ]


def test_other_json_files_in_the_folder_are_not_terminology(mappings_copy: Path) -> None:
    (mappings_copy / "notes-for-someone-else.json").write_text('{"not": "a resource"}')
    assert load_terminology(mappings_copy).coverage_problems() == []


def test_an_installed_wheel_reads_its_packaged_copy(mappings_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = mappings_copy.parent / "fhir_cm"
    (package / "_mappings").mkdir(parents=True)
    monkeypatch.setattr(T.resources, "files", lambda name: package)
    assert T.mappings_dir() == package / "_mappings"


def test_a_development_checkout_reads_the_repository_folder() -> None:
    assert T.mappings_dir() == Path(__file__).resolve().parents[1] / "mappings"


#: FHIR's required value sets for the code elements we fill (R4 and R5 agree except Encounter.status).
REQUIRED_CODES = {
    "case-status-episodeofcare": {
        "planned",
        "waitlist",
        "active",
        "onhold",
        "finished",
        "cancelled",
        "entered-in-error",
    },
    "case-status-careplan": {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"},
    "case-status-careteam": {"proposed", "active", "suspended", "inactive", "entered-in-error"},
    "goal-status-lifecycle": {
        "proposed",
        "planned",
        "accepted",
        "active",
        "on-hold",
        "completed",
        "cancelled",
        "entered-in-error",
        "rejected",
    },
    "referral-status-servicerequest": {
        "draft",
        "active",
        "on-hold",
        "revoked",
        "completed",
        "entered-in-error",
        "unknown",
    },
    # Gravity's referral Task value set: every task-status except ready and received.
    "referral-status-task": {
        "draft",
        "requested",
        "accepted",
        "rejected",
        "cancelled",
        "in-progress",
        "on-hold",
        "failed",
        "completed",
        "entered-in-error",
    },
    "stay-status-encounter-r4": {
        "planned",
        "arrived",
        "triaged",
        "in-progress",
        "onleave",
        "finished",
        "cancelled",
        "entered-in-error",
        "unknown",
    },
    "stay-status-encounter-r5": {
        "planned",
        "in-progress",
        "on-hold",
        "discharged",
        "completed",
        "cancelled",
        "discontinued",
        "entered-in-error",
        "unknown",
    },
    "care-setting-encounter-class": {
        "AMB",
        "EMER",
        "FLD",
        "HH",
        "IMP",
        "ACUTE",
        "NONAC",
        "OBSENC",
        "PRENC",
        "SS",
        "VR",
    },
}


@pytest.mark.parametrize("map_name", sorted(REQUIRED_CODES))
def test_every_code_a_status_map_knows_is_in_fhirs_value_set(map_name: str) -> None:
    targets = {
        t["code"]
        for g in T.terminology().concept_maps[map_name]["group"]
        for e in g["element"]
        for t in e.get("target", ())
    }
    assert targets <= REQUIRED_CODES[map_name]
