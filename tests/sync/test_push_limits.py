"""Push against a server that limits transactions as Medplum does (a proxy in front of the real one).

The proxy (``limiting_proxy``) refuses a transaction of more than 8 entries holding a conditional
entry with Medplum's 400; every case's transaction is larger than that. The push must learn the
limit, land every case exactly as a direct push does, stay idempotent, and remember the limit in the
store so the next run is not refused first. A server's refusal must reach the person in its own
words — without the case's data.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, get_server_limit, open_store
from fhir_cm.sync import push_cases
from fhir_cm.synthetic import generate_cases
from tests.sync.limiting_proxy import MEDPLUM_TOO_MANY, limiting_proxy
from tests.sync.server_state import CASE_TYPES, ServerState, expected, server_state

pytestmark = pytest.mark.server


def comparable(state: ServerState, system: str) -> dict[tuple[str, str], Any]:
    """Our resources without what a server assigns (ids, meta), references named by business key."""
    keys = {f"{t}/{r['id']}": f"{t}|{v}" for (t, v), copies in state.resources.items() for r in copies}

    def norm(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: norm(v) for k, v in node.items()}
        if isinstance(node, list):
            return [norm(v) for v in node]
        if isinstance(node, str):
            if node == system:
                return "SYSTEM"
            if node in keys:
                return keys[node]
            # a directory entry (Practitioner, Organization…) the push may have made per identifier system
            kind, _, rest = node.partition("/")
            return f"{kind}/*" if rest and kind[:1].isupper() and kind not in {t for t, _ in state.resources} else node
        return node

    out = {}
    for key, copies in state.resources.items():
        resource = copy.deepcopy(copies[0])
        resource.pop("id", None)
        resource.pop("meta", None)
        out[key] = norm(resource)
    return out


def total(cases: list[Case], system: str) -> int:
    return sum(n for (t, _), n in expected(cases, system).items() if t in CASE_TYPES)


async def test_a_medplum_limit_is_learnt_the_cases_land_exactly_and_the_store_remembers_it(
    store: Store, settings: Settings, client: AsyncFhirClient, raw: AsyncFhirClient, fhir_server: str, system: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    cases = list(generate_cases(3, seed=83))
    later = list(generate_cases(2, seed=84))
    # The same cases pushed straight to the server, under an identifier system of their own.
    direct_system = f"{system}-direct"
    direct_settings = settings.model_copy(
        update={"identifier_system": direct_system, "database_url": f"sqlite:///{tmp_path / 'direct.db'}"}
    )
    with open_store(direct_settings.database_url) as direct_store:
        direct = await push_cases(direct_store, client, direct_settings, cases)
    assert direct.ok, direct.failures

    with limiting_proxy(fhir_server) as (proxy_base, proxy):
        limited = settings.model_copy(update={"fhir_base": proxy_base})
        async with AsyncFhirClient(proxy_base) as through:
            first = await push_cases(store, through, limited, cases)
            refused_first = proxy.refusals
            before = (await server_state(raw, system)).versions()
            again = await push_cases(store, through, limited, cases)
            after = (await server_state(raw, system)).versions()
        # A later run: a fresh client, the same store — it starts from the remembered limit.
        async with AsyncFhirClient(proxy_base) as fresh:
            assert fresh.transaction_limit is None
            third = await push_cases(store, fresh, limited, later)
            assert fresh.transaction_limit == 8

    assert first.ok and again.ok and third.ok, (first.failures, again.failures, third.failures)
    assert 1 <= refused_first <= limited.push_concurrency  # only the cases already out when it first refused
    assert proxy.refusals == refused_first  # neither the re-run nor the fresh client was refused again
    assert max(proxy.transactions) <= 8
    assert first.created == total(cases, system)
    assert (again.created, again.updated, again.unchanged) == (0, 0, total(cases, system))
    assert after == before  # the re-run made no new versions
    state = await server_state(raw, system)
    assert state.counts == expected(cases + later, system)
    assert state.dangling() == []
    landed = {k: v for k, v in comparable(state, system).items() if k[1] not in {c.id for c in later}}
    direct_state = await server_state(raw, direct_system)
    assert landed.keys() >= comparable(direct_state, direct_system).keys()
    for key, resource in comparable(direct_state, direct_system).items():
        assert landed[key] == resource, key
    with store.session(read_only=True) as s:
        remembered = get_server_limit(s, proxy_base)
    assert remembered is not None and remembered.max_transaction_entries == 8
    assert MEDPLUM_TOO_MANY in (remembered.reason or "")


@pytest.fixture
def cli_env(tmp_path: Path, system: str) -> dict[str, str]:
    return {"FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "FHIR_CM_IDENTIFIER_SYSTEM": system}


@pytest.fixture
def cases_file(tmp_path: Path) -> Iterator[tuple[Path, list[Case]]]:
    cases = list(generate_cases(2, seed=85))
    file = tmp_path / "cases.jsonl"
    file.write_text("".join(c.model_dump_json() + "\n" for c in cases))
    yield file, cases


def test_a_configured_limit_avoids_the_refusal_from_the_start(
    fhir_server: str, cli_env: dict[str, str], cases_file: tuple[Path, list[Case]], system: str
) -> None:
    file, cases = cases_file
    with limiting_proxy(fhir_server) as (proxy_base, proxy):
        env = {**cli_env, "FHIR_CM_FHIR_BASE": proxy_base, "FHIR_CM_MAX_TRANSACTION_ENTRIES": "8"}
        result = CliRunner().invoke(app, ["push", str(file), "--json"], env=env)

    assert result.exit_code == 0, result.output
    assert proxy.refusals == 0 and proxy.transactions and max(proxy.transactions) <= 8
    assert json.loads(result.stdout)["created"] == total(cases, system)


def test_a_later_command_starts_from_the_limit_the_store_remembers(
    fhir_server: str, cli_env: dict[str, str], cases_file: tuple[Path, list[Case]], tmp_path: Path, system: str
) -> None:
    file, cases = cases_file
    later = tmp_path / "later.jsonl"
    later_cases = list(generate_cases(2, seed=86))
    later.write_text("".join(c.model_dump_json() + "\n" for c in later_cases))
    with limiting_proxy(fhir_server) as (proxy_base, proxy):
        env = {**cli_env, "FHIR_CM_FHIR_BASE": proxy_base}
        first = CliRunner().invoke(app, ["push", str(file), "--json"], env=env)
        refused = proxy.refusals
        second = CliRunner().invoke(app, ["push", str(later), "--json"], env=env)

    assert first.exit_code == 0 and second.exit_code == 0, (first.output, second.output)
    assert refused >= 1 and proxy.refusals == refused  # the second command was not refused first
    assert json.loads(second.stdout)["created"] == total(later_cases, system)


def test_a_refused_case_names_the_servers_reason_without_our_data(
    fhir_server: str, cli_env: dict[str, str], cases_file: tuple[Path, list[Case]]
) -> None:
    file, cases = cases_file
    quoted: list[str] = []

    def hapi_quoting_us(bundle: dict[str, Any]) -> str:
        """HAPI-style diagnostics that quote our data back, on the first line and on the next."""
        goal = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Goal")
        text, ident = goal["description"]["text"], goal["identifier"][0]["value"]
        quoted.extend([text, ident])
        return (
            f'HAPI-0450: HAPI-1821: [element="description"] Invalid attribute value "{text}" for {ident}: '
            f"Goal description not accepted\n  at Goal.description: {text}"
        )

    with limiting_proxy(fhir_server, refuse_all=hapi_quoting_us) as (proxy_base, proxy):
        env = {**cli_env, "FHIR_CM_FHIR_BASE": proxy_base}
        result = CliRunner().invoke(app, ["push", str(file), "--json"], env=env)

    assert result.exit_code == 1, result.output
    assert proxy.refusals >= len(cases) and quoted
    failures = json.loads(result.stdout)["failures"]
    assert {f["case_id"] for f in failures} == {c.id for c in cases}
    server = failures[0]["server"]
    assert server == {
        "status": 400,
        "code": "processing",
        "message_code": "HAPI-1821",
        "diagnostics": '[element="description"] Invalid attribute value "…" for …: Goal description not accepted',
    }
    assert (
        failures[0]["reason"] == f"the server refused the case: HTTP 400 processing HAPI-1821: {server['diagnostics']}"
    )
    assert f"HTTP 400 processing HAPI-1821: {server['diagnostics']}" in result.stderr
    for ours in quoted + [c.patient.name or "" for c in cases]:
        if ours:
            assert ours not in result.output  # neither on stderr nor in the JSON
    assert "at Goal.description" not in result.output  # the first line only
