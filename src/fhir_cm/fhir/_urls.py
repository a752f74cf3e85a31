"""URL handling for a FHIR base: building request URLs, resolving paging links, reading Location.

Kept apart because every rule here is a security or correctness boundary: ids are checked before
they become path segments (no path injection), and a paging link is only followed when it stays on
the base's origin, so a bearer token is never sent to a host the server merely named.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import urljoin

import httpx

__all__ = [
    "ResourceLocation",
    "check_id",
    "check_type",
    "may_carry_credentials",
    "normalize_base",
    "origin",
    "parse_etag_version",
    "parse_location",
    "relative_path",
    "resolve_link",
    "safe_for_tokens",
    "shown_origin",
]

_TYPE_RE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_ID_RE = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9\-.]{1,64}$")  # not '.' nor '..': no URL path carries them
# [base/]Type/id[/_history/vid] at the end of a path; the base part is whatever comes before.
_LOCATION_RE = re.compile(
    r"(?:^|/)(?P<type>[A-Z][A-Za-z]{1,63})/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/(?P<vid>[A-Za-z0-9\-.]{1,64}))?/?$"
)
_ETAG_RE = re.compile(r'^(?:W/)?"?(?P<vid>[^"]*)"?$')
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ResourceLocation(NamedTuple):
    """Type, id and (when present) version named by a Location header or bundle entry location."""

    resource_type: str
    id: str
    version_id: str | None


def check_type(resource_type: str) -> str:
    """Return ``resource_type`` if it looks like a FHIR resource type name, else raise ``ValueError``."""
    if not _TYPE_RE.match(resource_type or ""):
        raise ValueError(f"not a FHIR resource type: {resource_type!r}")
    return resource_type


def check_id(resource_id: str) -> str:
    """Return ``resource_id`` if it is a valid FHIR id (so it is safe as a path segment)."""
    if not _ID_RE.match(resource_id or ""):
        raise ValueError("not a valid FHIR id (1-64 of A-Z a-z 0-9 - .)")
    return resource_id


def normalize_base(base_url: str) -> str:
    """The base URL without a trailing slash; only http(s) bases are accepted."""
    url = _parsed(base_url)
    if url is None or url.scheme not in _DEFAULT_PORTS or not url.host:
        raise ValueError(f"FHIR base must be an absolute http(s) URL, got {_shown(base_url)!r}")
    return str(url).rstrip("/")


def safe_for_tokens(url: str) -> bool:
    """Whether a bearer token may be sent to ``url``: https, or http to this machine's loopback.

    Decided on the parsed host, never on the text's prefix (``http://localhost.example.org`` and
    ``http://localhost@example.org`` begin like loopback and are not).
    """
    parsed = _parsed(url)
    if parsed is None or not parsed.host or parsed.userinfo:
        return False
    return parsed.scheme == "https" or (parsed.scheme == "http" and parsed.host in _LOOPBACK)


_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def may_carry_credentials(url: str | httpx.URL, base_url: str, *, allow_http: bool = False) -> bool:
    """Whether the credentials may go to ``url``, one the server named (a Bulk status or file URL): the
    base's own origin (checked at start-up), https, http to this machine, or any http the operator
    vouched for. A server behind a proxy names itself by its inner ``http://`` address, and the token
    would cross the network in clear to it."""
    return allow_http or origin(url) == origin(base_url) or safe_for_tokens(str(url))


def _parsed(text: str) -> httpx.URL | None:
    """``text`` as a URL, or None when it is not one (a bad port among others)."""
    try:
        url = httpx.URL(text.strip())
        port = url.port
    except (httpx.InvalidURL, ValueError, TypeError):
        return None
    return url if port is None or 0 < port < 65536 else None


def _shown(text: str) -> str:
    """``text`` for an error message, without a password it may carry (``user:secret@host``)."""
    return re.sub(r"(//[^/@\s:]*):[^/@\s]*@", r"\1:***@", text)


def shown_origin(url: str | httpx.URL) -> str:
    """``scheme://host:port`` of ``url``: where it goes, without a path or query that may carry identifiers."""
    scheme, host, port = origin(url)
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def origin(url: str | httpx.URL) -> tuple[str, str, int]:
    """(scheme, host, port) with the default port filled in, for same-origin comparisons."""
    u = httpx.URL(url)
    scheme = u.scheme.lower()
    return scheme, u.host.lower(), u.port or _DEFAULT_PORTS.get(scheme, 0)


def resolve_link(base_url: str, link: str) -> str:
    """Resolve a ``Bundle.link.url`` against the FHIR base, keeping the server's text verbatim.

    Absolute links are returned untouched. A host-relative link (``/fhir/CarePlan?page=2``) takes the
    base's scheme and host. A bare query (HAPI's ``?_getpages=…``) is appended to the base itself; a
    relative path (``CarePlan?page=2``) is resolved below the base, not beside its last segment.
    """
    link = link.strip()
    if link.startswith("?"):
        return base_url + link
    return urljoin(base_url + "/", link)


def relative_path(base_url: str, url: str | httpx.URL) -> list[str]:
    """Path segments of ``url`` below the base (``["CarePlan", "1"]``); empty when outside it."""
    base_path = httpx.URL(base_url).path.rstrip("/")
    path = httpx.URL(url).path
    if not path.startswith(base_path):
        return []
    return [segment for segment in path[len(base_path) :].split("/") if segment]


def parse_location(location: str | None) -> ResourceLocation | None:
    """Read type, id and version from a Location (absolute or relative, query ignored)."""
    if not location:
        return None
    path = location.split("?", 1)[0].split("#", 1)[0]
    match = _LOCATION_RE.search(path)
    if match is None:
        return None
    return ResourceLocation(match["type"], match["id"], match["vid"])


def parse_etag_version(etag: str | None) -> str | None:
    """The version in an ETag: ``W/"3"`` → ``"3"`` (HAPI also sends a bare ``3`` inside bundles)."""
    if not etag:
        return None
    match = _ETAG_RE.match(etag.strip())
    return (match["vid"] or None) if match else None
