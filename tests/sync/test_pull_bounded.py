"""What the pull holds in memory does not pile up until the end of the run.

Beyond ``flush_size`` resources (or ``flush_bytes`` of their JSON), what was taken in goes to a scratch file until the cases are
merged (once each, at the end). A rejected referral's ServiceRequest does not read without the Task
that says why: it comes in with it, whatever the pages in between. References to types already
pulled are not kept (nothing is left for them to place).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from fhir_cm.store import Store, get_case, list_ledger, list_quarantine, open_store
from fhir_cm.sync import _pull
from tests.mapping.builders import full_case
from tests.sync.test_pull import BASE, PagedServer, on_server, run_pull


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A store of the test's own; no real server is needed (the server here is a respx fake)."""
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


class WatchingServer(PagedServer):
    """A PagedServer that notes, at the first request for each type, which types the ledger holds."""

    def __init__(self, store: Store, by_type: dict[str, list[dict[str, Any]]]) -> None:
        super().__init__(by_type)
        self.store = store
        self.ledger_at: dict[str, set[str]] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = urlsplit(str(request.url)).path.removeprefix(urlsplit(BASE).path).strip("/")
        if path != "metadata" and path not in self.ledger_at:
            with self.store.session(read_only=True) as s:
                self.ledger_at[path] = {e.resource_type for e in list_ledger(s, BASE)}
        return super().__call__(request)


@pytest.mark.parametrize("bound", [{"flush_size": 1}, {"flush_bytes": 1}], ids=["by-count", "by-bytes"])
async def test_a_rejected_referral_comes_in_with_its_task_and_memory_holds_one_flush(
    store: Store, monkeypatch: pytest.MonkeyPatch, bound: dict[str, int]
) -> None:
    case = full_case()
    assert any(r.status == "rejected" for r in case.referrals)
    server = WatchingServer(store, on_server(case))
    held: list[int] = []
    take = _pull._Puller.take

    def spy(self: _pull._Puller, rtype: str, *args: Any, **kwargs: Any) -> None:
        take(self, rtype, *args, **kwargs)
        held.append(sum(len(items) for items in self.buffer.values()) + len(self.deferred))

    monkeypatch.setattr(_pull._Puller, "take", spy)
    report = await run_pull(store, server, **bound)

    assert (report.quarantined, report.unplaced, report.new_cases) == (0, 0, 1)
    assert max(held) <= 1  # one resource in memory at a time: the rest waited in the scratch file
    # Nothing was stored before the end (the episode placed the parts from the scratch file): the
    # case was merged once, with everything.
    assert server.ledger_at["Encounter"] == set()
    with store.session(read_only=True) as s:
        requests = {e.key for e in list_ledger(s, BASE) if e.resource_type == "ServiceRequest"}
        assert len(requests) == len(case.referrals)
        assert get_case(s, case.id) == case
        assert list_quarantine(s) == []


async def test_a_referral_whose_task_never_comes_is_quarantined_at_the_end(store: Store) -> None:
    by_type = on_server(full_case())
    by_type.pop("Task")

    report = await run_pull(store, PagedServer(by_type), flush_size=1)

    assert report.quarantined == 1
    with store.session(read_only=True) as s:
        (row,) = list_quarantine(s)
        assert "rejected" in row.reason


async def test_references_to_types_already_pulled_are_not_kept(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks refer back to their ServiceRequests, Encounters to their episode: none of that is kept."""
    sizes: dict[str, int] = {}
    take = _pull._Puller.take

    def spy(self: _pull._Puller, rtype: str, *args: Any, **kwargs: Any) -> None:
        take(self, rtype, *args, **kwargs)
        sizes[rtype] = len(self.referenced)
        assert all(target in self.to_pull for target, _ in self.referenced)

    monkeypatch.setattr(_pull._Puller, "take", spy)
    report = await run_pull(store, PagedServer(on_server(full_case()), per_page=50))

    assert (report.quarantined, report.unplaced) == (0, 0)
    assert sizes["CarePlan"] > 0  # what the CarePlan names is kept until it comes in...
    assert sizes["Encounter"] == 0  # ...and nothing is once every type is in


async def test_the_buffer_is_bounded_by_the_bytes_of_what_it_holds(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resources of one type differ in size from those of another: the buffer spills once the JSON
    it holds reaches ``flush_bytes``, however few resources that is."""
    held: list[tuple[int, int]] = []
    take = _pull._Puller.take

    def spy(self: _pull._Puller, rtype: str, *args: Any, **kwargs: Any) -> None:
        take(self, rtype, *args, **kwargs)
        held.append((self.held, self.held_bytes))

    monkeypatch.setattr(_pull._Puller, "take", spy)
    by_type = on_server(full_case())
    largest = max(len(orjson.dumps(r)) for resources in by_type.values() for r in resources)
    budget = 2 * largest
    report = await run_pull(store, PagedServer(by_type, per_page=1), flush_bytes=budget)

    assert report.new_cases == 1 and report.quarantined == 0
    # A page taken in past the budget spills the buffer: it never holds more than a page over it.
    assert all(size < budget + largest for _, size in held)
    assert max(count for count, _ in held) < len(held)  # it did spill, long before holding everything
