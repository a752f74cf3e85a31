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
import itertools
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.identify import group_members, members_unlisted, watermark_key
from fhir_cm.store import get_watermark, list_candidates, open_store

from .population import profile_resources, screen, transaction

pytestmark = pytest.mark.server
TODAY = dt.date.today()


def identify(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["identify", "--json", "--top", "100000", *args], env=env)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def refused(env: dict[str, str], *args: str) -> str:
    """The one line a refused run says on stderr (exit 2, a usage error: the Group given cannot be used)."""
    result = CliRunner().invoke(app, ["identify", "--json", *args], env=env)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    return str(result.stderr)


def environment(fhir_server: str, db: Path) -> dict[str, str]:
    return {
        "FHIR_CM_DATABASE_URL": f"sqlite:///{db}",
        "FHIR_CM_FHIR_BASE": fhir_server,
        "FHIR_CM_BULK_MAX_RETRY_AFTER": "0.25",
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


def test_a_group_defined_by_characteristics_is_refused_saying_why(fhir_server: str, tmp_path: Path) -> None:
    """A definitional Group (``characteristic``, no ``member`` list) ranked no one and said only
    "ranked 0 patients": its members are whoever matches, which no FHIR server lists (its ``$export``
    exports the listed members, none). The run is refused before anything is read, saying why and
    what to do; nothing is stored, so the next run of the Group (once it lists members) reads everything."""
    prefix = f"grc-{uuid.uuid4().hex[:8]}"
    diabetic = profile_resources(f"{prefix}-p", "chronic", TODAY)
    group = {
        "resourceType": "Group",
        "id": f"{prefix}-diabetes",
        "type": "person",
        "actual": False,
        "characteristic": [
            {
                "code": {"text": "has diabetes"},
                "valueCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11"}]},
                "exclude": False,
            }
        ],
    }
    asyncio.run(_write(fhir_server, [*diabetic, group]))
    db = tmp_path / "store.db"
    said = refused(environment(fhir_server, db), "--group", group["id"])
    assert f"Group '{group['id']}' is defined by characteristics, not by a list of members" in said
    assert "give a Group that lists its members (member), or run without --group" in said
    with open_store(f"sqlite:///{db}") as store, store.session(read_only=True) as s:
        assert list_candidates(s, limit=10) == []
        assert get_watermark(s, fhir_server, watermark_key(group["id"])) is None


def _nested(prefix: str, name: str, *members: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Group",
        "id": f"{prefix}-{name}",
        "type": "person",
        "actual": True,
        "member": list(members),
    }


def _entry(reference: str, **more: Any) -> dict[str, Any]:
    return {"entity": {"reference": reference}, **more}


def test_nested_groups_are_followed_and_their_members_read_and_ranked(fhir_server: str, tmp_path: Path) -> None:
    """A Group whose members are Groups (a programme's clinics) ranked its Patient members only — the
    clinics' patients were neither read nor ranked. The Groups it lists are followed (a Group listed
    twice, or listing back one that lists it, once), each read by its own ``$export`` with its own
    watermark — a server's Group export covers the Patients it lists, not those of the Groups it lists
    — and the union of their Patients ranked. A Group entry inactive, or whose period has ended, is no
    member, as a Patient's is: its Patients are not ranked. A clinic added later is read whole at the
    next run, though its patients' data is older than the programme's watermark."""
    prefix = f"grn-{uuid.uuid4().hex[:8]}"
    direct, inner, deep, quiet, left, gone, later = (
        f"{prefix}-{n}" for n in ("direct", "inner", "deep", "quiet", "left", "gone", "later")
    )
    resources = [
        r for pid in (direct, inner, deep, left, gone, later) for r in profile_resources(pid, "high-risk", TODAY)
    ]
    resources += profile_resources(quiet, "nothing", TODAY)
    programme = f"{prefix}-programme"
    ward = _nested(prefix, "ward", _entry(f"Patient/{deep}"))
    clinic = _nested(
        prefix,
        "clinic",
        _entry(f"Patient/{inner}"),
        _entry(f"Patient/{quiet}"),
        _entry(f"Group/{ward['id']}"),
        _entry(f"Group/{programme}"),  # listing back the programme: followed once
    )
    closed = _nested(prefix, "closed", _entry(f"Patient/{left}"))
    moved = _nested(prefix, "moved", _entry(f"Patient/{gone}"))
    top = _nested(
        prefix,
        "programme",
        _entry(f"Patient/{direct}"),
        _entry(f"Group/{clinic['id']}"),
        _entry(f"Group/{clinic['id']}"),
        _entry(f"Group/{closed['id']}", inactive=True),
        _entry(f"Group/{moved['id']}", period={"start": "2019", "end": "2020-06"}),
    )
    asyncio.run(_write(fhir_server, [*resources, ward, clinic, closed, moved, top]))
    db = tmp_path / "store.db"
    env = environment(fhir_server, db)

    first = identify(env, "--group", programme)  # an empty store: the clinics' patients must be read
    assert first["run"]["patients"] == 4  # direct, inner, quiet, deep
    assert {c["patient_id"] for c in first["candidates"]} == {direct, inner, deep}
    assert scopes(db, fhir_server, prefix) == dict.fromkeys((direct, inner, deep), f"Group/{programme}")

    # The quiet clinic patient screens positive; a clinic whose patient's data predates the first run joins.
    added = _nested(prefix, "added", _entry(f"Patient/{later}"))
    top["member"].append(_entry(f"Group/{added['id']}"))
    asyncio.run(
        _write(fhir_server, [screen(quiet, TODAY - dt.timedelta(days=3), positive=True, rid=f"{quiet}-s"), added, top])
    )
    second = identify(env, "--group", programme)
    assert second["run"]["since"] == first["run"]["transaction_time"]
    assert second["run"]["patients"] == 5
    assert {c["patient_id"] for c in second["candidates"]} == {direct, inner, deep, quiet, later}
    assert scopes(db, fhir_server, prefix) == dict.fromkeys((direct, inner, deep, quiet, later), f"Group/{programme}")


def test_groups_nested_deeper_than_followed_are_refused(fhir_server: str, tmp_path: Path) -> None:
    """Groups are followed five levels below the one given (a cycle ends at a Group met before); a
    deeper chain is refused naming it, rather than ranked in part."""
    prefix = f"grd-{uuid.uuid4().hex[:8]}"
    patients = [f"{prefix}-p{n}" for n in range(7)]
    resources = [r for pid in patients for r in profile_resources(pid, "high-risk", TODAY)]
    chain = [_nested(prefix, f"g{n}", _entry(f"Patient/{patients[n]}")) for n in range(7)]
    for outer, inner in itertools.pairwise(chain):
        outer["member"].append(_entry(f"Group/{inner['id']}"))
    asyncio.run(_write(fhir_server, [*resources, *chain]))
    env = environment(fhir_server, tmp_path / "store.db")

    five = identify(env, "--group", chain[1]["id"])  # g1 … g6: five levels below g1
    assert {c["patient_id"] for c in five["candidates"]} == set(patients[1:])
    said = refused(env, "--group", chain[0]["id"])
    assert f"Group '{chain[6]['id']}' is nested more than 5 Groups below '{chain[0]['id']}'" in said


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


@pytest.mark.parametrize(
    ("group", "why"),
    [
        ({"actual": True, "member": [{"entity": {"reference": "Patient/a"}}]}, None),
        ({"actual": True}, None),  # an actual Group with no one in it: ranked as no one
        ({"actual": False, "member": [{"entity": {"reference": "Patient/a"}}]}, None),  # lists them all the same
        ({"characteristic": [{"code": {"text": "x"}}], "member": [{"entity": {"reference": "Patient/a"}}]}, None),
        ({"actual": True, "characteristic": [{"code": {"text": "x"}}]}, "is defined by characteristics"),
        ({"actual": False}, "is defined by characteristics"),
        ({"membership": "definitional"}, "is defined by characteristics"),  # R5
        ({"membership": "enumerated", "member": []}, None),  # R5, empty
        ({"actual": True, "quantity": 3}, "counts 3 members but lists none"),
    ],
)
def test_a_group_that_lists_no_members_but_has_some_says_why(group: dict[str, Any], why: str | None) -> None:
    said = members_unlisted({"resourceType": "Group", **group})
    assert (said if why is None else (said or "")[: len(why)]) == why


def test_a_patient_added_to_a_group_since_its_last_run_is_read_whole(fhir_server: str, tmp_path: Path) -> None:
    """A Patient added to a Group since its last run, none of whose data changed since, is not in the
    Group's incremental export (``_since`` filters by the resources' lastUpdated): they were ranked
    from no facts — no candidate — until a ``--full`` run. Each Group's members are kept from its last
    run, and those added since (to the Group given, or to a Group it lists) are read whole, by
    searches for just them; the next run reads them no more."""
    prefix = f"gra-{uuid.uuid4().hex[:8]}"
    first, inner, joined, moved_in = (f"{prefix}-{n}" for n in ("first", "inner", "joined", "moved-in"))
    resources = [r for pid in (first, joined, moved_in) for r in profile_resources(pid, "high-risk", TODAY)]
    resources += profile_resources(inner, "nothing", TODAY)
    clinic = _nested(prefix, "clinic", _entry(f"Patient/{inner}"))
    top = _nested(prefix, "programme", _entry(f"Patient/{first}"), _entry(f"Group/{clinic['id']}"))
    asyncio.run(_write(fhir_server, [*resources, clinic, top]))
    env = environment(fhir_server, tmp_path / "store.db")

    before = identify(env, "--group", top["id"])  # an empty store: everything of the members is read
    assert {c["patient_id"] for c in before["candidates"]} == {first}

    # Only the Groups change: one patient joins the programme, another its clinic.
    top["member"].append(_entry(f"Patient/{joined}"))
    clinic["member"].append(_entry(f"Patient/{moved_in}"))
    asyncio.run(_write(fhir_server, [clinic, top]))
    after = identify(env, "--group", top["id"])
    assert after["run"]["since"] == before["run"]["transaction_time"]
    assert {c["patient_id"] for c in after["candidates"]} == {first, joined, moved_in}
    assert after["run"]["read"] == {"Patient": 2, "Condition": 2}  # theirs, not the whole Groups again
    assert after["run"]["added"] == 2

    again = identify(env, "--group", top["id"])  # kept as members now: nothing of theirs is read again
    assert {c["patient_id"] for c in again["candidates"]} == {first, joined, moved_in}
    assert again["run"]["read"] == {} and again["run"]["added"] == 0


def test_a_group_run_since_a_given_instant_reads_what_changed_then_only(fhir_server: str, tmp_path: Path) -> None:
    """``--since T`` asks for what changed since T. With no members kept of the Group (never screened
    here), every member would count as added since its last run and be read whole: none is."""
    prefix = f"grs-{uuid.uuid4().hex[:8]}"
    pid = f"{prefix}-p"
    group = _nested(prefix, "clinic", _entry(f"Patient/{pid}"))
    asyncio.run(_write(fhir_server, [*profile_resources(pid, "high-risk", TODAY), group]))
    since = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    run = identify(environment(fhir_server, tmp_path / "store.db"), "--group", group["id"], "--since", since)
    assert run["run"]["since"] == since and run["run"]["added"] == 0
