"""Why a server refused a request, in its own words, safe to print and store (no data of ours).

A person fixing a refused case needs what the server said: HTTP status, the OperationOutcome issue
code, the server's message code (HAPI-xxxx) and its diagnostics. Diagnostics are the server's text,
but servers quote request content back ("Invalid attribute value \\"1970-13-01\\"", a match URL with
an MRN, a name), so only a cleaned first line is kept:

1. the first issue of severity fatal/error (else the first issue): its ``diagnostics``, else its
   ``details.text``; only the **first line**, with leading message codes moved to ``message_code``;
2. every value of ours that appears in it as a whole word is replaced by ``…`` — the string values
   of the resources we sent (identifiers, names, notes, dates; not technical elements such as types,
   codes, systems, references, nor a coding's display) plus any extra strings the caller names (the
   patient's name and id);
3. quoted text is replaced by ``…`` unless it is a FHIR element path, type or parameter name
   (``"careteam"``, ``"CarePlan.status"`` stay; ``"1970-13-01"``, ``"J. Smith"`` go);
4. query values are dropped (``identifier=…``), whitespace collapsed, and the result cut to
   200 characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict

from ._errors import MAX_DIAGNOSTICS, FhirError, redact

__all__ = ["ServerReason", "server_reason", "server_warnings"]

_LEADING_CODES = re.compile(r"^(?:\s*(HAPI-\d{4})\s*:?\s*)+")
_HAPI_CODE = re.compile(r"HAPI-\d{4}")
_QUOTED = re.compile(r"\"([^\"]*)\"|'([^']*)'|“([^”]*)”")
# Lower-case tokens: element, search parameter and code names ("careteam", "birthDate", "_lastUpdated").
_PLAIN_TOKEN = re.compile(r"^[a-z_][A-Za-z0-9_\-]{0,63}$")
_PATH = re.compile(r"^([A-Z][A-Za-z]{1,63})((?:\.[A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])?)*)$")
# Elements whose (string) values are vocabulary or plumbing, not a person's data: not scrubbed from
# messages (scrubbing "CarePlan" or "active" would only make the server's words unreadable). A
# CodeableConcept under ``code`` is still walked: its ``text`` may be ours.
_TECHNICAL = frozenset(
    {
        "resourceType",
        "id",
        "meta",
        "system",
        "code",
        "url",
        "reference",
        "profile",
        "status",
        "intent",
        "use",
        "lifecycleStatus",
        "div",
        "fullUrl",
        "mode",
        "kind",
        "priority",
        "versionId",
        "lastUpdated",
    }
)
_MIN_SCRUBBED = 3


class ServerReason(BaseModel):
    """A refusal as the server put it: status, issue code, message code, first line of diagnostics."""

    model_config = ConfigDict(frozen=True)

    status: int | None = None
    code: str | None = None
    message_code: str | None = None
    diagnostics: str | None = None

    @property
    def text(self) -> str:
        """One line for people: ``HTTP 400 invalid HAPI-0989: <diagnostics>``."""
        head = " ".join(p for p in (f"HTTP {self.status}" if self.status else None, self.code, self.message_code) if p)
        if self.diagnostics:
            return f"{head}: {self.diagnostics}" if head else self.diagnostics
        return head or "no reason given"


@lru_cache(maxsize=512)
def _fhir_name(name: str) -> bool:
    from fhir.resources import get_fhir_model_class

    try:
        get_fhir_model_class(name)
    except (KeyError, ValueError):
        return False
    return True


def _harmless(quoted: str) -> bool:
    """A FHIR element path, type or parameter name: the server's vocabulary, not our data."""
    if _PLAIN_TOKEN.match(quoted):
        return True
    path = _PATH.match(quoted)
    return path is not None and _fhir_name(path.group(1))


def _keep_or_hide(match: re.Match[str]) -> str:
    quoted = next(g for g in match.groups() if g is not None)
    return match.group(0) if _harmless(quoted) else '"…"'


def _values(node: Any, key: str = "") -> Iterator[str]:
    if isinstance(node, str):
        if key not in _TECHNICAL:
            yield node
    elif isinstance(node, Mapping):
        coding = "code" in node or "system" in node  # a Coding's display is vocabulary; a Reference's is a name
        for k, v in node.items():
            if not (coding and k == "display"):
                yield from _values(v, str(k))
    elif isinstance(node, list):
        for v in node:
            yield from _values(v, key)


def _scrub(text: str, ours: Iterable[str]) -> str:
    """Every value of ours in ``text`` replaced by ``…``, as whole words (a name "Ann" leaves "annual")."""
    values = sorted({v.strip() for v in ours if len(v.strip()) >= _MIN_SCRUBBED}, key=len, reverse=True)
    for value in values:
        text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", "…", text, flags=re.IGNORECASE)
    return text


def _first_issue(outcome: Any) -> Mapping[str, Any] | None:
    if not isinstance(outcome, Mapping) or outcome.get("resourceType") != "OperationOutcome":
        return None
    issues = [i for i in outcome.get("issue") or [] if isinstance(i, Mapping)]
    errors = [i for i in issues if i.get("severity") in ("fatal", "error")]
    chosen = errors or issues
    return chosen[0] if chosen else None


def server_reason(
    exc: FhirError, sent: Iterable[Mapping[str, Any]] = (), *, also: Iterable[str | None] = ()
) -> ServerReason:
    """What the server said about ``exc``, without any value of the resources ``sent`` or ``also``."""
    return _reason(_first_issue(exc.outcome) or {}, exc.status, exc.hapi_code, sent, also)


def server_warnings(
    outcome: Any, status: int | None, sent: Iterable[Mapping[str, Any]] = (), *, also: Iterable[str | None] = ()
) -> list[ServerReason]:
    """The warnings of an OperationOutcome that came with a write the server took, each cleaned as
    ``server_reason`` cleans a refusal (information issues — HAPI's "Successfully created" — left out)."""
    if not isinstance(outcome, Mapping) or outcome.get("resourceType") != "OperationOutcome":
        return []
    issues = [i for i in outcome.get("issue") or [] if isinstance(i, Mapping) and i.get("severity") == "warning"]
    sent, also = list(sent), list(also)
    return [_reason(issue, status, None, sent, also) for issue in issues]


def _reason(
    issue: Mapping[str, Any],
    status: int | None,
    message_code: str | None,
    sent: Iterable[Mapping[str, Any]],
    also: Iterable[str | None],
) -> ServerReason:
    code = issue.get("code") if isinstance(issue.get("code"), str) else None
    raw = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
    if not isinstance(raw, str) or not raw.strip():
        return ServerReason(status=status, code=code, message_code=message_code)
    line = raw.strip().splitlines()[0]
    leading = _LEADING_CODES.match(line)
    codes = _HAPI_CODE.findall(leading.group(0)) if leading else []
    line = line[leading.end() :] if leading else line
    ours = [v for resource in sent for v in _values(resource)] + [a for a in also if a]
    line = _scrub(line, ours)
    line = _QUOTED.sub(_keep_or_hide, line)
    cleaned = redact(line, MAX_DIAGNOSTICS)
    return ServerReason(
        status=status,
        code=code,
        message_code=codes[-1] if codes else message_code,
        diagnostics=cleaned or None,
    )
