"""The next type's search starts while the pull takes the type before in, a few pages deep at most,
and its failure is met where the pull comes to that type (``sync._ahead``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from fhir_cm.fhir import FhirError
from fhir_cm.store import Store, content_hash, get_case, get_resources, get_watermark, open_store
from fhir_cm.sync import _pull
from fhir_cm.sync._ahead import READ_AHEAD_PAGES
from fhir_cm.synthetic import generate_cases
from tests.sync.test_pull import BASE, PagedServer, on_server, run_pull


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


class LoggingServer(PagedServer):
    """A PagedServer that notes each search page asked for, in one log with the pull's own events."""

    def __init__(self, by_type: dict[str, list[dict[str, Any]]], log: list[tuple[str, ...]], **kw: Any) -> None:
        super().__init__(by_type, **kw)
        self.log = log

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix(urlsplit(BASE).path).strip("/")
        if path != "metadata":
            self.log.append(("get", path, parse_qs(request.url.query.decode()).get("page", ["0"])[0]))
        return super().__call__(request)


def resources_of(n: int) -> dict[str, list[dict[str, Any]]]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for case in generate_cases(n, seed=11):
        for rtype, items in on_server(case).items():
            by_type.setdefault(rtype, []).extend(items)
    return by_type


def spy_on_take(monkeypatch: pytest.MonkeyPatch, log: list[tuple[str, ...]]) -> None:
    take = _pull._Puller.take

    def spy(self: _pull._Puller, rtype: str, *args: Any, **kwargs: Any) -> None:
        log.append(("take", rtype))
        take(self, rtype, *args, **kwargs)

    monkeypatch.setattr(_pull._Puller, "take", spy)


async def test_the_next_types_search_starts_before_the_type_before_is_taken_in(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    log: list[tuple[str, ...]] = []
    spy_on_take(monkeypatch, log)
    cases = list(generate_cases(3, seed=11))
    report = await run_pull(store, LoggingServer(resources_of(3), log))
    assert report.quarantined == report.unplaced == 0
    first_plan_page = log.index(("get", "CarePlan", "0"))
    first_episode_taken = log.index(("take", "EpisodeOfCare"))
    assert first_plan_page < first_episode_taken  # without reading ahead: only after every episode
    with store.session(read_only=True) as s:
        assert [get_case(s, c.id) for c in cases] == cases
        stored = [r for c in cases for r in get_resources(s, c.id)]
    assert stored and all(r.content_hash == content_hash(r.raw) for r in stored)


async def test_reading_ahead_holds_a_few_pages_only(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[tuple[str, ...]] = []
    read_ahead = threading.Event()  # the server has answered as many CarePlan pages as are read ahead
    seen_while_busy: list[int] = []  # CarePlan pages asked for, at each episode page taken in
    take = _pull._Puller.take

    class Server(LoggingServer):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            answer = super().__call__(request)
            if sum(1 for e in log if e[:2] == ("get", "CarePlan")) >= READ_AHEAD_PAGES:
                read_ahead.set()
            return answer

    def watched_take(self: _pull._Puller, rtype: str, *args: Any, **kwargs: Any) -> None:
        if rtype == "EpisodeOfCare":
            assert read_ahead.wait(timeout=10)  # the CarePlan search runs while episodes come in
            seen_while_busy.append(sum(1 for e in log if e[:2] == ("get", "CarePlan")))
        take(self, rtype, *args, **kwargs)

    monkeypatch.setattr(_pull._Puller, "take", watched_take)
    by_type = resources_of(12)
    assert len(by_type["CarePlan"]) == len(by_type["EpisodeOfCare"]) == 12  # twelve pages of one each
    report = await run_pull(store, Server(by_type, log))
    assert report.quarantined == report.unplaced == 0
    # Over twelve episode pages the loop had every chance to read on; it stopped at the pages read
    # ahead and the one the search asked for next.
    assert len(seen_while_busy) == 12 and max(seen_while_busy) <= READ_AHEAD_PAGES + 1
    assert sum(1 for e in log if e[:2] == ("get", "CarePlan")) == 12  # then the rest, each page once


async def test_a_failure_of_a_search_read_ahead_is_met_when_the_pull_comes_to_its_type(store: Store) -> None:
    log: list[tuple[str, ...]] = []
    server = LoggingServer(resources_of(2), log, refuse=("CarePlan", 0))  # 401 on CarePlan's first page
    with pytest.raises(FhirError):
        await run_pull(store, server)
    with store.session(read_only=True) as s:
        # The episodes were all taken in and their type finished, though CarePlan's search had failed
        # (read ahead) while they were still coming in.
        assert get_watermark(s, BASE, "EpisodeOfCare") == "2024-05-01T10:00:00Z"
        assert get_watermark(s, BASE, "CarePlan") is None


async def test_once_the_pull_reads_a_type_one_page_at_most_waits_ahead_of_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    log: list[tuple[str, ...]] = []
    ahead: list[int] = []  # at each CarePlan page taken in: CarePlan pages asked for, beyond those taken
    take = _pull._Puller.take

    def slow_take(self: _pull._Puller, rtype: str, *args: Any, **kwargs: Any) -> None:
        if rtype == "CarePlan":
            time.sleep(0.05)  # slower than this server: pages would pile up ahead of the pull
            log.append(("take", rtype))
            taken = sum(1 for e in log if e == ("take", "CarePlan"))
            ahead.append(sum(1 for e in log if e[:2] == ("get", "CarePlan")) - taken)
        take(self, rtype, *args, **kwargs)

    monkeypatch.setattr(_pull._Puller, "take", slow_take)
    report = await run_pull(store, LoggingServer(resources_of(12), log))
    assert report.quarantined == report.unplaced == 0
    # The page the pull holds while the next comes (it works on a page once the next is in), one
    # waiting here, and the one the search asked for next: three, however slowly the pull goes.
    assert len(ahead) == 12 and max(ahead) <= 3
