"""Upgrading a store whose cases were pulled before outside parties were read as such: a party the
server's copy names at another server's base (the episode's manager, a care-team member, a stay's
provider, a referral's target) becomes the outside party it is, wherever the case holds it — on both
backends. Left as it was, the next push wrote the local party's reference over the other server's."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import sqlalchemy as sa
from alembic import command

from fhir_cm.domain import Case
from fhir_cm.mapping import ResourceKey, case_to_resources, resources_to_case
from fhir_cm.store import alembic_config, get_case, list_cases, open_store
from fhir_cm.store._engine import make_engine
from tests.mapping.builders import SYSTEM, full_case

HERE, OTHER = "https://ehr.example.org/fhir", "https://other.example/fhir"
T0 = dt.datetime(2025, 5, 1, 12, 0)

CASES = sa.table(
    "cases",
    *(sa.column(c, sa.String) for c in ("case_id", "patient_id", "case_manager_id", "programme", "status")),
    sa.column("revision", sa.Integer),
    sa.column("created_at", sa.DateTime),
    sa.column("updated_at", sa.DateTime),
    sa.column("data", sa.JSON),
)
LEDGER = sa.table(
    "sync_ledger",
    *(sa.column(c, sa.String) for c in ("server_base", "resource_type", "key", "case_id", "server_id")),
    sa.column("server_copy", sa.JSON),
    sa.column("synced_at", sa.DateTime),
)
RESOURCES = sa.table(
    "resources",
    *(sa.column(c, sa.String) for c in ("resource_type", "key", "case_id", "fhir_version", "content_hash", "source")),
    sa.column("raw", sa.JSON),
    sa.column("updated_at", sa.DateTime),
)


def hospital_copies(case: Case) -> dict[ResourceKey, dict[str, Any]]:
    """The case's resources on the server at HERE, where the hospital named other servers' records."""
    bare = case_to_resources(case, "R4", SYSTEM)
    out = copy.deepcopy(case_to_resources(case, "R4", SYSTEM, server_ids={k: k.value for k in bare}))
    out[ResourceKey("EpisodeOfCare", case.id)]["careManager"] = {
        "reference": f"{OTHER}/Practitioner/cm-1",  # the id of the local case manager, who stays on the team
        "display": "Dr Far Away",
    }
    pharmacist = {"coding": [{"system": "http://snomed.info/sct", "code": "46255001"}]}
    out[ResourceKey("CareTeam", f"{case.id}-careteam")]["participant"].append(
        {"role": [pharmacist], "member": {"reference": f"{OTHER}/Practitioner/gp-1", "display": "Dr Elsewhere"}}
    )
    out[ResourceKey("Encounter", "stay-1")]["serviceProvider"] = {"reference": f"{OTHER}/Organization/org-hospital"}
    out[ResourceKey("ServiceRequest", "ref-1")]["performer"] = [{"reference": f"{OTHER}/Organization/org-home-care"}]
    return out


def test_upgrade_makes_the_parties_read_from_other_servers_references_outside_parties(empty_url: str) -> None:
    pulled = hospital_copies(full_case())
    untouched = full_case(id="case-2")  # nothing of another server's: stays byte for byte
    untouched_copies = case_to_resources(untouched, "R4", SYSTEM)
    before = resources_to_case(pulled.values(), "R4", SYSTEM)  # as the pull read it then: all local
    assert before.case_manager is not None and before.case_manager.server is None
    engine = make_engine(empty_url)
    with engine.connect() as conn, conn.begin():
        command.upgrade(alembic_config(connection=conn), "0025_subscription_event_64")
        for case, copies, base in [(before, pulled, HERE), (untouched, untouched_copies, None)]:
            conn.execute(
                CASES.insert().values(
                    case_id=case.id, patient_id=case.patient.id, case_manager_id="cm-1", programme=case.programme.value,
                    status=case.status.value, revision=1, created_at=T0, updated_at=T0,
                    data=case.model_dump(mode="json"),
                )
            )  # fmt: skip
            for key, resource in copies.items():
                if base is not None:  # pulled: the ledger's copies, at the server's base
                    conn.execute(
                        LEDGER.insert().values(
                            server_base=base, resource_type=key.type, key=key.value, case_id=case.id,
                            server_id=resource["id"], server_copy=resource, synced_at=T0,
                        )
                    )  # fmt: skip
                else:  # imported from a file: the store's copies, of no source
                    conn.execute(
                        RESOURCES.insert().values(
                            resource_type=key.type, key=key.value, case_id=case.id, fhir_version="R4",
                            content_hash="x", source=None, raw=resource, updated_at=T0,
                        )
                    )  # fmt: skip
        stored_untouched = conn.execute(sa.select(CASES.c.data).where(CASES.c.case_id == "case-2")).scalar_one()
    engine.dispose()

    with open_store(empty_url) as store, store.session(read_only=True) as s:
        after, again = get_case(s, before.id), get_case(s, "case-2")
        managed_by_cm1 = [c.id for c in list_cases(s, case_manager="cm-1")]
    engine = make_engine(empty_url)
    with engine.connect() as conn:
        data_untouched = conn.execute(sa.select(CASES.c.data).where(CASES.c.case_id == "case-2")).scalar_one()
    engine.dispose()

    # Exactly as the pull reads the same copies now: the manager, the pharmacist, the stay's provider
    # and the referral's target are the other server's; the local case manager's membership, the
    # referral source (the local hospital) and the plan's author stay local.
    assert after == resources_to_case(pulled.values(), "R4", SYSTEM, bases=[HERE])
    assert after is not None and after.case_manager is not None and after.case_manager.server == OTHER
    assert [m.party.server for m in after.team] == [None, None, OTHER]
    assert after.referral_source is not None and after.referral_source.server is None
    assert managed_by_cm1 == ["case-2"]  # the column names the local manager only
    assert again == untouched and data_untouched == stored_untouched
