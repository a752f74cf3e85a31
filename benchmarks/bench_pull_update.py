"""The update pull (``bench_pull.py --update``): the steady state of a hospital integration.

The server is seeded with N resources and pulled once into a store; then about a tenth of them
change on the server (a text each: a condition's, a goal's, a referral's, a contact's words, a
narrative added to the others) and a few whole cases are added, and a second pull into the same
store is timed: it reads the ``_lastUpdated`` window and merges what changed into the cases stored.
Printed: the changed resources per second, our process's CPU per changed resource, and the rate
against the server's pace (every page of the first pull's searches fetched and parsed, as
``bench_pull.py`` measures it), each measurement in a fresh child process as there. Before the
the first pull the benchmark waits for the pull's overlap (``PULL_OVERLAP``) to pass the seeding and
changes the last resource of each type, which sets the watermarks: the second pull's window then
holds the changes (and those again, "unchanged"), as it does between two pulls a few minutes apart,
and not the whole seeding again. ``BENCH_PULL_PROFILE=update:<file>`` has py-spy sample the
second pull into ``file`` (see ``bench_pull.measure``). It does not assert.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_pull import PAGE, case_batches, line, measure, seed
from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import open_store
from fhir_cm.sync import CASE_RESOURCE_TYPES, PULL_OVERLAP, pull
from tests.servers import sekmet_server

#: One resource in this many changes between the pulls.
EVERY = 10
#: The element whose text a change edits, by type (the others get a narrative: content all the same).
_TEXTS: dict[str, tuple[str | int, ...]] = {
    "Condition": ("code", "text"),
    "Goal": ("description", "text"),
    "ServiceRequest": ("code", "text"),
    "Communication": ("payload", 0, "contentString"),
}


async def run_update(base: str, system: str, db: Path) -> dict[str, float]:
    """The second pull, into the store the first one filled (the child's job for ``--update``)."""
    settings = Settings(database_url=f"sqlite:///{db}", fhir_base=base, identifier_system=system, fhir_version="R4")
    with open_store(settings.database_url) as store:
        async with AsyncFhirClient(base, enforce_capabilities=False) as client:
            report = await pull(store, client, settings)
    if report.quarantined or report.unplaced or report.conflicts:
        raise SystemExit(f"update pull: {report.quarantined} quarantined, {report.unplaced} unplaced, conflicts")
    return {
        "n": report.fetched - report.unchanged,
        "fetched": report.fetched,
        "updated_cases": report.updated_cases,
        "new_cases": report.new_cases,
    }


def _changed(resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` with one text of it edited (its case reads differently), or a narrative added."""
    path = _TEXTS.get(resource["resourceType"])
    changed = {**resource}
    if path is None:
        div = '<div xmlns="http://www.w3.org/1999/xhtml">Reviewed.</div>'
        changed["text"] = {"status": "additional", "div": div}
        return changed
    *above, last = path
    node: Any = changed
    for step in above:  # copied on the way down: the resource read stays as it was
        node[step] = node[step].copy() if isinstance(node, dict) else node[step]
        if isinstance(node[step], list):
            node[step] = [dict(x) for x in node[step]]
        node = node[step]
    node[last] = f"{node[last]} (revised)"
    return changed


async def change_some(base: str, system: str, pick: slice = slice(None, None, EVERY)) -> int:
    """Edit the ``pick`` of our resources on the server (every ``EVERY``-th), type by type, a
    transaction per page."""
    changed = 0
    async with AsyncFhirClient(base, enforce_capabilities=False) as client:
        for rtype in CASE_RESOURCE_TYPES:
            picked: list[dict[str, Any]] = []
            async for r in client.search(rtype).where("identifier", f"{system}|").count(PAGE):
                if any(i.get("system") == system for i in r.get("identifier") or ()):
                    picked.append(r)
            picked = [_changed(r) for r in picked[pick]]
            for start in range(0, len(picked), PAGE):
                entries = [
                    {"resource": r, "request": {"method": "PUT", "url": f"{rtype}/{r['id']}"}}
                    for r in picked[start : start + PAGE]
                ]
                await client.post_bundle(
                    {"resourceType": "Bundle", "type": "transaction", "entry": entries}, safe=False
                )
            changed += len(picked)
    return changed


def update_pulls(sizes: list[int]) -> None:
    """``--update``: at each size, a fresh identifier system, seeded, pulled, changed, pulled again."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp, sekmet_server(Path(tmp)) as server:
        for size in sizes:
            system = f"urn:bench:pull:{uuid.uuid4().hex}"
            batches = case_batches(system, seed=4242)
            have = asyncio.run(seed(server.base_url, batches, size, 0))
            seeded_at = time.monotonic()
            db = Path(tmp) / f"update-{uuid.uuid4().hex}.db"
            pace = measure("server", server.base_url, system, Path(tmp), False)
            _wait(seeded_at + PULL_OVERLAP.total_seconds() + 1)
            asyncio.run(change_some(server.base_url, system, slice(-1, None)))  # sets the watermarks
            first = measure("pull", server.base_url, system, Path(tmp), False, db=db)
            changed = asyncio.run(change_some(server.base_url, system))
            added = asyncio.run(seed(server.base_url, batches, max(1, have // 100), 0))
            print(f"{have} seeded; {changed} changed and {added} added (not measured)", file=sys.stderr)
            second = measure("update", server.base_url, system, Path(tmp), False, db=db)
            rows.append((have, changed, added, pace, first, second))
    print("update pull from sekmet-fhir on loopback (a second pull after about 10% changed on the server)")
    for have, changed, added, pace, first, second in rows:
        print(f" {have} resources on the server, then {changed} changed and {added} added (whole new cases):")
        print(line("server", pace) + "  (its pace: pages fetched, nothing done with them)")
        print(line("pull", first) + "  (the first pull)")
        print(line("update", second) + "  (resources changed or new since the first)")
        n = second["n"]
        print(
            f"  the update pull fetched {second['fetched']:.0f} ({second['fetched'] - n:.0f} unchanged) and merged {n:.0f} into"
            f" {second['updated_cases']:.0f} updated and {second['new_cases']:.0f} new cases;"
            f" our process's CPU {1000 * second['cpu'] / n:.2f} ms per changed resource"
            f" (the first pull's {1000 * first['cpu'] / first['n']:.2f} ms per resource)"
        )
        rate = (n / second["seconds"]) / (pace["n"] / pace["seconds"])
        print(f"  the update pull takes changed resources in at {rate:.2f}x the server's pace")


def _wait(until: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``until``: the pull's overlap past the seeding."""
    left = until - time.monotonic()
    if left > 0:
        print(f"waiting {left:.0f}s for the pull's overlap to pass the seeding", file=sys.stderr)
        time.sleep(left)
