"""The search parameters the facade supports per resource type, and reading a search request.

The table is data: a parameter is a name, a kind (token, reference, date) and the element path it
searches, the same in R4 and R5 for everything the facade serves (an R5 CodeableReference is read
through its concept). Names are FHIR's; where a type calls a concept by another name, the generic
name the case-management API uses is accepted too and says so in its documentation (``status`` on
Goal is ``lifecycle-status``, on Condition ``clinical-status``; ``subject`` on EpisodeOfCare is
``patient``), so a consumer can ask every type ``?patient=…&status=…``.

Reading a request (:func:`parse_search`) follows the FHIR rules: repeated parameters AND,
comma-separated values OR, empty values are ignored, a reference parameter takes the type it
refers to as a modifier (``subject:Patient=123``), a modifier the facade does not support is
an error (ignoring it would return the opposite of what was asked), and a parameter it does not
know is refused, as HAPI does — or, with ``Prefer: handling=lenient``, ignored and reported.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from ._errors import InvalidSearch, UnsupportedParameter
from ._match import Kind, Matcher, RefMatch, parse_matcher, split_or
from ._summary import SUMMARY_MODES, Summary

__all__ = [
    "CONTROL_PARAMS",
    "DEFAULT_COUNT",
    "MAX_COUNT",
    "RESOURCE_TYPES",
    "Criterion",
    "SearchParam",
    "SearchRequest",
    "EMPTY_REVINCLUDES",
    "includes_for",
    "params_for",
    "parse_read",
    "parse_search",
    "revincludes_for",
]

DEFAULT_COUNT = 20
MAX_COUNT = 200


@dataclass(frozen=True, slots=True)
class SearchParam:
    """One search parameter of one resource type."""

    name: str
    kind: Kind
    path: str
    documentation: str
    #: Reference parameters: the only type matched, and the type a bare id means (``patient`` → Patient).
    target: str | None = None
    #: The canonical SearchParameter, where it is the base one for every type.
    definition: str | None = None


def _patient(path: str) -> list[SearchParam]:
    return [
        SearchParam("patient", "reference", path, f"The patient ({path}); id, Patient/id or URL.", target="Patient"),
        SearchParam("subject", "reference", path, f"Who it is about ({path}); Type/id, id or URL."),
    ]


def _token(name: str, path: str, documentation: str) -> SearchParam:
    return SearchParam(name, "token", path, documentation)


_STATUS = _token("status", "status", "The status code.")
_CATEGORY = _token("category", "category", "A category: code, system|code, |code or system|.")

_COMMON = [
    SearchParam(
        "_id",
        "token",
        "id",
        "The logical id (the business identifier value, see the facade's docs).",
        definition="http://hl7.org/fhir/SearchParameter/Resource-id",
    ),
    SearchParam(
        "_lastUpdated",
        "date",
        "meta.lastUpdated",
        "When the resource last changed here (prefixes eq, ne, gt, ge, lt, le, sa, eb).",
        definition="http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
    ),
    _token("identifier", "identifier", "A business identifier: value, system|value or |value."),
]

_BY_TYPE: dict[str, list[SearchParam]] = {
    "EpisodeOfCare": [
        SearchParam("patient", "reference", "patient", "The patient; id, Patient/id or URL.", target="Patient"),
        SearchParam("subject", "reference", "patient", "fhir-cm alias of patient (EpisodeOfCare.patient)."),
        _STATUS,
        _token("type", "type", "The programme type: code, system|code."),
        SearchParam(
            "care-manager",
            "reference",
            "careManager",
            "The case manager; id, Practitioner/id, or by URL (another server's: exactly that URL).",
            target="Practitioner",
        ),
    ],
    "CarePlan": [
        *_patient("subject"),
        _STATUS,
        _CATEGORY,
        SearchParam("goal", "reference", "goal", "A goal of the plan; id or Goal/id.", target="Goal"),
        SearchParam("date", "date", "period", "The days the plan covers (its period; open while it has no end)."),
        SearchParam("care-team", "reference", "careTeam", "The plan's care team.", target="CareTeam"),
    ],
    "CareTeam": [
        *_patient("subject"),
        _STATUS,
        _CATEGORY,
        SearchParam(
            "participant",
            "reference",
            "participant.member",
            "A member of the team; Type/id, or by URL (another server's: exactly that URL).",
        ),
        _token("role", "participant.role", "The role of a member of the team (SNOMED CT, or fhir-cm's team-role)."),
    ],
    "Condition": [
        *_patient("subject"),
        _token("clinical-status", "clinicalStatus", "The clinical status code."),
        _token("status", "clinicalStatus", "fhir-cm alias of clinical-status."),
        _CATEGORY,
        _token("code", "code", "The code of the need found."),
    ],
    "Encounter": [
        *_patient("subject"),
        _STATUS,
        SearchParam(
            "episode-of-care", "reference", "episodeOfCare", "The case (EpisodeOfCare).", target="EpisodeOfCare"
        ),
        SearchParam(
            "date", "date", "period|actualPeriod", "The days of the stay (its period; open while it is under way)."
        ),
        _token("class", "class", "The encounter class (v3-ActCode)."),
        _token("type", "type", "The care setting: code, system|code."),
        _token(
            "discharge-disposition",
            "hospitalization.dischargeDisposition|admission.dischargeDisposition",
            "Where the person went when the stay ended: code, system|code.",
        ),
        SearchParam(
            "service-provider",
            "reference",
            "serviceProvider",
            "The organisation providing the stay; id, Organization/id, or by URL (another server's: exactly that URL).",
            target="Organization",
        ),
        SearchParam(
            "location",
            "reference",
            "location.location",
            "A location of the stay, where the record names one; id or Location/id.",
            target="Location",
        ),
    ],
    "Goal": [
        *_patient("subject"),
        _token("lifecycle-status", "lifecycleStatus", "The goal's lifecycle status."),
        SearchParam("target-date", "date", "target.dueDate", "When the goal is due."),
        _token("status", "lifecycleStatus", "fhir-cm alias of lifecycle-status."),
        _CATEGORY,
        _token("description", "description", "The code of what the goal is (its description's codings)."),
    ],
    "ServiceRequest": [
        *_patient("subject"),
        _STATUS,
        _CATEGORY,
        _token("code", "code", "What is requested."),
        SearchParam("authored", "date", "authoredOn", "When the referral was made."),
        SearchParam(
            "performer",
            "reference",
            "performer",
            "Who is asked to perform it; Type/id, or by URL (another server's: exactly that URL).",
        ),
        SearchParam(
            "requester",
            "reference",
            "requester",
            "Who asked for it (the case manager unless another is named); Type/id, or by URL.",
        ),
    ],
    "Task": [
        *_patient("for"),
        _STATUS,
        _token("code", "code", "The task code (fulfill)."),
        SearchParam("focus", "reference", "focus", "The referral the task fulfils.", target="ServiceRequest"),
    ],
    "Communication": [*_patient("subject"), _STATUS, _CATEGORY],
}

#: The resource types the facade serves, in the order the CapabilityStatement lists them.
RESOURCE_TYPES: tuple[str, ...] = tuple(_BY_TYPE)

_PARAMS: dict[str, dict[str, SearchParam]] = {
    rtype: {p.name: p for p in [*_COMMON, *params]} for rtype, params in _BY_TYPE.items()
}

#: Parameters that shape the answer rather than select resources; ``_total`` (and Aidbox's
#: ``_totalMethod``, which fhirpy sends) is always ``accurate``; ``_pretty`` has no effect (the facade
#: writes compact JSON).
CONTROL_PARAMS = frozenset(
    {"_count", "_offset", "_format", "_fhirVersion", "_total", "_totalMethod", "_pretty"}
    | {"_summary", "_sort", "_elements", "_include", "_revinclude"}
)
#: ``_revinclude`` targets the facade accepts and answers with nothing: it holds no Provenance (the
#: push writes those to the FHIR server, where a client asks for them), and says so in a warning.
EMPTY_REVINCLUDES = frozenset({"Provenance:target"})
_ELEMENT = re.compile(r"^[a-z][A-Za-z0-9]*$")


def params_for(resource_type: str) -> dict[str, SearchParam]:
    """The search parameters of a served type, by name (KeyError for a type the facade does not serve)."""
    return _PARAMS[resource_type]


@dataclass(frozen=True, slots=True)
class Criterion:
    """One occurrence of a search parameter: it matches when any of its alternatives does."""

    param: SearchParam
    alternatives: tuple[Matcher, ...]


@dataclass
class SearchRequest:
    """A search as understood: what to match, which page, and what was left out."""

    criteria: list[Criterion]
    count: int
    offset: int
    #: (name, value) pairs the answer depends on, for the self and paging links (without _count/_offset).
    link_params: list[tuple[str, str]]
    #: Parameters ignored because the facade does not know them (lenient handling).
    ignored: list[str] = field(default_factory=list)
    #: ``_summary=count``: the total only.
    summary_count: bool = False
    #: ``_summary=true``, ``text`` or ``data``: each resource cut down so (None: whole resources).
    summary: Summary | None = None
    #: ``_sort``: (parameter, descending) in order; by id when empty.
    sort: list[tuple[str, bool]] = field(default_factory=list)
    #: ``_elements``: the top-level elements to return (None: whole resources).
    elements: tuple[str, ...] | None = None
    #: ``_include``: reference parameters of the searched type whose targets come along.
    includes: list[SearchParam] = field(default_factory=list)
    #: ``_revinclude``: (type, reference parameter) of resources pointing at the matches.
    revincludes: list[tuple[str, SearchParam]] = field(default_factory=list)
    #: ``_revinclude`` values accepted that bring nothing (``EMPTY_REVINCLUDES``).
    empty_revincludes: list[str] = field(default_factory=list)


def _integer(name: str, values: Sequence[str], default: int, minimum: int) -> int:
    given = [v for v in values if v != ""]
    if not given:
        return default
    if len(given) > 1:
        raise InvalidSearch(f"parameter {name} may be given only once")
    try:
        value = int(given[0])
    except ValueError:
        raise InvalidSearch(f"parameter {name} must be a whole number") from None
    if value < minimum:
        raise InvalidSearch(f"parameter {name} must be at least {minimum}")
    return value


def parse_search(
    resource_type: str,
    items: Iterable[tuple[str, str]],
    *,
    strict: bool = True,
    default_count: int = DEFAULT_COUNT,
    max_count: int = MAX_COUNT,
    own: Collection[str] = (),
) -> SearchRequest:
    """Read the query of ``GET [type]?…``; raises :class:`InvalidSearch` / :class:`UnsupportedParameter`.

    ``own`` are the façade's own bases (``base_key``): a reference value by absolute URL there is the
    relative one; at any other base it names another server's resource, never the local one.

    ``_count`` above ``max_count`` is lowered to it (FHIR lets a server return fewer); ``_count=0``
    and ``_summary=count`` ask only for the total. An unknown parameter is refused (HAPI does the
    same) unless ``strict`` is off (``Prefer: handling=lenient``): then it is ignored and reported.
    """
    known = params_for(resource_type)
    criteria: list[Criterion] = []
    link_params: list[tuple[str, str]] = []
    unknown: list[str] = []
    control: dict[str, list[str]] = {}
    for name, value in items:
        if name in CONTROL_PARAMS:
            control.setdefault(name, []).append(value)
            if name not in ("_count", "_offset") and value != "":
                link_params.append((name, value))
            continue
        base, _, modifier = name.partition(":")
        if base in ("_include", "_revinclude") and strict:  # :iterate, :recurse: FHIR's, not served here
            raise UnsupportedParameter(f"{name} is not supported: {base} follows one level of references")
        param = known.get(base)
        if param is None:
            unknown.append(name)
            continue
        target = _type_modifier(param, modifier) if modifier else param.target
        alternatives = split_or(value)
        if not alternatives:
            continue  # FHIR: a parameter with an empty value is ignored
        matchers = tuple(parse_matcher(param.kind, a, target, own) for a in alternatives)
        if modifier and any(isinstance(m, RefMatch) and m.type != target for m in matchers):
            raise InvalidSearch(f"{name} takes an id or {target}/id, not a reference to another type")
        criteria.append(Criterion(param, matchers))
        link_params.append((name, value))
    if unknown and strict:
        raise UnsupportedParameter(
            f"{resource_type} has no search parameter {', '.join(sorted(set(unknown)))} "
            "(see /metadata for the supported ones; Prefer: handling=lenient ignores unknown parameters)"
        )
    count = min(_integer("_count", control.get("_count", ()), default_count, 0), max_count)
    offset = _integer("_offset", control.get("_offset", ()), 0, 0)
    request = SearchRequest(criteria, count, offset, link_params, ignored=sorted(set(unknown)))
    _shape(resource_type, known, control, request)
    return request


def _type_modifier(param: SearchParam, modifier: str) -> str:
    """The type a ``:[type]`` modifier names (``subject:Patient=123`` is ``subject=Patient/123``, the
    form US Core clients send): for a reference parameter only, and the type it refers to where it
    refers to one. Any other modifier is refused, as ignoring it would answer another question."""
    if param.kind != "reference" or not _TYPE_NAME.match(modifier):
        raise UnsupportedParameter(f"modifier :{modifier} of parameter {param.name} is not supported")
    if param.target is not None and modifier != param.target:
        raise UnsupportedParameter(f"{param.name} refers to a {param.target}, not a {modifier}")
    return modifier


_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


def parse_read(resource_type: str, items: Iterable[tuple[str, str]]) -> SearchRequest:
    """``_summary`` and ``_elements`` of a read (``GET [type]/[id]?…``), understood as a search understands
    them (``summary`` and ``elements`` of the answer; the rest unused). FHIR defines both for a read
    as for a search, but ``_summary=count`` for searches only (a read has no total to give)."""
    control: dict[str, list[str]] = {}
    for name, value in items:
        if name in ("_summary", "_elements"):
            control.setdefault(name, []).append(value)
    shape = SearchRequest([], 0, 0, [])
    _shape(resource_type, params_for(resource_type), control, shape)
    if shape.summary_count:
        raise InvalidSearch("_summary=count is for searches: a read answers with the resource")
    return shape


def _values(control: dict[str, list[str]], name: str) -> list[str]:
    return [v.strip() for raw in control.get(name, ()) for v in raw.split(",") if v.strip()]


def _shape(
    resource_type: str, known: dict[str, SearchParam], control: dict[str, list[str]], out: SearchRequest
) -> None:
    """``_summary``, ``_sort``, ``_elements``, ``_include`` and ``_revinclude``: what the answer looks like."""
    total = _values(control, "_total")
    if len(total) > 1 or not set(total) <= {"none", "estimate", "accurate"}:
        raise InvalidSearch("_total is none, estimate or accurate (given once); this facade always counts accurately")
    _summary(control, out)
    for key in _values(control, "_sort"):
        name, descending = (key[1:], True) if key.startswith("-") else (key, False)
        if name not in ("_id", "_lastUpdated") and (name not in known or known[name].kind == "reference"):
            raise UnsupportedParameter(f"_sort: {resource_type} cannot be sorted by {name}")
        out.sort.append((name, descending))
    elements = _values(control, "_elements")
    if elements:
        bad = [e for e in elements if not _ELEMENT.match(e)]
        if bad:
            raise InvalidSearch(f"_elements: {', '.join(bad)} is not a top-level element name")
        out.elements = tuple(dict.fromkeys(elements))
    for value in _values(control, "_include"):
        source, name, target = _include_parts(value)
        param = known.get(name) if source == resource_type else None
        if param is None or param.kind != "reference" or param.target not in _PARAMS:
            raise UnsupportedParameter(f"_include={value}: {resource_type} includes by its reference parameters only")
        if target not in (None, param.target):
            raise UnsupportedParameter(f"_include={value}: {source}:{name} refers to {param.target} only")
        out.includes.append(param)
    for value in _values(control, "_revinclude"):
        if value in EMPTY_REVINCLUDES:
            out.empty_revincludes.append(value)
            continue
        source, name, target = _include_parts(value)
        param = _PARAMS.get(source, {}).get(name)
        if (
            param is None
            or param.kind != "reference"
            or param.target not in (None, resource_type)
            or target not in (None, resource_type)
        ):
            raise UnsupportedParameter(f"_revinclude={value}: nothing served refers to {resource_type} that way")
        out.revincludes.append((source, param))


def _summary(control: dict[str, list[str]], out: SearchRequest) -> None:
    """``_summary`` (one value of true, text, data, count, false); not beside ``_elements`` but with
    ``false`` or ``count``, as HAPI answers (which of the two would shape the resources?)."""
    given = set(_values(control, "_summary"))
    if len(given) > 1:
        raise InvalidSearch("_summary is given once: true, text, data, count or false")
    value = next(iter(given), "false")
    if value == "count":
        out.summary_count = True
    elif value in SUMMARY_MODES:
        if _values(control, "_elements"):
            raise InvalidSearch(f"_summary={value} cannot be combined with _elements")
        out.summary = next(m for m in SUMMARY_MODES if m == value)
    elif value != "false":
        raise InvalidSearch(f"_summary is true, text, data, count or false, not {value!r}")


def _include_parts(value: str) -> tuple[str, str, str | None]:
    """``Source:parameter[:Target]`` of an ``_include`` or ``_revinclude`` value (the target None when not named)."""
    source, _, rest = value.partition(":")
    name, _, target = rest.partition(":")
    return source, name, target or None


def includes_for(resource_type: str) -> list[str]:
    """The ``_include`` values a type supports (for the CapabilityStatement)."""
    return [
        f"{resource_type}:{p.name}"
        for p in _PARAMS[resource_type].values()
        if p.kind == "reference" and p.target in _PARAMS
    ]


def revincludes_for(resource_type: str) -> list[str]:
    """The ``_revinclude`` values a type supports."""
    found = [
        f"{source}:{p.name}"
        for source, params in _PARAMS.items()
        for p in params.values()
        if p.kind == "reference" and p.target == resource_type and p.name not in ("patient",)
    ]
    return [*found, *sorted(EMPTY_REVINCLUDES)]
