"""Case ⇄ EpisodeOfCare: the enrolment, its status over time, programme, patient and case manager.

Where FHIR has no element for a case attribute, a namespaced extension carries it (``_codes.py``):
referral source (``referralRequest`` is a ServiceRequest, not a party), acuity, and — in R4 only,
since R5 added ``EpisodeOfCare.reason`` — the eligibility reasons. A status change's reason rides
on its ``statusHistory`` entry. The person's current care setting and since when (derived from the
stays, like the transitions) ride on a complex extension, so whoever reads the episode sees where
the person is now; being derived, it is written (only when it changed) but never read back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from .. import terminology as T
from ..domain import (
    CareSetting,
    Case,
    CaseStatus,
    CurrentSetting,
    PartyKind,
    StatusChange,
)
from ._base import FhirVersion
from ._versions._extensions import xver_url
from ._codes import (
    EXT_ACUITY,
    EXT_CURRENT_SETTING,
    EXT_ELIGIBILITY,
    EXT_REFERRAL_SOURCE,
    EXT_STATUS_REASON,
)
from ._fields import (
    Ctx,
    Field,
    ResourceSpec,
    Shape,
    code,
    concept_items,
    date,
    extension_item,
    extension_items,
    model_items,
    party,
    refs,
)
from ._json import get_in, read_date, read_day, set_in
from ._keys import careteam_key
from ._refs import party_reference, read_party

__all__ = ["EPISODE_OF_CARE", "normalise_history"]

_STATUS = "case-status-episodeofcare"
_ELIGIBILITY = "eligibility-reason-snomed"


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _concept_value(map_name: str) -> Callable[[Any], str | None]:
    def decode(value: Any) -> str | None:
        return T.domain_value(map_name, value.get("coding")) if isinstance(value, Mapping) else None

    return decode


def _decode_current_setting(parts: Any) -> CurrentSetting | None:
    """The ``setting`` and ``since`` sub-extensions, or None when either is missing or unreadable."""
    if not isinstance(parts, list):
        return None
    by_url = {p.get("url"): p for p in parts if isinstance(p, Mapping)}
    setting = _concept_value("care-setting")((by_url.get("setting") or {}).get("valueCodeableConcept"))
    since = read_date((by_url.get("since") or {}).get("valueDate"))
    return (
        CurrentSetting(setting=CareSetting(setting), since=since) if setting is not None and since is not None else None
    )


def _encode_current_setting(now: CurrentSetting) -> list[dict[str, Any]]:
    return [
        {"url": "setting", "valueCodeableConcept": T.concept("care-setting", now.setting)},
        {"url": "since", "valueDate": now.since.isoformat()},
    ]


_END = ("period", "end")


def _end_holds(obj: Mapping[str, Any], value: Any, ctx: Ctx) -> bool:
    """Whether a status's ``period.end`` says ``value``: a partial end ("2024-06") says any day of its span.

    Read, such an end may stand for the next status's start (see :func:`_within_partial_ends`); the
    sender's "2024-06" is kept rather than rewritten to the day read.
    """
    held = get_in(obj, _END)
    first = read_day(held)
    if value is None or first is None:
        return bool(read_day(held, last=True) == value)
    return bool(first <= value <= read_day(held, last=True))


_HISTORY_ENTRY = Shape(
    (
        code("status", ("status",), _STATUS),
        date("start", ("period", "start")),
        dataclasses.replace(date("end", _END, last=True), same=_end_holds),
        extension_item("reason", EXT_STATUS_REASON, "valueString", decode=_string, encode=str),
    )
)


def _team(case: Case, ctx: Ctx) -> list[str]:
    key = careteam_key(case)
    return [key.value] if key in ctx.produced else []


def _reason_concept(item: Mapping[str, Any]) -> Any:
    values = item.get("value")
    if isinstance(values, list) and len(values) == 1 and isinstance(values[0], Mapping):
        return values[0].get("concept")
    return None


def _xver_reason_concept(parts: Any) -> Any:
    """The concept of R5 ``reason`` carried in R4 (its cross-version extension): the only ``value``."""
    values = [p for p in parts if isinstance(p, Mapping) and p.get("url") == "value"] if isinstance(parts, list) else []
    return values[0].get("valueCodeableConcept") if len(values) == 1 else None


def _eligibility(version: FhirVersion) -> Field:
    """R4: our extension — read from R5 ``reason`` in its cross-version extension too when ours says
    nothing, so an R5 episode converted to R4 (``export --fhir-version R4``) keeps its eligibility.
    R5: ``EpisodeOfCare.reason`` — read from our extension too when ``reason`` says nothing, so an R4
    episode converted to R5 element by element keeps its eligibility."""
    extension = extension_items(
        "eligibility",
        EXT_ELIGIBILITY,
        "valueCodeableConcept",
        decode=_concept_value(_ELIGIBILITY),
        encode=lambda v: T.concept(_ELIGIBILITY, v),
    )
    if version == "R4":
        url = xver_url("R5", "EpisodeOfCare.reason")
        carried = extension_items(
            "eligibility",
            url,
            "extension",
            decode=lambda parts: _concept_value(_ELIGIBILITY)(_xver_reason_concept(parts)),
            encode=lambda v: v,  # never written: the field writes our extension
        )

        def write(obj: dict[str, Any], value: Any, ctx: Ctx) -> None:
            # The reasons now live in our extension: the carried ones would come back as a stale
            # ``reason`` (read first) when the episode is converted to R5 again.
            extension.write(obj, value, ctx)
            exts = obj.get("extension")
            if isinstance(exts, list) and any(isinstance(e, Mapping) and e.get("url") == url for e in exts):
                set_in(obj, ("extension",), [e for e in exts if not (isinstance(e, Mapping) and e.get("url") == url)])

        return Field(
            extension.name,
            extension.get,
            lambda obj, ctx: extension.read(obj, ctx) or carried.read(obj, ctx),
            write,
            written=extension.written,
        )
    reason = concept_items(
        "eligibility",
        ("reason",),
        _ELIGIBILITY,
        many=True,
        wrap=lambda cc: {"value": [{"concept": cc}]},
        unwrap=_reason_concept,
    )
    return Field(
        reason.name,
        reason.get,
        lambda obj, ctx: reason.read(obj, ctx) or extension.read(obj, ctx),
        reason.write,
        written=reason.written,
    )


def normalise_history(history: list[StatusChange], status: str | None) -> list[StatusChange]:
    """A status history the case can hold: in order, ending with the current status, still open.

    Many servers keep only past statuses in ``statusHistory``; the current one is then appended,
    starting when the last one ended. A history that cannot be completed is returned as it is (and
    the case built from it will say what is wrong).
    """
    if not history or status is None:
        return history
    history = sorted(history, key=lambda s: s.start)
    last = history[-1]
    if last.status != status and last.end is not None:
        history.append(StatusChange(status=CaseStatus(status), start=last.end))
    elif last.status == status and last.end is not None:
        history[-1] = last.model_copy(update={"end": None})
    return history


def _within_partial_ends(obj: Mapping[str, Any], history: list[StatusChange], ctx: Ctx) -> list[StatusChange]:
    """The history with a partial end that holds the next status's start read as that start.

    A partial end reads as the last day of its span (``read_day``), so "referred until 2024-06,
    active from 2024-06-15" would close the referral after the next status began and the case
    would be refused as out of order; the month says only that it ended within June, which the
    15th is. An end whose span begins after the next start stays out of order.
    """
    earliest: dict[tuple[Any, Any], dt.date] = {}
    for item in get_in(obj, ("statusHistory",)) or ():
        if isinstance(item, dict) and (day := read_day(get_in(item, _END))) is not None:
            values = _HISTORY_ENTRY.read(item, ctx)
            earliest[(values.get("status"), values.get("start"))] = day
    history = sorted(history, key=lambda s: s.start)
    for i, (a, b) in enumerate(zip(history, history[1:], strict=False)):
        first = earliest.get((a.status, a.start))
        if a.end is not None and a.end > b.start and first is not None and first <= b.start:
            history[i] = a.model_copy(update={"end": b.start})
    return history


def _history() -> Field:
    f = model_items(
        "status_history", ("statusHistory",), _HISTORY_ENTRY, StatusChange, ident=lambda s: (s.status, s.start)
    )
    status = code("status", ("status",), _STATUS)

    def as_written(obj: Mapping[str, Any], value: Any, ctx: Ctx) -> dict[str, str]:
        out = f.items_as_written(obj, value, ctx) if f.items_as_written is not None else {}
        # The current status a server left out of statusHistory begins the day the last one held ends
        # (normalise_history): a day read from that end, as written if the end was a year or a month.
        n = len(value)
        end = out.get(f"/{n - 2}/end") if n >= 2 else None
        if end is not None and value[-1].start == value[-2].end and not _holds(obj, value[-1], ctx):
            out[f"/{n - 1}/start"] = end
        return out

    return Field(
        f.name,
        f.get,
        lambda obj, ctx: normalise_history(_within_partial_ends(obj, f.read(obj, ctx), ctx), status.read(obj, ctx)),
        f.write,
        written=f.written,
        items_as_written=as_written,
    )


def _holds(obj: Mapping[str, Any], change: StatusChange, ctx: Ctx) -> bool:
    """Whether ``obj``'s statusHistory has an entry for ``change`` (its status from its start)."""
    for item in get_in(obj, ("statusHistory",)) or ():
        if isinstance(item, Mapping):
            values = _HISTORY_ENTRY.read(item, ctx)
            if values.get("status") == change.status and values.get("start") == change.start:
                return True
    return False


_HISTORY = _history()


def _period_start() -> Field:
    """The day the case began: ``period.start``, else the first ``statusHistory`` entry's start.

    A ``period.start`` of a year or month ("2024") is refined by the first ``statusHistory`` entry
    when that day falls inside it: the history says which day of the year it was.
    """
    f = date("period_start", ("period", "start"), get=lambda c, ctx: c.period.start)
    end_of = date("period_start", ("period", "start"), last=True)

    def read(obj: Mapping[str, Any], ctx: Ctx) -> Any:
        start = f.read(obj, ctx)
        starts = [e.start for e in _HISTORY.read(obj, ctx)]
        if start is None or not starts:
            return start if start is not None else (min(starts) if starts else None)
        first, last = min(starts), end_of.read(obj, ctx)
        return first if start < first <= last else start

    # A start the history refined is a day the sender gave: only the span's own first day is partial.
    return Field(f.name, f.get, read, f.write, written=f.written, as_written=f.as_written, put_written=f.put_written)


def _shape(version: FhirVersion) -> Shape:
    return Shape(
        (
            code("status", ("status",), _STATUS),
            _HISTORY,
            concept_items("programme", ("type",), "programme-type-episodeofcare-type"),
            _eligibility(version),
            party("patient", ("patient",), [PartyKind.PATIENT]),
            _period_start(),
            date("period_end", ("period", "end"), get=lambda c, ctx: c.period.end, last=True),
            party("case_manager", ("careManager",), [PartyKind.PRACTITIONER]),
            refs("team", ("careTeam",) if version == "R5" else ("team",), "CareTeam", get=_team, derived=True),
            extension_item(
                "referral_source",
                EXT_REFERRAL_SOURCE,
                "valueReference",
                decode=lambda v, ctx: read_party(v, bases=ctx.refs.bases),
                encode=lambda v, ctx: party_reference(v),
                contextual=True,
            ),
            extension_item(
                "acuity",
                EXT_ACUITY,
                "valueCodeableConcept",
                decode=_concept_value("acuity"),
                encode=lambda v: T.concept("acuity", v),
                default=Case.model_fields["acuity"].default,
            ),
            extension_item(
                "current_setting",
                EXT_CURRENT_SETTING,
                "extension",
                decode=_decode_current_setting,
                encode=_encode_current_setting,
                derived=True,
            ),
        )
    )


EPISODE_OF_CARE = ResourceSpec("EpisodeOfCare", {"R4": _shape("R4"), "R5": _shape("R5")})
