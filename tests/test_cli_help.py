"""`--help` reads well: no type noise beside flags, required options marked, choices listed, no test details."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import typer
from typer.testing import CliRunner

from fhir_cm.cli import app

runner = CliRunner()


def _commands(group: object = None, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    command = group or typer.main.get_command(app)
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands())


def _help(path: tuple[str, ...]) -> str:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "fhir-cm")
def test_help_has_no_type_noise_and_no_test_details(path: tuple[str, ...]) -> None:
    text = _help(path)
    assert "<bool>" not in text and "<NoneType>" not in text
    for detail in ("sekmet", "hapi", "pytest", "respx"):
        assert detail not in text.lower()
    assert all(len(line) <= 80 for line in text.splitlines() if " [" not in line and "--" not in line[:6]), text


@pytest.mark.parametrize("path", [p for p in COMMANDS if p], ids=" ".join)
def test_flags_show_no_value_and_required_options_are_marked(path: tuple[str, ...]) -> None:
    text = _help(path)
    options = _options(text)
    for flag in ("--json", "--force", "--all", "--once", "--active", "--no-wait"):
        if flag in options:
            assert options[flag] == "", (flag, options[flag])
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    for param in command.params:  # type: ignore[attr-defined]
        if getattr(param, "required", False) and param.param_type_name == "option":
            block = text.split(param.opts[0], 1)[1].split("\n  -", 1)[0]
            assert "[required]" in block, (path, param.opts[0])


def _options(text: str) -> dict[str, str]:
    """Each option of a help page, with what follows its name on that line before the description."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^  (--[a-z-]+)((?: \S+)?)(?:\s{2,}|$)", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


@pytest.mark.parametrize(
    ("path", "option", "choices"),
    [
        (("apikey", "create"), "--role", "case-manager|supervisor|service"),
        (
            ("apikey", "create"),
            "--programme",
            "health-care|social-work|rehabilitation|child-protection|behavioural-health",
        ),
        (("map",), "--fhir-version", "R4|R5"),
        (("export",), "--fhir-version", "R4|R5"),
        (("import",), "--fhir-version", "auto|R4|R5"),
        (("conflicts", "resolve"), "--keep", "local|server"),
    ],
)
def test_choices_are_listed(path: tuple[str, ...], option: str, choices: str) -> None:
    assert f"{option} [{choices}]" in _help(path)


def test_paragraphs_are_rewrapped_not_broken_where_the_source_was() -> None:
    text = _help(("transitions",))
    # The docstring breaks after "tracker);" — the help flows on within the terminal width instead.
    assert "(from import, the API or `fhir-cm\n  pull`'s tracker); what the tracker" in text


def test_the_command_list_shows_whole_summaries() -> None:
    listed = _help(()).split("Commands:", 1)[1]
    mine = (
        "capabilities",
        "generate",
        "map",
        "serve",
        "pull",
        "transitions",
        "import",
        "export",
        "demo",
        "check",
        "apikey",
        "conflicts",
    )
    for line in listed.strip().splitlines():
        name = line.split()[0]
        if name in mine:
            assert not line.endswith("..."), line
