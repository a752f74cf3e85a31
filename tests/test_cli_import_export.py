"""`fhir-cm import` and `fhir-cm export` end to end on a SQLite file (FHIR_CM_DATABASE_URL)."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.domain import Case
from fhir_cm.store import list_audit, list_cases, open_store
from tests.fixtures_hl7 import CASE_MANAGEMENT_TYPES, hl7_examples
from tests.mapping.fhir_check import validate_bundle

runner = CliRunner()
SYSTEM = "urn:fhir-cm:cli-import-test"


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FHIR_CM_DATABASE_URL", url)
    monkeypatch.setenv("FHIR_CM_IDENTIFIER_SYSTEM", SYSTEM)
    monkeypatch.delenv("FHIR_CM_FHIR_VERSION", raising=False)
    return url


def stored(url: str) -> list[Case]:
    with open_store(url) as store, store.session(read_only=True) as s:
        return list_cases(s)


def test_generate_piped_into_import_then_export_in_both_versions(db: str, tmp_path: Path) -> None:
    generated = runner.invoke(app, ["generate", "--cases", "3", "--seed", "4"])
    assert generated.exit_code == 0, generated.stderr

    imported = runner.invoke(app, ["import", "-", "--json"], input=generated.stdout)
    exported = runner.invoke(app, ["export"])
    r5 = runner.invoke(app, ["export", "--fhir-version", "R5", "--out", str(tmp_path / "r5.json")])

    assert imported.exit_code == 0, imported.stderr
    summary = json.loads(imported.stdout)
    assert (summary["case_documents"], summary["cases_created"]) == (3, 3)
    cases = [Case.model_validate_json(line) for line in generated.stdout.splitlines()]
    assert sorted(stored(db), key=lambda c: c.id) == sorted(cases, key=lambda c: c.id)
    assert exported.exit_code == 0, exported.stderr
    validate_bundle(json.loads(exported.stdout), "R4")
    assert r5.exit_code == 0 and r5.stdout == "", r5.stderr
    assert "exported" in r5.stderr
    validate_bundle(json.loads((tmp_path / "r5.json").read_text()), "R5")


def test_examples_in_and_out_unchanged_and_in_the_other_version(db: str) -> None:
    # Both versions, one by one, are tests/interchange/test_hl7_examples.py's; here the command line.
    examples = hl7_examples(("R4",), CASE_MANAGEMENT_TYPES)
    other = "R5"

    imported = runner.invoke(app, ["import", *(str(e.path) for e in examples)])
    same = runner.invoke(app, ["export"])
    converted = runner.invoke(app, ["export", "--fhir-version", other])

    assert imported.exit_code == 0, imported.stderr
    assert imported.stdout == ""
    assert f"imported {len(examples)} files, {len(examples)} resources" in imported.stderr
    out = {(r["resourceType"], r["id"]): r for r in (e["resource"] for e in json.loads(same.stdout)["entry"])}
    assert out == {(e.resource_type, e.load()["id"]): e.load() for e in examples}
    validate_bundle(json.loads(converted.stdout), other)


def test_reimport_reports_nothing_changed(db: str) -> None:
    paths = [str(e.path) for e in hl7_examples(("R4",), ("EpisodeOfCare", "Goal"))]
    runner.invoke(app, ["import", *paths])

    again = runner.invoke(app, ["import", "--json", *paths])

    summary = json.loads(again.stdout)
    assert (summary["cases_created"], summary["cases_updated"]) == (0, 0) and summary["cases_unchanged"] >= 1


def test_files_saved_with_a_byte_order_mark_are_imported(db: str, tmp_path: Path) -> None:
    """Windows tools start UTF-8 files with one: JSON has no place for it, the file is still JSON."""
    generated = runner.invoke(app, ["generate", "--cases", "2"])
    cases = tmp_path / "cases.jsonl"
    cases.write_bytes(b"\xef\xbb\xbf" + generated.stdout.encode())
    mapped = runner.invoke(app, ["map", str(cases)])
    assert mapped.exit_code == 0, mapped.output
    bundles = tmp_path / "bundle.json"
    bundles.write_bytes(b"\xef\xbb\xbf" + mapped.stdout.splitlines()[0].encode())
    for path in (cases, bundles):
        result = runner.invoke(app, ["import", str(path)])
        assert result.exit_code == 0, result.output
    assert len(stored(db)) == 2


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("not json at all", "line 1, column 1: not JSON"),
        ('{"resourceType": "Patient"}\n{"resourceType": "Nope"}\n', "line 2: not a valid FHIR R4 or R5 Nope"),
        ('{"just": "data"}', "document: neither a FHIR resource"),
        ("[" * 100_000 + "]" * 100_000, "document: not JSON this reads (nested too deep)"),
        ('{"resourceType": "Bundle", "type": "collection", "entry": "x"}', "document: Bundle.entry is not an array"),
        (  # the Patient after a stray entry is not dropped in silence
            '{"resourceType": "Bundle", "type": "collection", "entry": [1, {"resource": {"resourceType": "Patient"}}]}',
            "document, entry 1: not a JSON object",
        ),
    ],
)
def test_bad_input_is_one_line_and_non_zero_and_imports_nothing(
    db: str, tmp_path: Path, content: str, reason: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)

    result = runner.invoke(app, ["import", str(bad)])

    assert result.exit_code != 0
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("fhir-cm: error: ")
    assert f"bad.json: {reason}" in result.stderr
    assert "Traceback" not in result.stderr
    assert stored(db) == []


def test_bad_options_and_unknown_case(db: str) -> None:
    version = runner.invoke(app, ["export", "--fhir-version", "R6"])
    unknown = runner.invoke(app, ["export", "--case", "no-such-case"])
    forced = runner.invoke(app, ["import", "--fhir-version", "DSTU2", "x.json"])

    assert version.exit_code == 2 and "R4 or R5" in version.stderr
    assert unknown.exit_code == 1 and unknown.stderr.strip() == "fhir-cm: error: no case no-such-case in the store"
    assert unknown.stdout == ""  # streamed, yet nothing is written before the case is found
    assert forced.exit_code == 2 and "auto, R4 or R5" in forced.stderr


def test_an_export_to_a_file_that_fails_halfway_leaves_the_earlier_file(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fhir_cm.interchange._export as export_module
    from fhir_cm.interchange import InterchangeError

    generated = runner.invoke(app, ["generate", "--cases", "3", "--seed", "6"])
    runner.invoke(app, ["import", "-"], input=generated.stdout)
    out = tmp_path / "export.json"
    assert runner.invoke(app, ["export", "--out", str(out)]).exit_code == 0
    earlier = out.read_bytes()
    real, seen = export_module.case_resources, []

    def failing_on_the_second_case(case: Case, *args: object, **kw: object) -> object:
        seen.append(case.id)
        if len(seen) == 2:  # the first case's entries are written by now
            raise InterchangeError(f"case {case.id} cannot be exported")
        return real(case, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(export_module, "case_resources", failing_on_the_second_case)
    failed = runner.invoke(app, ["export", "--out", str(out)])

    assert failed.exit_code == 1 and "cannot be exported" in failed.stderr
    assert out.read_bytes() == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["cli.db", "export.json"])


def test_an_import_is_audited_per_case_it_wrote_naming_the_account(db: str) -> None:
    generated = runner.invoke(app, ["generate", "--cases", "2", "--seed", "9"])
    imported = runner.invoke(app, ["import", "-"], input=generated.stdout)

    assert imported.exit_code == 0, imported.stderr
    ids = {Case.model_validate_json(line).id for line in generated.stdout.splitlines()}
    with open_store(db) as store, store.session(read_only=True) as s:
        rows = list_audit(s)
    assert {(r.principal, r.action, r.case_id) for r in rows} == {
        (f"cli:{getpass.getuser()}", "import", case_id) for case_id in ids
    }


def test_partial_dates_are_imported_and_exported_as_the_file_wrote_them(db: str, tmp_path: Path) -> None:
    """A goal due "2024-06" and a stay of "2023-12" to "2024-01" (FHIR dates of a month) are the case's
    goal and stay, not a refused file; the export, in either version, still says the month."""
    from fhir_cm.mapping import ResourceKey, case_to_resources
    from tests.mapping.builders import full_case

    case = full_case()
    keys = case_to_resources(case, "R4", SYSTEM)
    resources = case_to_resources(case, "R4", SYSTEM, server_ids={k: f"id-{n}" for n, k in enumerate(keys)})
    goal, stay = resources[ResourceKey("Goal", "goal-1")], resources[ResourceKey("Encounter", "stay-1")]
    goal["target"][0]["dueDate"] = "2024-06"
    stay["period"] = {"start": "2023-12", "end": "2024-01"}
    path = tmp_path / "partial.json"
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources.values()]}
    path.write_text(json.dumps(bundle))

    imported = runner.invoke(app, ["import", str(path)])
    r4 = runner.invoke(app, ["export"])
    r5 = runner.invoke(app, ["export", "--fhir-version", "R5"])

    assert imported.exit_code == 0, imported.stderr
    (held,) = stored(db)
    assert {g.id: g.due for g in held.goals}["goal-1"] == full_case().goals[0].due.replace(day=30)
    out = {v: _by_business_key(x.stdout) for v, x in (("R4", r4), ("R5", r5))}
    assert out["R4"][("Goal", "goal-1")]["target"][0]["dueDate"] == "2024-06"
    assert out["R5"][("Goal", "goal-1")]["target"][0]["dueDate"] == "2024-06"
    assert out["R4"][("Encounter", "stay-1")]["period"] == {"start": "2023-12", "end": "2024-01"}
    assert out["R5"][("Encounter", "stay-1")]["actualPeriod"] == {"start": "2023-12", "end": "2024-01"}


def _by_business_key(exported: str) -> dict[tuple[str, str], dict]:
    """An exported Bundle's resources by type and our business identifier."""
    out = {}
    for entry in json.loads(exported)["entry"]:
        resource = entry["resource"]
        for i in resource.get("identifier") or ():
            if i.get("system") == SYSTEM:
                out[(resource["resourceType"], i["value"])] = resource
    return out


def test_decimals_are_exported_with_the_precision_the_file_gave_them(db: str, tmp_path: Path) -> None:
    """FHIR decimals keep their precision on the wire (1.50 is not 1.5): a goal's target of 1.50 and an
    extension's 2.0 come out of either export as written, a value a float would print otherwise too."""
    from fhir_cm.mapping import ResourceKey, case_to_resources
    from tests.mapping.builders import full_case

    case = full_case()
    keys = case_to_resources(case, "R4", SYSTEM)
    resources = case_to_resources(case, "R4", SYSTEM, server_ids={k: f"id-{n}" for n, k in enumerate(keys)})
    goal, episode = resources[ResourceKey("Goal", "goal-1")], resources[ResourceKey("EpisodeOfCare", case.id)]
    goal["target"][0]["detailQuantity"] = {"value": "@1.50@", "unit": "mmol/L"}
    episode["extension"].append({"url": "https://hospital.example/score", "valueDecimal": "@2.0@"})
    episode["extension"].append({"url": "https://hospital.example/tiny", "valueDecimal": "@0.000010@"})
    episode["extension"].append(
        {"url": "https://hospital.example/huge", "valueDecimal": "@123456789012345678901234567890@"}
    )
    text = json.dumps(
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources.values()]}
    )
    path = tmp_path / "decimals.json"
    path.write_text(text.replace('"@', "").replace('@"', ""))

    imported = runner.invoke(app, ["import", str(path)])
    r4 = runner.invoke(app, ["export"])
    r5 = runner.invoke(app, ["export", "--fhir-version", "R5"])

    assert imported.exit_code == 0, imported.stderr
    for exported in (r4, r5):
        assert exported.exit_code == 0, exported.stderr
        assert '"value":1.50,' in exported.stdout and '"valueDecimal":2.0}' in exported.stdout
        assert '"valueDecimal":0.000010}' in exported.stdout
        assert '"valueDecimal":123456789012345678901234567890}' in exported.stdout


def test_an_extension_whose_value_has_its_own_extensions_is_imported_and_exported(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``_valueString`` beside an Extension's ``valueString`` (a translation of it, say) is valid FHIR
    that fhir.resources' Extension model refuses: the file is imported, and both exports keep it and
    read back in."""
    from fhir_cm.mapping import ResourceKey, case_to_resources
    from tests.mapping.builders import full_case, translated_note

    case = full_case()
    keys = case_to_resources(case, "R4", SYSTEM)
    resources = case_to_resources(case, "R4", SYSTEM, server_ids={k: f"id-{n}" for n, k in enumerate(keys)})
    note = translated_note()
    resources[ResourceKey("EpisodeOfCare", case.id)]["extension"].append(note)
    path = tmp_path / "translated.json"
    path.write_text(
        json.dumps(
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources.values()]}
        )
    )

    imported = runner.invoke(app, ["import", str(path)])
    r4 = runner.invoke(app, ["export"])
    r5 = runner.invoke(app, ["export", "--fhir-version", "R5", "--out", str(tmp_path / "r5.json")])

    assert imported.exit_code == 0, imported.stderr
    assert r4.exit_code == 0 and r5.exit_code == 0, r4.stderr + r5.stderr
    for exported in (r4.stdout, (tmp_path / "r5.json").read_text()):
        assert note in _by_business_key(exported)[("EpisodeOfCare", case.id)]["extension"]
    monkeypatch.setenv("FHIR_CM_DATABASE_URL", f"sqlite:///{tmp_path / 'again.db'}")
    again = runner.invoke(app, ["import", str(tmp_path / "r5.json")])
    assert again.exit_code == 0, again.stderr
