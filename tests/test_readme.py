"""The README, followed literally on a fresh folder: the quick start, then the API walk-through.

The quick start's `fhir-cm` commands run as written (installing is what this environment already
did, and the test suite is what runs this). Then every fenced block the README marks with
``<!-- demo-walkthrough -->`` runs line by line in a shell on the demo's store, against a real
``fhir-cm serve`` (on a free port instead of 8000): each command must succeed and give a non-empty,
plausible answer — no error document, no empty list, no caseload gap that is negative or years old.
Blocks are found by their marker and lines read as shell lines, so rewording, spacing or reordering
the README does not break this; a command that stops working does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
MARKER = "<!-- demo-walkthrough"
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=\$\((.*)\)$")


def _blocks(text: str) -> Iterator[tuple[str, list[str]]]:
    """Each fenced block of the README, with the paragraph (or comment) just before it."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith("```"):
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            j = i + 1
            while j < len(lines) and not lines[j].lstrip().startswith("```"):
                j += 1
            yield before, lines[i + 1 : j]
            i = j + 1
        else:
            i += 1


def _commands(block: list[str]) -> list[str]:
    """Shell lines of a block: continuations joined, comments and blank lines left out."""
    out: list[str] = []
    pending = ""
    for raw in block:
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        code = _strip_comment(line).strip()
        if code:
            out.append(code)
    return out


def _strip_comment(line: str) -> str:
    """The line without a trailing ``# comment`` (a ``#`` inside quotes or ``$(...)`` is kept)."""
    quote, depth = "", 0
    for n, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "#" and depth == 0 and (n == 0 or line[n - 1].isspace()):
            return line[:n]
    return line


def _quick_start() -> list[str]:
    """The quick start's commands, split at ``&&``."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1]
    _, block = next(_blocks(section))
    return [part.strip() for line in _commands(block) for part in line.split("&&")]


def _walkthrough() -> list[str]:
    return [
        command
        for before, block in _blocks(README.read_text(encoding="utf-8"))
        if before.strip().startswith(MARKER)
        for command in _commands(block)
    ]


def test_the_readme_keeps_a_two_command_quick_start_and_a_walkthrough() -> None:
    quick = _quick_start()
    assert [c for c in quick if c.startswith("pip install")] == ["pip install .", 'pip install -e ".[test]"']
    assert "fhir-cm demo" in quick and "pytest" in quick
    walk = _walkthrough()
    assert any(c.startswith("fhir-cm serve") for c in walk) and sum(c.startswith("curl") for c in walk) >= 5


# --- running it ----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Shell:
    """Runs README lines in a folder as a newcomer's shell would, keeping the variables they assign."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir, self.port = workdir, port
        # PYTHONPATH too: run from a checkout's src (PYTHONPATH=src), the commands run that code, not
        # the one the script was installed from.
        keep = ("LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "PYTHONPATH")
        self.env = {k: v for k, v in os.environ.items() if k in keep}
        self.env |= {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(workdir),
            "FHIR_CM_PORT": str(port),
        }
        self.server: subprocess.Popen[bytes] | None = None

    def local(self, command: str) -> str:
        """The command aimed at this test's server: the README's port 8000 becomes the free one."""
        return command.replace("127.0.0.1:8000", f"127.0.0.1:{self.port}").replace(
            "localhost:8000", f"localhost:{self.port}"
        )

    def run(self, command: str) -> str:
        result = subprocess.run(
            ["bash", "-c", self.local(command)],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        return result.stdout

    def start(self, command: str) -> None:
        """A line ending in ``&``: started in the background; a server is waited for until it answers."""
        self.server = subprocess.Popen(
            ["bash", "-c", f"exec {self.local(command).rstrip('&').strip()}"],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        pytest.fail(f"{command}: nothing answered on port {self.port}")

    def stop(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=30)


def _plausible(command: str, output: str) -> None:
    """A non-empty answer that is no error and holds something: the demo's data, through the command."""
    assert output.strip(), f"{command}: no output"
    try:
        body: Any = json.loads(output)
    except ValueError:
        return  # text (a key, a listing): non-empty is what can be asked of it
    assert not (isinstance(body, dict) and str(body.get("type", "")).startswith("urn:fhir-cm:problem:")), body
    assert not (isinstance(body, dict) and body.get("resourceType") == "OperationOutcome"), body
    if isinstance(body, list):
        assert body, f"{command}: an empty list"
    if isinstance(body, dict):
        if body.get("resourceType") == "Bundle":
            assert body.get("entry"), f"{command}: an empty Bundle"
        if "items" in body:
            assert body["items"], f"{command}: no cases"
        if "managers" in body:
            assert body["managers"], f"{command}: nobody's caseload"
            gaps = [c["days_since_face_to_face"] for m in body["managers"] for c in m["cases"]]
            assert all(g is None or 0 <= g <= 120 for g in gaps), f"{command}: implausible gaps {gaps}"
            assert all(m["case_manager_name"] for m in body["managers"] if m["case_manager"])
        if "programmes" in body:
            assert body["programmes"] and all(p["cases"] > 0 for p in body["programmes"]), body


def _printed(summary: str) -> list[str]:
    """The shell lines under the demo summary's "See them in the API" (the ``cd`` there is this folder)."""
    section = summary.split("See them in the API", 1)[1].split("\n\n", 1)[0]
    lines = _commands(section.splitlines()[1:])
    assert lines and any(line.startswith("curl") for line in lines)
    return [line for line in lines if not line.startswith(("cd ", "export "))]


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None, reason="needs bash and curl")
def test_the_quick_start_and_the_walkthrough_work_as_written(tmp_path: Path) -> None:
    shell = Shell(tmp_path, _free_port())
    summary = ""
    for command in _quick_start():
        if command.startswith("fhir-cm"):
            summary = shell.run(command)
            assert "Caseload on" in summary and "See them in the API" in summary
    assert (tmp_path / "fhir-cm.db").is_file()
    try:
        # The README's walk-through, then the commands the demo's own summary prints.
        for command in [*_walkthrough(), *_printed(summary)]:
            if command.endswith("&"):
                if shell.server is None:
                    shell.start(command)
                continue
            if m := ASSIGNMENT.match(command):
                value = shell.run(m.group(2)).strip()
                _plausible(command, value)
                shell.env[m.group(1)] = value
                continue
            _plausible(command, shell.run(command))
    finally:
        shell.stop()


def _pipelines() -> list[str]:
    """The "Typical pipelines" block's shell lines."""
    text = README.read_text(encoding="utf-8")
    return next(_commands(block) for before, block in _blocks(text) if before.startswith("Typical pipelines"))


@pytest.mark.server
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_typical_pipelines_work_as_written_against_a_server(tmp_path: Path, fhir_server: str) -> None:
    # The README's server (localhost:8080) is the test's; an identifier system of the test's own,
    # since the server is shared by the session.
    shell = Shell(tmp_path, _free_port())
    shell.env["FHIR_CM_IDENTIFIER_SYSTEM"] = f"urn:fhir-cm:test:readme-{tmp_path.name}"
    lines = [line.replace("http://localhost:8080/fhir", fhir_server) for line in _pipelines()]
    assert len(lines) == 3 and all(fhir_server in line for line in lines[1:])
    mapped, pushed, pulled = lines

    assert shell.run(mapped) == ""  # to bundles.jsonl
    bundles = [json.loads(line) for line in (tmp_path / "bundles.jsonl").read_text().splitlines()]
    assert len(bundles) == 20 and {b["type"] for b in bundles} == {"transaction"}

    assert shell.run(pushed) == ""  # the summary goes to stderr; every case pushed, or it exits non-zero
    transitions = [json.loads(line) for line in shell.run(pulled).splitlines()]
    assert transitions and all(isinstance(t["readmission"], bool) and t["case_id"] for t in transitions)
    cases = {json.loads(line)["id"] for line in (tmp_path / "cases.jsonl").read_text().splitlines()}
    assert {t["case_id"] for t in transitions} <= cases


# --- the configuration table ---------------------------------------------------------------------------


def _configuration_rows() -> dict[str, str]:
    """The Configuration table: each variable a row names (the auth row names its own), with the row."""
    text = README.read_text(encoding="utf-8").split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("| `FHIR_CM_"):
            for name in re.findall(r"`(FHIR_CM_[A-Z0-9_]+)`", line):
                rows.setdefault(name, line)
    return rows


def test_every_setting_has_a_row_in_the_configuration_table() -> None:
    """A setting only the code knows is one a first deployment never finds (FHIR_CM_TIMEOUT was one)."""
    from fhir_cm.config import Settings

    settings = {f"FHIR_CM_{name.upper()}" for name in Settings.model_fields}
    assert sorted(settings - _configuration_rows().keys()) == []
    assert sorted(_configuration_rows().keys() - settings) == []


def test_the_database_url_forms_the_table_names_open_a_store(tmp_path: Path) -> None:
    """Each scheme the FHIR_CM_DATABASE_URL row names is one the store takes (`postgres://` too)."""
    from fhir_cm.store._engine import make_engine

    row = _configuration_rows()["FHIR_CM_DATABASE_URL"]
    schemes = set(re.findall(r"`([a-z+]+)://", row))
    assert {"sqlite", "postgresql+psycopg", "postgresql", "postgres"} <= schemes
    for scheme in schemes:
        where = f"/{tmp_path / 'store.db'}" if scheme == "sqlite" else "someone@127.0.0.1/db"
        engine = make_engine(f"{scheme}://{where}")  # made, not connected
        assert engine.url.drivername in ("sqlite", "postgresql+psycopg"), scheme
        engine.dispose()
