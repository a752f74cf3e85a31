"""Search forms clients send that the façade answered wrongly: ``GET [type]/_search?…`` (HAPI's
server and its client send it) was read as a read of a resource whose id is ``_search`` — a 404 "no
Goal with this id" for a search — and the ``:[type]`` modifier of a reference parameter
(``subject:Patient=123``, US Core clients' form) was refused with a 400.

Expectations come from the domain (which cases a patient has), never from the façade's own index.
"""

# ruff: noqa: F811
from __future__ import annotations

# The module-scoped ``world`` fixture of the façade tests, shared (its parameters shadow the import).
from .test_fhir_facade import READER, World, domain_ids, get, matches, search_ids, world  # noqa: F401


def test_get_on_search_answers_as_the_search(world: World) -> None:
    case = world.cases[0]
    got = get(world.client, f"/fhir/Goal/_search?patient={case.patient.id}&_count=3")
    plain = get(world.client, f"/fhir/Goal?patient={case.patient.id}&_count=3")
    assert got["type"] == "searchset" and got["total"] == plain["total"] > 0
    assert [r["id"] for r in matches(got)] == [r["id"] for r in matches(plain)]
    refused = world.client.get("/fhir/Goal/_search?nonsense=1", headers=READER)
    assert refused.status_code == 400 and refused.json()["resourceType"] == "OperationOutcome"


def test_a_reference_parameter_takes_the_type_it_names_as_a_modifier(world: World) -> None:
    case = world.cases[3]
    pid = case.patient.id
    for rtype in ("EpisodeOfCare", "Goal", "Task", "Encounter"):
        wanted = set().union(*(domain_ids(c, rtype) for c in world.cases if c.patient.id == pid))
        assert wanted, rtype
        for query in (f"subject:Patient={pid}", f"patient:Patient={pid}", f"subject:Patient=Patient/{pid}"):
            assert search_ids(world.client, f"/fhir/{rtype}?{query}") == wanted, (rtype, query)
    assert search_ids(world.client, f"/fhir/Goal?subject:Group={pid}") == set()
    for query in (f"patient:Group={pid}", f"subject:Patient=Group/{pid}", "subject:missing=true"):
        refused = world.client.get(f"/fhir/Goal?{query}", headers=READER)
        assert refused.status_code == 400 and refused.json()["resourceType"] == "OperationOutcome", query
