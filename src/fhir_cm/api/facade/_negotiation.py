"""Which FHIR version (and format) a client wants, from ``_fhirVersion``, ``_format`` and ``Accept``.

FHIR names the version of a resource in the MIME type's ``fhirVersion`` parameter, as ``major.minor``
(http://hl7.org/fhir/R5/http.html#version-parameter): ``Accept: application/fhir+json;
fhirVersion=5.0`` asks for R5. The facade speaks R4 (``4.0``, served as 4.0.1) and R5 (``5.0``), in
JSON only. Precedence, most explicit first: the ``_fhirVersion`` query parameter (ours, for clients
that cannot set headers), then a ``fhirVersion`` inside ``_format``, then ``Accept`` (ranges tried in
order of their ``q``); without any of them, R4. A client that accepts only versions or formats we
cannot produce gets 406.
"""

from __future__ import annotations

from collections.abc import Sequence

from fhir_cm.mapping import FhirVersion

from ._errors import InvalidSearch, NotAcceptable

__all__ = ["DEFAULT_VERSION", "MIME_VERSIONS", "FhirVersion", "content_type", "negotiate_version", "release"]

DEFAULT_VERSION: FhirVersion = "R4"

#: ``fhirVersion`` MIME parameter values (major.minor) → the version served.
MIME_VERSIONS: dict[str, FhirVersion] = {"4.0": "R4", "5.0": "R5"}
_RELEASES: dict[FhirVersion, str] = {"R4": "4.0.1", "R5": "5.0.0"}
_MIME_OF: dict[FhirVersion, str] = {v: k for k, v in MIME_VERSIONS.items()}

#: Media types (and ``_format`` shorthands) that mean FHIR JSON; wildcards accept it too.
_JSON_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir", "json"})
_WILDCARDS = frozenset({"*/*", "application/*"})


def release(version: FhirVersion) -> str:
    """The full FHIR release the facade serves for a version (``4.0.1``, ``5.0.0``)."""
    return _RELEASES[version]


def content_type(version: FhirVersion) -> str:
    """The Content-Type of facade responses: FHIR JSON, labelled with its version."""
    return f"application/fhir+json; fhirVersion={_MIME_OF[version]}"


def _version_value(value: str) -> FhirVersion | None:
    """``4.0``/``4.0.1``/``R4`` → R4, ``5.0``/``5.0.0``/``R5`` → R5, anything else None."""
    v = value.strip().strip('"').upper()
    if v == "R4":
        return "R4"
    if v == "R5":
        return "R5"
    major_minor = ".".join(v.split(".")[:2])
    return MIME_VERSIONS.get(major_minor)


def _media_range(text: str) -> tuple[str, dict[str, str]]:
    """``type/subtype`` (lower case) and its parameters (names lower case)."""
    mime, *raw_params = text.split(";")
    params = {}
    for raw in raw_params:
        name, _, value = raw.partition("=")
        params[name.strip().lower()] = value.strip().strip('"')
    return mime.strip().lower(), params


def _quality(params: dict[str, str]) -> float:
    try:
        return max(0.0, min(1.0, float(params.get("q", "1"))))
    except ValueError:
        return 0.0


def _from_accept(accept: str, *, media_type_decided: bool = False) -> FhirVersion:
    """The version the Accept header asks for; with ``media_type_decided`` (``_format`` was given)
    only its ``fhirVersion`` counts, and a header that names none we serve means the default."""
    ranges = [_media_range(part) for part in accept.split(",") if part.strip()]
    if not ranges:
        return DEFAULT_VERSION
    # sorted() is stable: among equal q, the client's order decides.
    for mime, params in sorted(ranges, key=lambda r: -_quality(r[1])):
        if _quality(params) <= 0 or not (mime in _JSON_TYPES or mime in _WILDCARDS):
            continue
        if "fhirversion" not in params:
            return DEFAULT_VERSION
        version = _version_value(params["fhirversion"])
        if version is not None:
            return version
    if media_type_decided:
        return DEFAULT_VERSION
    raise NotAcceptable(
        "the Accept header asks for no format and FHIR version this server produces: "
        "it serves application/fhir+json with fhirVersion=4.0 (default) or fhirVersion=5.0"
    )


def _single(name: str, values: Sequence[str]) -> str | None:
    if not values:
        return None
    if len(values) > 1:
        raise InvalidSearch(f"parameter {name} may be given only once")
    return values[0]


def negotiate_version(fhir_version: Sequence[str], format_: Sequence[str], accept: str | None) -> FhirVersion:
    """The FHIR version to answer in, given the ``_fhirVersion`` and ``_format`` query values and ``Accept``.

    Raises :class:`NotAcceptable` for a version or format the facade cannot produce.
    """
    asked = _single("_fhirVersion", fhir_version)
    fmt = _single("_format", format_)
    mime, params = _media_range(fmt) if fmt is not None else ("", {})
    # ``_format=application/fhir+json`` typed into a URL: its '+' arrives as a space.
    mime = "+".join(mime.split())
    if fmt is not None and mime not in _JSON_TYPES:
        # Checked whatever else is asked: a format the facade cannot produce is never answered in JSON.
        raise NotAcceptable("unsupported _format: this server produces JSON only (json, application/fhir+json)")
    if asked is not None:
        version = _version_value(asked)
        if version is None:
            raise NotAcceptable("unsupported _fhirVersion: this server serves 4.0 (R4, default) and 5.0 (R5)")
        return version
    if fmt is not None:
        if "fhirversion" in params:
            version = _version_value(params["fhirversion"])
            if version is None:
                raise NotAcceptable("unsupported fhirVersion in _format: use 4.0 or 5.0")
            return version
        return _from_accept(accept, media_type_decided=True) if accept else DEFAULT_VERSION
    return _from_accept(accept) if accept else DEFAULT_VERSION
