"""A write the server takes with a warning: the push is done, and the warning reaches the person.

Servers that validate in "warn" mode (HAPI's RequestValidatingInterceptor set to add its results to
the response, a profile a hospital checks without enforcing) answer 201 with an OperationOutcome of
severity ``warning`` in the transaction-response entry. Neither local server validates so, hence
the proxy (``limiting_proxy`` with ``warn``) that adds one to the real server's answer. The
transaction-response entry's outcome was dropped whenever the entry carried the resource too, and
the push looked at none: the warning never reached anyone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

import pytest

from fhir_cm.cli import app
from fhir_cm.synthetic import generate_cases
from tests.sync.limiting_proxy import limiting_proxy

pytestmark = pytest.mark.server


def test_a_servers_warning_on_a_written_goal_is_shown_without_our_data(
    fhir_server: str, tmp_path: Path, system: str
) -> None:
    case = next(iter(generate_cases(1, seed=201)))
    file = tmp_path / "case.json"
    file.write_text(case.model_dump_json())
    quoted: list[str] = []

    def warn(resource: dict[str, Any]) -> str | None:
        if resource.get("resourceType") != "Goal":
            return None
        text = resource["description"]["text"]
        quoted.append(text)
        return f'Goal.description: "{text}" is not in the value set the profile prefers\n  at Goal.description'

    env = {"FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "FHIR_CM_IDENTIFIER_SYSTEM": system}
    with limiting_proxy(fhir_server, max_entries=10_000, warn=warn) as (proxy_base, _):
        result = CliRunner().invoke(app, ["push", str(file), "--json"], env={**env, "FHIR_CM_FHIR_BASE": proxy_base})

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["failed"] == 0 and quoted
    warnings = summary["warnings"]
    assert len(warnings) == len(case.goals)
    said = 'Goal.description: "…" is not in the value set the profile prefers'
    assert warnings[0] == {
        "case_id": case.id,
        "resource_type": "Goal",
        "server": {"status": 201, "code": "code-invalid", "message_code": None, "diagnostics": said},
        "taken": True,
    }
    assert f"fhir-cm: case {case.id}: the server took a Goal with a warning: HTTP 201 code-invalid: {said}" in (
        result.stderr
    )
    assert not any(text in result.output for text in quoted)  # neither in the JSON nor on stderr
    assert "Successfully created" not in result.output  # the server's information issues stay out
