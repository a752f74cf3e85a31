"""The blocking facade and ``fhir-cm capabilities``."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.fhir import FhirClient, ResourceNotFound

from .conftest import BASE, Hapi

GETPAGES = "3f2a7c1e-8b4d-4e9a-a1c2-5d6e7f809a1b"


def mock_pages(router: respx.MockRouter, hapi: Hapi) -> list[respx.Route]:
    return [
        router.get(f"{BASE}/CarePlan").mock(return_value=hapi.response("search-careplan-getpages-page1")),
        router.get(BASE, params={"_getpagesoffset": "2"}).mock(
            return_value=hapi.response("search-careplan-getpages-page2")
        ),
        router.get(BASE, params={"_getpagesoffset": "4"}).mock(
            return_value=hapi.response("search-careplan-getpages-page3")
        ),
    ]


def test_the_blocking_client_iterates_pages(router: respx.MockRouter, hapi: Hapi) -> None:
    mock_pages(router, hapi)

    with FhirClient(BASE) as fhir:
        ids = [cp["id"] for cp in fhir.search("CarePlan").count(2)]
        pages = list(fhir.search("CarePlan").pages())

    assert ids == ["1924561", "1924562", "1924563", "1924564", "1924565"]
    assert [p.number for p in pages] == [1, 2, 3]


def test_leaving_a_blocking_iteration_early_stops_fetching(router: respx.MockRouter, hapi: Hapi) -> None:
    routes = mock_pages(router, hapi)

    with FhirClient(BASE) as fhir:
        for cp in fhir.search("CarePlan"):
            assert cp["id"] == "1924561"
            break
        assert fhir.search("CarePlan").first() is not None

    assert [r.call_count for r in routes] == [2, 0, 0]


def test_the_blocking_client_raises_the_same_errors(router: respx.MockRouter, hapi: Hapi) -> None:
    router.get(f"{BASE}/CarePlan/1924599").mock(return_value=hapi.response("read-careplan-404-hapi-2001"))

    with FhirClient(BASE) as fhir, pytest.raises(ResourceNotFound):
        fhir.read("CarePlan", "1924599")


def test_capabilities_json(router: respx.MockRouter, hapi: Hapi) -> None:
    router.get(f"{BASE}/metadata").mock(return_value=hapi.response("metadata-r4"))

    result = CliRunner().invoke(app, ["capabilities", "--fhir-base", BASE, "--json"])

    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    assert (view["fhir_version"], view["release"], view["software"]) == ("4.0.1", "R4", "HAPI FHIR Server")
    assert view["transaction"] is True and view["batch"] is True
    careplan = next(row for row in view["types"] if row["type"] == "CarePlan")
    assert "patient" in careplan["search_params"] and "create" in careplan["interactions"]


def test_capabilities_table(router: respx.MockRouter, hapi: Hapi) -> None:
    router.get("https://hapi.fhir.org/baseR5/metadata").mock(return_value=hapi.response("metadata-r5"))

    result = CliRunner().invoke(app, ["capabilities", "--fhir-base", "https://hapi.fhir.org/baseR5"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "FHIR 5.0.0 (R5) — HAPI FHIR Server 7.4.0"
    assert "Goal            not declared" in lines
    assert any(line.startswith("CarePlan ") and "search-type" in line for line in lines)


def test_capabilities_failure_is_one_line_without_traceback(router: respx.MockRouter, hapi: Hapi) -> None:
    router.get(f"{BASE}/metadata").mock(return_value=hapi.response("read-careplan-404-hapi-2001"))

    result = CliRunner().invoke(app, ["capabilities", "--fhir-base", BASE])

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(
        "fhir-cm: error: GET metadata → 404 ResourceNotFound"
    )
    assert "Traceback" not in result.output


def test_capabilities_without_a_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FHIR_CM_FHIR_BASE", raising=False)

    result = CliRunner().invoke(app, ["capabilities"])

    assert result.exit_code == 2  # a usage error, as for push, pull and identify
    assert "FHIR_CM_FHIR_BASE" in result.stderr


@pytest.mark.parametrize(
    ("base", "says"),
    [
        ("http://127.0.0.1:abc/fhir", "absolute http(s) URL"),  # no port
        ("http://127.0.0.1:99999/fhir", "absolute http(s) URL"),  # no such port
        ("http://[::1/fhir", "absolute http(s) URL"),
        ("ftp://user:S3cretPW@127.0.0.1/fhir", "ftp://user:***@127.0.0.1/fhir"),  # the password not shown
    ],
)
def test_a_base_that_is_no_http_url_is_one_line_and_the_command_ends(base: str, says: str) -> None:
    result = CliRunner().invoke(app, ["capabilities", "--fhir-base", base])

    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and says in result.stderr
    assert "Traceback" not in result.output and "S3cretPW" not in result.output


@pytest.mark.parametrize("statement", [[1, 2, 3], {"resourceType": "CapabilityStatement", "rest": [1]}])
def test_a_metadata_answer_that_is_no_capability_statement_is_one_line(
    router: respx.MockRouter, statement: object
) -> None:
    router.get(f"{BASE}/metadata").mock(return_value=httpx.Response(200, json=statement))

    result = CliRunner().invoke(app, ["capabilities", "--fhir-base", BASE])

    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("fhir-cm: error: /metadata ") and "CapabilityStatement" in result.stderr


def test_capabilities_table_says_where_if_match_is_not_promised(router: respx.MockRouter, hapi: Hapi) -> None:
    statement = hapi.json("metadata-r4")
    for resource in statement["rest"][0]["resource"]:
        if resource["type"] == "Goal":
            resource["versioning"] = "versioned"
        if resource["type"] == "Task":
            del resource["versioning"]
    router.get(f"{BASE}/metadata").respond(200, json=statement)

    result = CliRunner().invoke(app, ["capabilities", "--fhir-base", BASE])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    said = [lines[n - 2].split()[0] for n, line in enumerate(lines) if "If-Match may be ignored" in line]
    assert said == ["Goal", "Task"]  # HAPI declares versioned-update for every other type
    assert any("versioning: versioned: If-Match may be ignored; push re-reads" in line for line in lines)
    assert any("versioning: (not declared): If-Match may be ignored" in line for line in lines)


def test_capabilities_table_says_batches_are_sent_where_only_transactions_are_listed(
    router: respx.MockRouter, hapi: Hapi
) -> None:
    """HAPI 8's statement lists ``transaction`` alone; the client sends it batches all the same, and
    "batch: no" told the reader the opposite of what happens."""
    statement = hapi.json("metadata-r4")
    statement["rest"][0]["interaction"] = [{"code": "transaction"}, {"code": "history-system"}]
    router.get(f"{BASE}/metadata").respond(200, json=statement)

    result = CliRunner().invoke(app, ["capabilities", "--fhir-base", BASE])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].startswith(
        "transaction: yes    batch: not listed (sent, as transactions are)"
    ), result.stdout
