"""The facade's small parsers on their own: FHIR dates, tokens, escapes, version negotiation."""

from __future__ import annotations

import datetime as dt

import pytest

from fhir_cm.api.facade._errors import InvalidSearch, NotAcceptable, UnsupportedParameter
from fhir_cm.api.facade._indexed import indexed
from fhir_cm.api.facade._match import ANY, TokenMatch, extract, parse_instant, parse_matcher, split_or
from fhir_cm.api.facade._negotiation import negotiate_version
from fhir_cm.api.facade._params import parse_search
from fhir_cm.mapping import ResourceKey

UTC = dt.UTC


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2025", at(2025, 1, 1), at(2026, 1, 1)),
        ("2025-02", at(2025, 2, 1), at(2025, 3, 1)),
        ("2025-12", at(2025, 12, 1), at(2026, 1, 1)),
        ("2024-02-29", at(2024, 2, 29), at(2024, 3, 1)),
        ("2025-03-04T10:15", at(2025, 3, 4, 10, 15), at(2025, 3, 4, 10, 16)),
        ("2025-03-04T10:15:30Z", at(2025, 3, 4, 10, 15, 30), at(2025, 3, 4, 10, 15, 31)),
        ("2025-03-04T10:15:30.5Z", at(2025, 3, 4, 10, 15, 30, 500000), at(2025, 3, 4, 10, 15, 30, 600000)),
        ("2025-03-04T10:15:30+02:00", at(2025, 3, 4, 8, 15, 30), at(2025, 3, 4, 8, 15, 31)),
        ("2025-03-04T10:15:30 02:00", at(2025, 3, 4, 8, 15, 30), at(2025, 3, 4, 8, 15, 31)),  # '+' decoded as ' '
        ("2025-03-04T10:15:30-05:00", at(2025, 3, 4, 15, 15, 30), at(2025, 3, 4, 15, 15, 31)),
        ("2025-03-04T10:15:30", at(2025, 3, 4, 10, 15, 30), at(2025, 3, 4, 10, 15, 31)),  # no zone: UTC
    ],
)
def test_a_date_is_the_period_its_precision_names(text: str, start: dt.datetime, end: dt.datetime) -> None:
    assert parse_instant(text) == (start, end)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "25",
        "2025-2",
        "2025-02-30",
        "2025-01-01T",
        "2025-01-01T10",
        "yesterday",
        "0001-01-01T00:00+01:00",
        "2025-01-01T10:00:00+25:00",
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_what_is_not_a_date_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_instant(text)


def test_date_prefixes_compare_against_the_period() -> None:
    inside, after, before = at(2025, 3, 4, 12), at(2025, 3, 5), at(2025, 3, 3, 23, 59)
    expected = {
        "eq": (True, False, False),
        "ne": (False, True, True),
        "gt": (False, True, False),
        "ge": (True, True, False),
        "lt": (False, False, True),
        "le": (True, False, True),
        "sa": (False, True, False),
        "eb": (False, False, True),
    }
    instant = dt.timedelta(microseconds=1)
    for prefix, wanted in expected.items():
        matcher = parse_matcher("date", f"{prefix}2025-03-04")
        assert tuple(matcher.matches(((t, t + instant),)) for t in (inside, after, before)) == wanted, prefix
    # The day 2025-03-04 against a time within it: partly after it, partly before, not within it.
    day = ((at(2025, 3, 4), at(2025, 3, 5)),)
    at_ten = {p: parse_matcher("date", f"{p}2025-03-04T10:00:00Z").matches(day) for p in expected}
    assert at_ten == {"eq": False, "ne": True, "gt": True, "ge": True, "lt": True, "le": True, "sa": False, "eb": False}
    with pytest.raises(UnsupportedParameter):
        parse_matcher("date", "ap2025-03-04")
    with pytest.raises(InvalidSearch):
        parse_matcher("date", "xx2025")


def test_tokens_and_their_escapes() -> None:
    assert parse_matcher("token", "active") == TokenMatch(ANY, "active")
    assert parse_matcher("token", "http://s|c") == TokenMatch("http://s", "c")
    assert parse_matcher("token", "|c") == TokenMatch(None, "c")
    assert parse_matcher("token", "http://s|") == TokenMatch("http://s", ANY)
    assert parse_matcher("token", r"a\|b") == TokenMatch(ANY, "a|b")
    assert split_or(r"a,b\,c,,d") == ["a", r"b\,c", "d"]
    assert split_or(r"a\\,b") == [r"a\\", "b"]  # an escaped backslash, then a comma that separates
    assert parse_matcher("token", r"a\\") == TokenMatch(ANY, "a\\")
    assert parse_matcher("token", r"b\,c") == TokenMatch(ANY, "b,c")
    with pytest.raises(InvalidSearch):
        parse_matcher("token", "|")


def test_token_values_are_read_from_codes_codings_concepts_references_and_identifiers() -> None:
    resource = {
        "status": "active",
        "code": {"concept": {"coding": [{"system": "s", "code": "r5"}]}},
        "category": [{"coding": [{"system": "s", "code": "a"}, {"code": "b"}]}, {"text": "no codes"}],
        "identifier": [{"system": "ids", "value": "1"}, {"value": "2"}],
        "class": {"system": "v3", "code": "IMP"},
    }
    assert extract("token", resource, "status") == ((None, "active"),)
    assert extract("token", resource, "code") == (("s", "r5"),)
    assert extract("token", resource, "category") == (("s", "a"), (None, "b"))
    assert extract("token", resource, "identifier") == (("ids", "1"), (None, "2"))
    assert extract("token", resource, "class") == (("v3", "IMP"),)
    assert extract("token", resource, "missing.path") == ()


def test_search_requests_follow_the_fhir_rules() -> None:
    request = parse_search(
        "Goal",
        [
            ("status", "active,completed"),
            ("status", "active"),
            ("patient", ""),
            ("_count", "5"),
            ("_offset", "10"),
            ("colour", "red"),
            ("_format", "json"),
        ],
        strict=False,
    )
    assert [len(c.alternatives) for c in request.criteria] == [2, 1]
    assert (request.count, request.offset, request.ignored) == (5, 10, ["colour"])
    assert request.link_params == [("status", "active,completed"), ("status", "active"), ("_format", "json")]
    with pytest.raises(UnsupportedParameter):
        parse_search("Goal", [("colour", "red")], strict=True)
    with pytest.raises(UnsupportedParameter):
        parse_search("Goal", [("status:missing", "true")])
    assert parse_search("Goal", [("_count", "999")], max_count=50).count == 50


@pytest.mark.parametrize(
    ("fhir_version", "format_", "accept", "expected"),
    [
        ([], [], None, "R4"),
        (["5.0"], [], "application/fhir+json; fhirVersion=4.0", "R5"),  # the query parameter wins
        (["4.0.1"], [], None, "R4"),
        (["R5"], [], None, "R5"),
        ([], ["json"], "application/fhir+json; fhirVersion=5.0", "R5"),  # _format sets the type, Accept the version
        ([], ["application/fhir+json;fhirVersion=5.0"], "application/fhir+json; fhirVersion=4.0", "R5"),
        ([], ["json"], "application/fhir+xml", "R4"),
        ([], ["application/fhir json; fhirVersion=5.0"], None, "R5"),  # '+' decoded as ' '
        ([], [], "text/html, application/xhtml+xml, */*;q=0.8", "R4"),
        ([], [], "application/fhir+json;q=0, application/json; fhirVersion=5.0", "R5"),
    ],
)
def test_version_negotiation(fhir_version: list[str], format_: list[str], accept: str | None, expected: str) -> None:
    assert negotiate_version(fhir_version, format_, accept) == expected


@pytest.mark.parametrize(
    ("fhir_version", "format_", "accept"),
    [
        (["3.0"], [], None),
        ([], ["xml"], None),
        ([], ["turtle"], None),
        ([], [], "application/fhir+xml"),
        ([], [], "application/fhir+json; fhirVersion=1.0"),
        ([], [], "text/html"),
    ],
)
def test_versions_and_formats_not_served_are_not_acceptable(
    fhir_version: list[str], format_: list[str], accept: str | None
) -> None:
    with pytest.raises(NotAcceptable):
        negotiate_version(fhir_version, format_, accept)


def test_patient_means_a_patient_while_subject_may_be_anything() -> None:
    goal = {
        "resourceType": "Goal",
        "identifier": [{"system": "urn:test", "value": "g"}],
        "lifecycleStatus": "active",
        "description": {"text": "d"},
        "subject": {"reference": "Group/g1"},
    }
    served = indexed(ResourceKey("Goal", "g"), "g", "case-1", goal, dt.datetime(2025, 1, 1, tzinfo=UTC))
    assert served.values["subject"] == (("Group", "g1", None),)
    assert served.values["patient"] == ()
    assert not served.matches(parse_search("Goal", [("patient", "g1")]).criteria)
    assert served.matches(parse_search("Goal", [("subject", "g1")]).criteria)
    assert served.matches(parse_search("Goal", [("subject", "Group/g1")]).criteria)
    assert not served.matches(parse_search("Goal", [("subject", "Patient/g1")]).criteria)
