"""The search parameters the facade supports per resource type, and reading a search request.

The table is data: a parameter is a name, a kind (token, reference, date) and the element path it
searches, the same in R4 and R5 for everything the facade serves (an R5 CodeableReference is read
through its concept). Names are FHIR's; where a type calls a concept by another name, the generic
name the case-management API uses is accepted too and says so in its documentation (``status`` on
Goal is ``lifecycle-status``, on Condition ``clinical-status``; ``subject`` on EpisodeOfCare is
``patient``), so a consumer can ask every type ``?patient=…&status=…``.

Reading a request (:func:`parse_search`) follows the FHIR rules: repeated parameters AND,
comma-separated values OR, empty values are ignored, a modifier the facade does not support is
an error (ignoring it would return the opposite of what was asked), and a parameter it does not
know is ignored and reported — or refused with ``Prefer: handling=strict``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ._errors import InvalidSearch, UnsupportedParameter
from ._match import Kind, Matcher, parse_matcher, split_or

__all__ = [
    "CONTROL_PARAMS",
    "DEFAULT_COUNT",
    "MAX_COUNT",
    "RESOURCE_TYPES",
    "Criterion",
    "SearchParam",
    "SearchRequest",
    "params_for",
    "parse_search",
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
    ],
    "CarePlan": [*_patient("subject"), _STATUS, _CATEGORY],
    "CareTeam": [*_patient("subject"), _STATUS, _CATEGORY],
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
        _token("class", "class", "The encounter class (v3-ActCode)."),
        _token("type", "type", "The care setting: code, system|code."),
    ],
    "Goal": [
        *_patient("subject"),
        _token("lifecycle-status", "lifecycleStatus", "The goal's lifecycle status."),
        _token("status", "lifecycleStatus", "fhir-cm alias of lifecycle-status."),
        _CATEGORY,
    ],
    "ServiceRequest": [*_patient("subject"), _STATUS, _CATEGORY, _token("code", "code", "What is requested.")],
    "Task": [*_patient("for"), _STATUS, _token("code", "code", "The task code (fulfill).")],
    "Communication": [*_patient("subject"), _STATUS, _CATEGORY],
}

#: The resource types the facade serves, in the order the CapabilityStatement lists them.
RESOURCE_TYPES: tuple[str, ...] = tuple(_BY_TYPE)

_PARAMS: dict[str, dict[str, SearchParam]] = {
    rtype: {p.name: p for p in [*_COMMON, *params]} for rtype, params in _BY_TYPE.items()
}

#: Parameters that shape the answer rather than select resources; ``_total`` is always ``accurate``
#: and ``_pretty`` has no effect (the facade writes compact JSON).
CONTROL_PARAMS = frozenset({"_count", "_offset", "_format", "_fhirVersion", "_total", "_pretty"})


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
    strict: bool = False,
    default_count: int = DEFAULT_COUNT,
    max_count: int = MAX_COUNT,
) -> SearchRequest:
    """Read the query of ``GET [type]?…``; raises :class:`InvalidSearch` / :class:`UnsupportedParameter`.

    ``_count`` above ``max_count`` is lowered to it (FHIR lets a server return fewer); ``_count=0``
    asks only for the total.
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
        param = known.get(base)
        if param is None:
            unknown.append(name)
            continue
        if modifier:
            raise UnsupportedParameter(f"modifier :{modifier} of parameter {base} is not supported")
        alternatives = split_or(value)
        if not alternatives:
            continue  # FHIR: a parameter with an empty value is ignored
        criteria.append(Criterion(param, tuple(parse_matcher(param.kind, a, param.target) for a in alternatives)))
        link_params.append((name, value))
    if unknown and strict:
        raise UnsupportedParameter(
            f"{resource_type} has no search parameter {', '.join(sorted(set(unknown)))} "
            "(Prefer: handling=strict; see /metadata for the supported ones)"
        )
    count = min(_integer("_count", control.get("_count", ()), default_count, 0), max_count)
    offset = _integer("_offset", control.get("_offset", ()), 0, 0)
    return SearchRequest(criteria, count, offset, link_params, ignored=sorted(set(unknown)))
