"""Stay ⇄ Encounter, and recognising the care setting and disposition of any EHR's Encounter."""

from __future__ import annotations

import pytest

from fhir_cm.domain import CareSetting
from fhir_cm.mapping import ResourceKey, case_to_resources, recognise_disposition, recognise_setting
from tests.mapping.builders import SYSTEM, full_case

STAY = ResourceKey("Encounter", "stay-1")
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
POS = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
DISPOSITION = "http://terminology.hl7.org/CodeSystem/discharge-disposition"


def test_r4_stay_is_an_inpatient_encounter_with_period_and_hospitalization() -> None:
    enc = case_to_resources(full_case(), "R4", SYSTEM)[STAY]
    assert enc["status"] == "finished"
    assert enc["class"] == {"system": ACT, "code": "IMP", "display": "inpatient encounter"}
    assert (ROLE, "GACH") in {(c["system"], c["code"]) for c in enc["type"][0]["coding"]}
    assert enc["period"] == {"start": "2023-12-28", "end": "2024-01-04"}
    assert (DISPOSITION, "home") in {
        (c["system"], c["code"]) for c in enc["hospitalization"]["dischargeDisposition"]["coding"]
    }
    assert enc["serviceProvider"] == {"reference": "Organization/org-hospital"}
    assert enc["subject"]["reference"] == "Patient/pat-1"
    assert len(enc["episodeOfCare"]) == 1


def test_r5_stay_uses_class_concepts_actual_period_admission_and_completed() -> None:
    enc = case_to_resources(full_case(), "R5", SYSTEM)[STAY]
    assert enc["status"] == "completed"
    assert enc["class"] == [{"coding": [{"system": ACT, "code": "IMP", "display": "inpatient encounter"}]}]
    assert enc["actualPeriod"] == {"start": "2023-12-28", "end": "2024-01-04"}
    assert "dischargeDisposition" in enc["admission"]
    assert not {"period", "hospitalization"} & set(enc)


@pytest.mark.parametrize(
    ("encounter", "expected"),
    [
        # class alone
        ({"class": {"system": ACT, "code": "EMER"}}, CareSetting.EMERGENCY),
        ({"class": {"system": ACT, "code": "HH"}}, CareSetting.HOME_HEALTH),
        ({"class": {"system": ACT, "code": "IMP"}}, CareSetting.ACUTE_HOSPITAL),
        # a location type says more than an inpatient class
        (
            {"class": {"system": ACT, "code": "IMP"}, "type": [{"coding": [{"system": ROLE, "code": "RH"}]}]},
            CareSetting.INPATIENT_REHABILITATION,
        ),
        (
            {
                "class": {"system": ACT, "code": "NONAC"},
                "type": [{"coding": [{"system": POS, "code": "31"}, {"system": "http://cpt", "code": "99304"}]}],
            },
            CareSetting.SKILLED_NURSING,
        ),
        # the type of a contained Location
        (
            {
                "class": {"system": ACT, "code": "IMP"},
                "contained": [
                    {"resourceType": "Location", "id": "l1", "type": [{"coding": [{"system": ROLE, "code": "PSYCHF"}]}]}
                ],
                "location": [{"location": {"reference": "#l1"}}],
            },
            CareSetting.PSYCHIATRIC,
        ),
        # nothing we know
        ({"class": {"system": ACT, "code": "FLD"}}, None),
        ({}, None),
    ],
)
def test_a_foreign_r4_encounter_s_setting_is_recognised(encounter: dict, expected: CareSetting | None) -> None:
    assert recognise_setting({"resourceType": "Encounter", **encounter}, "R4") == expected


def test_locations_passed_alongside_are_read_too_and_r5_classes_are_lists() -> None:
    encounter = {
        "resourceType": "Encounter",
        "class": [{"coding": [{"system": ACT, "code": "NONAC"}]}],
        "location": [{"location": {"reference": "Location/hospice-7"}}],
    }
    hospice = {"resourceType": "Location", "id": "hospice-7", "type": [{"coding": [{"system": POS, "code": "34"}]}]}
    assert recognise_setting(encounter, "R5") == CareSetting.SKILLED_NURSING
    assert recognise_setting(encounter, "R5", locations=[hospice]) == CareSetting.HOSPICE


@pytest.mark.parametrize("setting", list(CareSetting))
@pytest.mark.parametrize("version", ["R4", "R5"])
def test_our_own_encounters_are_recognised_exactly(setting: CareSetting, version: str) -> None:
    stay = full_case().stays[0].model_copy(update={"setting": setting})
    enc = case_to_resources(full_case(stays=[stay]), version, SYSTEM)[STAY]
    assert recognise_setting(enc, version) == setting
    # Without our own coding, the standard codes we send still lead to a close setting.
    enc["type"][0]["coding"] = enc["type"][0]["coding"][1:]
    assert recognise_setting(enc, version) is not None


@pytest.mark.parametrize(("version", "element"), [("R4", "hospitalization"), ("R5", "admission")])
def test_the_discharge_disposition_is_recognised_in_either_version(version: str, element: str) -> None:
    encounter = {element: {"dischargeDisposition": {"coding": [{"system": DISPOSITION, "code": "snf"}]}}}
    assert recognise_disposition(encounter, version) == "snf"
    assert recognise_disposition({}, version) is None


NUBC = "https://www.nubc.org/CodeSystem/PatDischargeStatus"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("01", "home"),
        ("02", "other-hcf"),
        ("03", "snf"),
        ("04", "long"),
        ("06", "home"),
        ("07", "aadvice"),
        ("20", "exp"),
        ("21", "oth"),
        ("41", "exp"),
        ("50", "hosp"),
        ("51", "hosp"),
        ("61", "snf"),
        ("62", "rehab"),
        ("63", "long"),
        ("64", "long"),
        ("65", "psy"),
        ("66", "other-hcf"),
        ("70", "other-hcf"),
        ("83", "snf"),
        ("90", "rehab"),
        ("09", None),  # admitted as an inpatient here: the inpatient stay says where to
        ("30", None),  # still a patient: no discharge
    ],
)
def test_the_nubc_patient_discharge_status_us_core_prefers_is_recognised(code: str, expected: str | None) -> None:
    """US Core's preferred binding is NUBC's (UB-04 form locator 17): a hospital sending only those codes
    still tells where the person went."""
    encounter = {"hospitalization": {"dischargeDisposition": {"coding": [{"system": NUBC, "code": code}]}}}
    assert recognise_disposition(encounter, "R4") == expected
    assert recognise_disposition({"admission": encounter["hospitalization"]}, "R5") == expected


def test_nubc_codes_are_recognised_but_not_sent() -> None:
    enc = case_to_resources(full_case(), "R4", SYSTEM)[STAY]
    sent = {c["system"] for c in enc["hospitalization"]["dischargeDisposition"]["coding"]}
    assert NUBC not in sent
