"""`fhir-cm map`: cases in (object, array or JSON lines), one transaction Bundle per case out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.domain import Case
from fhir_cm.mapping import resources_to_case
from tests.mapping.builders import full_case
from tests.mapping.fhir_check import us_core_problems, validate_bundle

runner = CliRunner()
SYSTEM = "urn:fhir-cm:cli-test"


@pytest.fixture(autouse=True)
def _identifier_system(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIR_CM_IDENTIFIER_SYSTEM", SYSTEM)
    monkeypatch.delenv("FHIR_CM_FHIR_VERSION", raising=False)


def two_cases() -> list[Case]:
    return [full_case(), full_case(id="case-2", programme="social-work")]


def bundles(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_json_lines_in_one_valid_us_core_bundle_per_case_out(tmp_path: Path, version: str) -> None:
    source = tmp_path / "cases.jsonl"
    source.write_text("".join(c.model_dump_json() + "\n" for c in two_cases()))
    result = runner.invoke(app, ["map", str(source), "--fhir-version", version])
    assert result.exit_code == 0, result.stderr
    out = bundles(result.stdout)
    assert len(out) == 2
    for bundle, case in zip(out, two_cases()):
        validate_bundle(bundle, version)
        assert us_core_problems(bundle, SYSTEM, version) == []
        assert resources_to_case([bundle], version, SYSTEM) == case


def test_an_array_or_a_single_object_works_too(tmp_path: Path) -> None:
    array = tmp_path / "cases.json"
    array.write_text(json.dumps([c.model_dump(mode="json") for c in two_cases()], indent=2))
    assert len(bundles(runner.invoke(app, ["map", str(array)]).stdout)) == 2
    single = tmp_path / "case.json"
    single.write_text(full_case().model_dump_json(indent=2))
    (bundle,) = bundles(runner.invoke(app, ["map", str(single)]).stdout)
    assert bundle["entry"][0]["request"]["ifNoneExist"] == f"identifier={SYSTEM}|case-1"


def test_stdin_is_read_with_a_dash() -> None:
    result = runner.invoke(app, ["map", "-"], input=full_case().model_dump_json())
    assert result.exit_code == 0, result.stderr
    assert bundles(result.stdout)[0]["type"] == "transaction"


def test_an_invalid_case_fails_with_one_line_naming_the_line_and_field(tmp_path: Path) -> None:
    bad = full_case().model_dump(mode="json")
    bad["goals"][1]["start"] = None
    source = tmp_path / "cases.jsonl"
    source.write_text(full_case().model_dump_json() + "\n\n" + json.dumps(bad) + "\n")
    result = runner.invoke(app, ["map", str(source)])
    assert result.exit_code != 0
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("fhir-cm: error: line 3: invalid case: goals.1: ")
    assert "start date or a due date" in line
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        (["--fhir-version", "R3"], "{}", "unsupported FHIR version 'R3'"),
        ([], "\n{oops\n", "line 2: not JSON (Expecting property name enclosed in double quotes at column 2)"),
        ([], '[{"programme": "astrology"}]', "item 1: invalid case: programme"),
    ],
)
def test_bad_input_fails_with_one_line(tmp_path: Path, args: list[str], content: str, message: str) -> None:
    source = tmp_path / "in.json"
    source.write_text(content)
    result = runner.invoke(app, ["map", str(source), *args])
    assert result.exit_code != 0
    (line,) = result.stderr.splitlines()
    assert message in line


def test_a_missing_file_fails_with_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["map", str(tmp_path / "nope.json")])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"fhir-cm: error: cannot read {tmp_path / 'nope.json'}: No such file or directory"


def test_the_installed_command_composes_with_pipes() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from fhir_cm.cli import main; main()", "map", "-", "--fhir-version", "R5"],
        input=full_case().model_dump_json(),
        capture_output=True,
        text=True,
        check=False,
        env={"FHIR_CM_IDENTIFIER_SYSTEM": SYSTEM, "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    (bundle,) = bundles(proc.stdout)
    validate_bundle(bundle, "R5")
