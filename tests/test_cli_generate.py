"""`fhir-cm generate`: JSON lines on stdout or in a file, one-line errors, a summary on request."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.domain import Case

runner = CliRunner()


def run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["generate", *args])


def test_writes_json_lines_of_valid_cases_to_stdout() -> None:
    result = run("--cases", "4", "--seed", "11")
    assert result.exit_code == 0, result.stderr
    rows = result.stdout.splitlines()
    assert len(rows) == 4
    cases = [Case.model_validate_json(row) for row in rows]
    assert len({c.id for c in cases}) == 4
    assert result.stderr == ""


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a, b, c = run("--cases", "3", "--seed", "4"), run("--cases", "3", "--seed", "4"), run("--cases", "3", "--seed", "5")
    assert a.stdout == b.stdout != c.stdout


def test_out_writes_the_file_and_summarises_on_stderr(tmp_path: Path) -> None:
    target = tmp_path / "cases.jsonl"
    result = run("--cases", "5", "--seed", "2", "--out", str(target))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert target.read_text(encoding="utf-8") == run("--cases", "5", "--seed", "2").stdout
    assert len(result.stderr.strip().splitlines()) == 1
    assert "5 cases" in result.stderr and str(target) in result.stderr


def test_json_summary_goes_to_stdout_with_out(tmp_path: Path) -> None:
    target = tmp_path / "cases.jsonl"
    result = run("--cases", "6", "--out", str(target), "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    cases = [Case.model_validate_json(row) for row in target.read_text(encoding="utf-8").splitlines()]
    assert summary["cases"] == len(cases) == 6
    assert summary["referrals"] == sum(len(c.referrals) for c in cases)
    assert summary["out"] == str(target) and summary["seed"] == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--cases", "0"], "at least 1"),
        (["--cases", "-3"], "at least 1"),
        ([], "--cases N is required"),
        (["--cases", "2", "--json"], "--json needs --out"),
    ],
)
def test_bad_arguments_fail_in_one_line(args: list[str], fragment: str) -> None:
    result = run(*args)
    assert result.exit_code != 0
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and fragment in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("where", ["missing-dir/cases.jsonl", "."])
def test_unwritable_out_fails_in_one_line(tmp_path: Path, where: str) -> None:
    result = run("--cases", "2", "--out", str(tmp_path / where))
    assert result.exit_code != 0
    assert result.stderr.startswith("fhir-cm: error: cannot write") and result.stderr.count("\n") == 1
    assert result.stdout == ""


@pytest.mark.skipif(shutil.which("fhir-cm") is None, reason="the fhir-cm console script is not installed")
def test_installed_command_is_deterministic_across_processes() -> None:
    """Different hash seeds must not change the output (no set or dict-order randomness leaks in)."""
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            ["fhir-cm", "generate", "--cases", "15", "--seed", "8"], capture_output=True, env=env, check=True
        )
        assert done.stderr == b""
        digests.add(hashlib.sha256(done.stdout).hexdigest())
    in_process = run("--cases", "15", "--seed", "8").stdout.encode()
    assert digests == {hashlib.sha256(in_process).hexdigest()}


def test_module_entry_reports_errors_without_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from fhir_cm.cli import main; main()", "generate", "--cases", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == ["fhir-cm: error: --cases must be at least 1 (got 0)"]


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
def test_a_generate_stopped_halfway_leaves_the_file_it_was_to_replace_as_it_was(tmp_path: Path) -> None:
    """SIGTERM (or Ctrl-C) halfway through a large ``--out``: the file of an earlier run was emptied at
    the start and left holding the cases written so far, its last line cut, for an import to take.
    It takes its new content only once whole, as ``export --out`` does."""
    import signal
    import time

    target = tmp_path / "cases.jsonl"
    assert run("--cases", "3", "--out", str(target)).exit_code == 0
    before = target.read_bytes()
    said = tmp_path / "stderr"
    with said.open("w") as err:
        victim = subprocess.Popen(
            [sys.executable, "-c", "from fhir_cm.cli import main; main()", "generate", "--cases", "10000000"]
            + ["--out", str(target)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 60
        # Under way: cases written (to the file, or beside it).
        while sum(p.stat().st_size for p in tmp_path.glob("*cases.jsonl*")) <= len(before):
            assert victim.poll() is None and time.monotonic() < deadline, "no case was written"
            time.sleep(0.05)
        victim.send_signal(signal.SIGTERM)
        code = victim.wait(timeout=60)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    assert code == 143 and said.read_text().endswith("fhir-cm: terminated\n"), said.read_text()
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases.jsonl", "stderr"]
