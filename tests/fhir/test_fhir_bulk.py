"""The Bulk Data client on a server faked with respx: the kick-off, polling (Retry-After, 429), the
manifest, streamed NDJSON (a huge file in constant memory, a file that is not NDJSON), credentials
only where the manifest asks for them, the per-server switches, failures with the server's reason,
and the job deleted at the end."""

from __future__ import annotations

import datetime as dt
import json
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from fhir_cm import decimals
from fhir_cm.fhir import (
    AsyncFhirClient,
    BearerAuth,
    BulkExportFailed,
    BulkRequest,
    BulkSettings,
    InvalidResponse,
    NotNdjson,
    bulk_export,
)

BASE = "https://ehr.example/fhir"
STATUS = "https://ehr.example/fhir/$export-poll-status?_jobId=7"
FILES = "https://files.example/export"


def manifest(*files: tuple[str, str], token: bool = False, errors: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    return {
        "transactionTime": "2026-12-01T10:00:00Z",
        "request": f"{BASE}/$export",
        "requiresAccessToken": token,
        "output": [{"type": t, "url": u} for t, u in files],
        "error": [{"type": t, "url": u} for t, u in errors],
    }


def ndjson(*resources: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in resources)


def patient(n: int) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": f"p{n}"}


class Clock:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def client(clock: Clock, **kwargs: Any) -> AsyncFhirClient:
    return AsyncFhirClient(BASE, enforce_capabilities=False, sleep=clock.sleep, **kwargs)


async def test_kick_off_poll_with_retry_after_then_the_manifest_files_and_the_delete() -> None:
    clock = Clock()
    polls = iter(
        [
            httpx.Response(202, headers={"Retry-After": "3", "X-Progress": "40%"}),
            httpx.Response(202, headers={"Retry-After": "600"}),  # more than we wait: capped
            httpx.Response(200, json=manifest(("Patient", f"{FILES}/1.ndjson"), ("Encounter", f"{FILES}/2.ndjson"))),
        ]
    )
    progress: list[str] = []
    with respx.mock() as mock:
        kick = mock.get(f"{BASE}/$export").mock(return_value=httpx.Response(202, headers={"Content-Location": STATUS}))
        mock.get(STATUS).mock(side_effect=lambda _: next(polls))
        deleted = mock.delete(STATUS).mock(return_value=httpx.Response(202))
        mock.get(f"{FILES}/1.ndjson").mock(return_value=httpx.Response(200, content=ndjson(patient(1), patient(2))))
        mock.get(f"{FILES}/2.ndjson").mock(
            return_value=httpx.Response(200, content=ndjson({"resourceType": "Encounter", "id": "e1"}))
        )
        async with client(clock) as fhir:
            request = BulkRequest(
                types=["Patient", "Encounter"], since="2026-11-01T00:00:00Z", type_filters=["Encounter?status=finished"]
            )
            async with bulk_export(
                fhir, request, on_progress=progress.append, settings=BulkSettings(max_retry_after=30)
            ) as export:
                got = [r["id"] async for r in export.resources()]
                assert export.transaction_time == "2026-12-01T10:00:00Z"
                assert not deleted.called
        query = parse_qs(kick.calls[0].request.url.query.decode())
        assert query["_type"] == ["Patient,Encounter"] and query["_since"] == ["2026-11-01T00:00:00Z"]
        assert query["_typeFilter"] == ["Encounter?status=finished"]
        assert kick.calls[0].request.headers["prefer"] == "respond-async"
        assert deleted.called
    assert got == ["p1", "p2", "e1"]
    assert clock.slept == [3.0, 30.0] and progress == ["40%", "in progress"]


async def test_a_429_while_polling_is_waited_out() -> None:
    clock = Clock()
    polls = iter([httpx.Response(429, headers={"Retry-After": "5"}), httpx.Response(200, json=manifest())])
    with respx.mock() as mock:
        mock.get(f"{BASE}/$export").mock(return_value=httpx.Response(202, headers={"Content-Location": STATUS}))
        mock.get(STATUS).mock(side_effect=lambda _: next(polls))
        mock.delete(STATUS).mock(return_value=httpx.Response(202))
        async with client(clock) as fhir, bulk_export(fhir, BulkRequest()) as export:
            assert [r async for r in export.resources()] == []
    assert clock.slept == [5.0]


async def test_a_failed_job_is_reported_with_the_servers_reason_and_the_job_is_still_deleted() -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "exception", "diagnostics": "export of Encounter failed: disk full"}],
    }
    with respx.mock() as mock:
        mock.get(f"{BASE}/$export").mock(return_value=httpx.Response(202, headers={"Content-Location": STATUS}))
        mock.get(STATUS).mock(return_value=httpx.Response(500, json=outcome))
        deleted = mock.delete(STATUS).mock(return_value=httpx.Response(202))
        async with client(Clock()) as fhir:
            with pytest.raises(BulkExportFailed, match="disk full"):
                async with bulk_export(fhir, BulkRequest()):
                    pass
        assert deleted.called


async def test_a_poll_that_failed_not_the_job_is_asked_again_and_the_job_kept() -> None:
    """The Bulk Data IG: a status request failing without the job failing answers an OperationOutcome with
    a transient issue code, and the client retries later. Such a poll (a server restarting behind its load
    balancer), or one that could not reach the server, ended the export and deleted the job, hours in."""
    busy = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "transient", "diagnostics": "status store restarting"}],
    }
    clock = Clock()
    polls = iter(
        [
            httpx.Response(503, json=busy, headers={"Retry-After": "7"}),
            httpx.ConnectError("connection refused"),
            httpx.Response(200, json=manifest(("Patient", f"{FILES}/1.ndjson"))),
        ]
    )

    def poll(_: httpx.Request) -> httpx.Response:
        answer = next(polls)
        if isinstance(answer, Exception):
            raise answer
        return answer

    with respx.mock() as mock:
        mock.get(f"{BASE}/$export").mock(return_value=httpx.Response(202, headers={"Content-Location": STATUS}))
        mock.get(STATUS).mock(side_effect=poll)
        deleted = mock.delete(STATUS).mock(return_value=httpx.Response(202))
        mock.get(f"{FILES}/1.ndjson").mock(return_value=httpx.Response(200, content=ndjson(patient(1))))
        async with client(clock) as fhir, bulk_export(fhir, BulkRequest()) as export:
            assert [r["id"] async for r in export.resources()] == ["p1"]
            assert not deleted.called
    assert clock.slept == [7.0, 1.0]  # the server's Retry-After, then the poll interval


async def test_polls_that_keep_failing_give_up_at_the_longest_wait_saying_why() -> None:
    busy = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    with respx.mock() as mock:
        mock.get(f"{BASE}/$export").mock(return_value=httpx.Response(202, headers={"Content-Location": STATUS}))
        mock.get(STATUS).mock(return_value=httpx.Response(504, json=busy))
        deleted = mock.delete(STATUS).mock(return_value=httpx.Response(202))
        clock = Clock()
        async with client(clock) as fhir:
            with pytest.raises(BulkExportFailed, match=r"did not finish within 5 s; its status, last asked: .*504"):
                async with bulk_export(fhir, BulkRequest(), settings=BulkSettings(max_wait=5.0)):
                    pass
        assert deleted.called
    assert clock.slept == [1.0] * 5


async def test_a_server_without_export_says_so_at_kick_off() -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-supported", "diagnostics": "Unknown operation $export"}],
    }
    with respx.mock() as mock:
        mock.get(f"{BASE}/Group/g1/$export").mock(return_value=httpx.Response(400, json=outcome))
        async with client(Clock()) as fhir:
            with pytest.raises(BulkExportFailed, match="did not start the export.*Unknown operation"):
                async with bulk_export(fhir, BulkRequest(level="group", group_id="g1")):
                    pass


async def test_a_file_that_is_not_ndjson_ends_the_read_and_is_not_taken_as_complete() -> None:
    with respx.mock() as mock:
        mock.get(f"{BASE}/Patient/$export").mock(return_value=httpx.Response(202, headers={"Content-Location": STATUS}))
        mock.get(STATUS).mock(return_value=httpx.Response(200, json=manifest(("Patient", f"{FILES}/p.ndjson"))))
        mock.delete(STATUS).mock(return_value=httpx.Response(202))
        mock.get(f"{FILES}/p.ndjson").mock(
            return_value=httpx.Response(
                200, content=ndjson(patient(1)) + b"<html>maintenance</html>\n" + ndjson(patient(2))
            )
        )
        got: list[str] = []
        async with client(Clock()) as fhir, bulk_export(fhir, BulkRequest(level="patient")) as export:
            with pytest.raises(NotNdjson, match="line 2 is not JSON; the export is incomplete"):
                async for r in export.resources():
                    got.append(r["id"])
    assert got == ["p1"]


async def test_numbers_of_a_file_are_read_as_written() -> None:
    # An integer past 64 bits (a decimal written without a point) and decimals a float prints otherwise.
    line = b'{"resourceType":"Patient","id":"p1","extension":[{"url":"http://x","valueDecimal":123456789012345678901234567890},{"url":"http://y","valueDecimal":1.50}]}\n'
    with respx.mock() as mock:
        mock.get(f"{BASE}/Patient/$export").mock(return_value=httpx.Response(202, headers={"Content-Location": STATUS}))
        mock.get(STATUS).mock(return_value=httpx.Response(200, json=manifest(("Patient", f"{FILES}/p.ndjson"))))
        mock.delete(STATUS).mock(return_value=httpx.Response(202))
        mock.get(f"{FILES}/p.ndjson").mock(return_value=httpx.Response(200, content=line))
        async with client(Clock()) as fhir, bulk_export(fhir, BulkRequest(level="patient")) as export:
            got = [decimals.dumps(r) async for r in export.resources()]
    assert got == [line.strip()]


def one_file_export(mock: respx.MockRouter, url: str, *, token: bool) -> respx.Route:
    """An export whose manifest names one Patient file at ``url``; the file's route."""
    mock.get(f"{BASE}/$export").mock(return_value=httpx.Response(202, headers={"Content-Location": STATUS}))
    mock.get(STATUS).mock(return_value=httpx.Response(200, json=manifest(("Patient", url), token=token)))
    mock.delete(STATUS).mock(return_value=httpx.Response(202))
    return mock.get(url).mock(return_value=httpx.Response(200, content=ndjson(patient(1))))


@pytest.mark.parametrize("token", [True, False])
async def test_credentials_go_to_the_files_only_when_the_manifest_requires_them(token: bool) -> None:
    with respx.mock() as mock:
        file = one_file_export(mock, f"{FILES}/p.ndjson", token=token)
        async with client(Clock(), auth=BearerAuth("t0ken")) as fhir, bulk_export(fhir, BulkRequest()) as export:
            assert [r async for r in export.resources()]
        sent = file.calls[0].request.headers.get("authorization")
    assert sent == ("Bearer t0ken" if token else None)


@pytest.mark.parametrize("said", ["false", "true", 0, None])
async def test_a_manifest_whose_requires_access_token_is_no_boolean_is_refused(said: Any) -> None:
    """``requiresAccessToken`` is a boolean (Bulk Data IG): read with ``bool()``, the string "false" sent
    the server's credentials to the file host the manifest named, which it had said needed none. Neither
    a guess that sends them nor one that withholds them: the manifest is malformed, the export fails
    saying so (the job is still deleted) and no file is fetched."""
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{BASE}/$export").mock(return_value=httpx.Response(202, headers={"Content-Location": STATUS}))
        bad = manifest(("Patient", f"{FILES}/p.ndjson")) | {"requiresAccessToken": said}
        mock.get(STATUS).mock(return_value=httpx.Response(200, json=bad))
        deleted = mock.delete(STATUS).mock(return_value=httpx.Response(202))
        file = mock.get(f"{FILES}/p.ndjson").mock(return_value=httpx.Response(200, content=ndjson(patient(1))))
        with pytest.raises(BulkExportFailed, match="requiresAccessToken"):
            async with client(Clock(), auth=BearerAuth("t0ken")) as fhir, bulk_export(fhir, BulkRequest()):
                pass
        assert deleted.called and not file.called


async def test_a_since_without_a_timezone_is_refused_before_any_request() -> None:
    """``_since`` is a FHIR instant, which has an offset: a naive datetime went out as
    ``2026-11-01T00:00:00``, which a server refuses or reads in its own zone (hours of changes missed or
    read twice). It is refused where the request is made; an aware one goes with its offset."""
    with pytest.raises(ValueError, match="timezone"):
        BulkRequest(since=dt.datetime(2026, 11, 1))
    with respx.mock() as mock:
        kick = mock.get(f"{BASE}/$export").mock(return_value=httpx.Response(202, headers={"Content-Location": STATUS}))
        mock.get(STATUS).mock(return_value=httpx.Response(200, json=manifest()))
        mock.delete(STATUS).mock(return_value=httpx.Response(202))
        aware = BulkRequest(since=dt.datetime(2026, 11, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))))
        async with client(Clock()) as fhir, bulk_export(fhir, aware):
            pass
        query = parse_qs(kick.calls[0].request.url.query.decode())
    assert query["_since"] == ["2026-11-01T09:30:00+02:00"]


async def test_post_kick_off_and_repeated_types_for_servers_that_want_them() -> None:
    with respx.mock() as mock:
        kick = mock.post(f"{BASE}/$export").mock(return_value=httpx.Response(202, headers={"Content-Location": STATUS}))
        mock.get(STATUS).mock(return_value=httpx.Response(200, json=manifest()))
        mock.delete(STATUS).mock(return_value=httpx.Response(202))
        async with (
            client(Clock()) as fhir,
            bulk_export(
                fhir,
                BulkRequest(types=["Patient", "Condition"]),
                settings=BulkSettings(kick_off="POST", join_types=False),
            ),
        ):
            pass
        body = json.loads(kick.calls[0].request.content)
    assert [(p["name"], p["valueString"]) for p in body["parameter"] if p["name"] == "_type"] == [
        ("_type", "Patient"),
        ("_type", "Condition"),
    ]


async def test_a_huge_file_is_streamed_in_constant_memory() -> None:
    """About 100 MB of NDJSON: the peak of memory allocated while reading stays a small fraction of it."""
    line = (
        json.dumps({"resourceType": "Observation", "id": "x", "status": "final", "code": {"text": "y" * 400}}).encode()
        + b"\n"
    )
    lines = 100 * 1024 * 1024 // len(line)

    async def body() -> AsyncIterator[bytes]:
        chunk = line * 200
        for _ in range(lines // 200):
            yield chunk

    with respx.mock() as mock:
        mock.get(f"{BASE}/$export").mock(return_value=httpx.Response(202, headers={"Content-Location": STATUS}))
        mock.get(STATUS).mock(return_value=httpx.Response(200, json=manifest(("Observation", f"{FILES}/big.ndjson"))))
        mock.delete(STATUS).mock(return_value=httpx.Response(202))
        mock.get(f"{FILES}/big.ndjson").mock(side_effect=lambda _: httpx.Response(200, stream=body()))
        count = 0
        async with client(Clock()) as fhir, bulk_export(fhir, BulkRequest()) as export:
            tracemalloc.start()
            async for _ in export.resources():
                count += 1
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    assert count == (lines // 200) * 200
    assert peak < 5 * 1024 * 1024  # < 5 MB while reading a ~100 MB file


async def test_a_server_without_export_is_read_by_paged_searches_instead() -> None:
    from fhir_cm.fhir import PagedPopulation, read_population

    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-supported", "diagnostics": "Invalid request: unknown operation"}],
    }
    page = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": patient(1)}, {"resource": patient(2)}],
    }
    with respx.mock() as mock:
        mock.get(f"{BASE}/$export").mock(return_value=httpx.Response(404, json=outcome))
        search = mock.get(f"{BASE}/Patient").mock(return_value=httpx.Response(200, json=page))
        async with (
            client(Clock()) as fhir,
            read_population(fhir, BulkRequest(types=["Patient"], since="2026-11-01T00:00:00Z")) as population,
        ):
            assert isinstance(population, PagedPopulation)
            got = [r["id"] async for r in population.resources()]
        # From a minute before `since` (the default overlap): what was committed around it is not missed.
        assert parse_qs(search.calls[0].request.url.query.decode())["_lastUpdated"] == [
            "gt2026-10-31T23:59:00.000+00:00"
        ]
    assert got == ["p1", "p2"] and population.transaction_time


async def test_a_file_redirected_to_storage_is_read_there_without_the_servers_credentials() -> None:
    # Cloud servers answer a file's URL with a redirect to a signed storage URL: before, the empty
    # 302 was read as an empty file and the export taken as complete, short of every resource in it.
    signed = "https://storage.example/bucket/p.ndjson?sig=abc"
    with respx.mock() as mock:
        mock.get(f"{BASE}/$export").mock(return_value=httpx.Response(202, headers={"Content-Location": STATUS}))
        mock.get(STATUS).mock(
            return_value=httpx.Response(200, json=manifest(("Patient", f"{FILES}/p.ndjson"), token=True))
        )
        mock.delete(STATUS).mock(return_value=httpx.Response(202))
        file = mock.get(f"{FILES}/p.ndjson").mock(return_value=httpx.Response(302, headers={"Location": signed}))
        stored = mock.get(signed).mock(return_value=httpx.Response(200, content=ndjson(patient(1), patient(2))))
        async with client(Clock(), auth=BearerAuth("t0ken")) as fhir, bulk_export(fhir, BulkRequest()) as export:
            got = [r["id"] async for r in export.resources()]
        assert file.calls[0].request.headers.get("authorization") == "Bearer t0ken"
        assert stored.calls[0].request.headers.get("authorization") is None  # another origin: no token
    assert got == ["p1", "p2"]


async def test_a_file_redirected_nowhere_is_an_error_not_an_empty_file() -> None:
    with respx.mock() as mock:
        mock.get(f"{BASE}/$export").mock(return_value=httpx.Response(202, headers={"Content-Location": STATUS}))
        mock.get(STATUS).mock(return_value=httpx.Response(200, json=manifest(("Patient", f"{FILES}/p.ndjson"))))
        mock.delete(STATUS).mock(return_value=httpx.Response(202))
        mock.get(f"{FILES}/p.ndjson").mock(return_value=httpx.Response(302))
        async with client(Clock()) as fhir, bulk_export(fhir, BulkRequest()) as export:
            with pytest.raises(InvalidResponse, match="302 a redirect"):
                [r async for r in export.resources()]


INNER = "http://hapi-internal:8080/fhir"


async def test_a_status_url_in_clear_on_another_machine_gets_no_credentials() -> None:
    # A server behind a TLS proxy names its job by its inner http address: the token went there in clear.
    inner_status = f"{INNER}/$export-poll-status?_jobId=7"
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{BASE}/$export").mock(return_value=httpx.Response(202, headers={"Content-Location": inner_status}))
        poll = mock.get(inner_status).mock(return_value=httpx.Response(200, json=manifest()))
        delete = mock.delete(inner_status).mock(return_value=httpx.Response(202))
        async with client(Clock(), auth=BearerAuth("t0ken")) as fhir:
            with pytest.raises(InvalidResponse, match="http://hapi-internal:8080: the server names a URL in clear"):
                async with bulk_export(fhir, BulkRequest()):
                    pass
    assert not poll.called and not delete.called


async def test_a_file_in_clear_on_another_machine_gets_no_credentials_when_they_are_required() -> None:
    with respx.mock(assert_all_called=False) as mock:
        file = one_file_export(mock, f"{INNER}/files/p.ndjson", token=True)
        async with client(Clock(), auth=BearerAuth("t0ken")) as fhir, bulk_export(fhir, BulkRequest()) as export:
            with pytest.raises(InvalidResponse, match="credentials are not sent there"):
                _ = [r async for r in export.resources()]
    assert not file.called


async def test_an_operator_vouching_for_the_network_has_the_credentials_go_over_http() -> None:
    inner_status = f"{INNER}/$export-poll-status?_jobId=7"
    with respx.mock() as mock:
        mock.get(f"{BASE}/$export").mock(return_value=httpx.Response(202, headers={"Content-Location": inner_status}))
        poll = mock.get(inner_status).mock(return_value=httpx.Response(200, json=manifest()))
        mock.delete(inner_status).mock(return_value=httpx.Response(202))
        async with (
            client(Clock(), auth=BearerAuth("t0ken"), allow_http_credentials=True) as fhir,
            bulk_export(fhir, BulkRequest()) as export,
        ):
            assert [r async for r in export.resources()] == []
    assert poll.calls[0].request.headers["Authorization"] == "Bearer t0ken"
