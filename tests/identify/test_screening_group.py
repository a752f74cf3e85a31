"""``fhir-cm identify --group``: a Group's run ranks and lists the Group's members, and no one else.

Patients outside the Group were ranked from the facts earlier runs kept of them and listed with the
Group's — a supervisor screening one clinic's panel got candidates from elsewhere, and ``--enrol N``
enrolled them. The members are the Group's ``member`` entries on the day assessed (an inactive one, or
one whose period ended, is none), so an incremental run that reads nothing of a member still ranks
them. The server's stored list keeps everyone else's rows as the last run that ranked them left them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.identify import group_members
from fhir_cm.store import list_candidates, open_store

from .population import profile_resources, transaction

pytestmark = pytest.mark.server
TODAY = dt.date.today()


def identify(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["identify", "--json", "--top", "100000", *args], env=env)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def environment(fhir_server: str, db: Path) -> dict[str, str]:
    return {
        "FHIR_CM_DATABASE_URL": f"sqlite:///{db}",
        "FHIR_CM_FHIR_BASE": fhir_server,
        "FHIR_CM_BULK_MAX_RETRY_AFTER": "1",
    }


def scopes(db: Path, server: str, prefix: str) -> dict[str, str | None]:
    """Each of this test's candidates in the server's stored list, with the scope that ranked them."""
    with open_store(f"sqlite:///{db}") as store, store.session(read_only=True) as s:
        listed = list_candidates(s, server.rstrip("/"), limit=100_000)
    return {c.patient_id: c.scope for c in listed if c.patient_id.startswith(prefix)}


def ours(ids: list[str], prefix: str) -> set[str]:
    return {i for i in ids if i.startswith(prefix)}


async def _write(base: str, resources: list[dict[str, Any]]) -> None:
    async with AsyncFhirClient(base, enforce_capabilities=False) as fhir:
        await fhir.transaction(transaction(resources)["entry"])


def test_a_group_run_ranks_lists_and_enrols_its_members_only(fhir_server: str, tmp_path: Path) -> None:
    prefix = f"grp-{uuid.uuid4().hex[:8]}"
    member, quiet, outside, inactive, ended = (f"{prefix}-{n}" for n in ("in", "quiet", "out", "inactive", "ended"))
    resources = [r for pid in (member, outside, inactive, ended) for r in profile_resources(pid, "high-risk", TODAY)]
    resources += profile_resources(quiet, "nothing", TODAY)
    group = {
        "resourceType": "Group",
        "id": f"{prefix}-clinic",
        "type": "person",
        "actual": True,
        "member": [
            {"entity": {"reference": f"Patient/{member}"}},
            {"entity": {"reference": f"Patient/{quiet}"}, "period": {"start": "2020-01-01"}},
            {"entity": {"reference": f"Patient/{inactive}"}, "inactive": True},
            {"entity": {"reference": f"Patient/{ended}"}, "period": {"start": "2019", "end": "2020-06"}},
        ],
    }
    asyncio.run(_write(fhir_server, [*resources, group]))
    db = tmp_path / "store.db"
    env = environment(fhir_server, db)

    everyone = identify(env, "--search", "--full")  # the server's population, into the store
    assert ours([c["patient_id"] for c in everyone["candidates"]], prefix) == {member, outside, inactive, ended}
    assert scopes(db, fhir_server, prefix) == dict.fromkeys((member, outside, inactive, ended), "system")

    clinic = identify(env, "--group", group["id"])
    assert clinic["run"]["patients"] == 2  # the active members, the quiet one among them
    assert [c["patient_id"] for c in clinic["candidates"]] == [member]
    assert [c["scope"] for c in clinic["candidates"]] == [f"Group/{group['id']}"]
    # The stored list says which ranking each row is of: the clinic's member by the Group's, the rest by the system's.
    assert scopes(db, fhir_server, prefix) == {
        member: f"Group/{group['id']}",
        **dict.fromkeys((outside, inactive, ended), "system"),
    }

    # Incremental: nothing of the members changed, so nothing of theirs is read; they are still the scope.
    again = identify(env, "--group", group["id"], "--enrol", "5")
    assert again["run"]["since"] == clinic["run"]["transaction_time"] and again["run"]["patients"] == 2
    assert [e["patient_id"] for e in again["enrolled"]["enrolled"]] == [member]

    # The server's list (the API's, the console's) still holds those the clinic's runs did not rank.
    with open_store(f"sqlite:///{db}") as store, store.session(read_only=True) as s:
        listed = [c.patient_id for c in list_candidates(s, fhir_server.rstrip("/"), limit=100_000)]
    assert ours(listed, prefix) == {member, outside, inactive, ended}

    # A system run ranks everyone again: every row is the whole population's once more (the member
    # enrolled above, now in an open case, is no candidate).
    identify(env, "--search")
    assert scopes(db, fhir_server, prefix) == dict.fromkeys((outside, inactive, ended), "system")


@pytest.mark.parametrize(
    ("entry", "counted"),
    [
        ({"entity": {"reference": "Patient/a"}}, True),
        ({"entity": {"reference": "Patient/a"}, "inactive": False, "period": {"end": TODAY.isoformat()}}, True),
        ({"entity": {"reference": "Patient/a"}, "inactive": True}, False),
        ({"entity": {"reference": "Patient/a"}, "period": {"end": (TODAY - dt.timedelta(days=1)).isoformat()}}, False),
        (
            {"entity": {"reference": "Patient/a"}, "period": {"start": (TODAY + dt.timedelta(days=1)).isoformat()}},
            False,
        ),
        ({"entity": {"reference": "Patient/a"}, "period": {"end": str(TODAY.year)}}, True),
        ({"entity": {"reference": "https://fhir.example/r4/Patient/a"}}, True),
        ({"entity": {"reference": "https://other.example/fhir/Patient/a"}}, False),
        ({"entity": {"reference": "Group/a"}}, False),
        ({"entity": {"display": "a"}}, False),
        ("Patient/a", False),
    ],
)
def test_a_group_member_counts_while_active_on_the_day_assessed(entry: Any, counted: bool) -> None:
    group = {"resourceType": "Group", "member": [entry, entry]}
    assert group_members(group, TODAY, {"https://fhir.example/r4"}) == (["a"] if counted else [])
