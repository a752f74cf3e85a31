"""Case plan ⇄ CarePlan: one plan per case, built by reference (MCC eCare Plan style).

US Core: a generated narrative, status, intent ``plan``, the ``assess-plan`` category plus a SNOMED CT
care-plan category, subject. The plan points at the case's needs (``addresses``), goals, referrals
(``activity.reference``, R5 ``activity.plannedActivityReference``), care team and, through
``supportingInfo``, the EpisodeOfCare; the case manager is ``author`` (R4) / ``custodian`` (R5).
Only ``description`` (the plan summary) is read back: everything else is derived from the case.

The narrative is ours only while it is the one we generate (marked by its ``class``): an update
rewrites our narrative when the plan changes, but never replaces or adds a narrative on a server
copy that has another one or none.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

from .. import terminology as T
from ..domain import Case
from ._base import FhirVersion
from ._codes import CAREPLAN_CATEGORIES
from ._fields import Ctx, Field, ResourceSpec, Shape, code, date, party, refs, text
from ._json import clone
from ._keys import careteam_key

__all__ = ["CARE_PLAN", "render_narrative"]

_DIV_OPEN = '<div xmlns="http://www.w3.org/1999/xhtml" class="fhir-cm-careplan">'


def _display(vocabulary: str, value: str) -> str:
    return T.coding(vocabulary, value).get("display", value)


#: What XML 1.0 cannot hold at all, escaped or not: C0 controls but tab, LF and CR; U+FFFE, U+FFFF;
#: lone surrogates. A narrative holding one is no XHTML, and servers refuse the whole resource.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def xhtml_text(text: str) -> str:
    """Text content escaped as HAPI's XHTML serialiser writes it (``&amp; &lt; &gt; &quot;``, the
    apostrophe as it is): servers re-serialise the narrative they store, and one escaped any other
    way would never match the server's copy, so every push would rewrite it. Characters XML cannot
    hold become U+FFFD."""
    return html.escape(_NOT_XML.sub("\ufffd", text), quote=False).replace('"', "&quot;")


def render_narrative(case: Case) -> str:
    """The CarePlan's XHTML narrative: what the plan is, for a person reading the resource."""
    period = f"{case.period.start.isoformat()} to {case.period.end.isoformat() if case.period.end else 'ongoing'}"
    parts = [
        _DIV_OPEN,
        (
            f"<p><b>Care plan</b>: {xhtml_text(_display('programme-type', case.programme))} case management, "
            f"{xhtml_text(_display('case-status', case.status).lower())} ({period}).</p>"
        ),
    ]
    if case.plan_summary:
        parts.append(f"<p>{xhtml_text(case.plan_summary)}</p>")
    parts.append(
        f"<p>Needs: {len(case.needs)}. Goals: {len(case.goals)}. Referrals and interventions: "
        f"{len(case.referrals)}. Care team members: {len(case.team)}.</p></div>"
    )
    return "".join(parts)


def _narrative() -> Field:
    def read(obj: Mapping[str, Any], ctx: Ctx) -> str | None:
        narrative = obj.get("text")
        return narrative.get("div") if isinstance(narrative, Mapping) else None

    def same(obj: Mapping[str, Any], div: str, ctx: Ctx) -> bool:
        held = read(obj, ctx)
        return held == div or not (isinstance(held, str) and held.startswith(_DIV_OPEN))

    def write(obj: dict[str, Any], div: str, ctx: Ctx) -> None:
        obj["text"] = {"status": "generated", "div": div}

    return Field("narrative", lambda c, ctx: render_narrative(c), read, write, same, derived=True)


def _team(case: Case, ctx: Ctx) -> list[str]:
    key = careteam_key(case)
    return [key.value] if key in ctx.produced else []


def _shape(version: FhirVersion) -> Shape:
    r5 = version == "R5"
    activity_key = "plannedActivityReference" if r5 else "reference"
    return Shape(
        (
            _narrative(),
            code("status", ("status",), "case-status-careplan", derived=True),
            party("patient", ("subject",), derived=True),
            date("period_start", ("period", "start"), get=lambda c, ctx: c.period.start, derived=True),
            date("period_end", ("period", "end"), get=lambda c, ctx: c.period.end, derived=True, last=True),
            text("plan_summary", ("description",)),
            refs(
                "needs",
                ("addresses",),
                "Condition",
                get=lambda c, ctx: [n.id for n in c.needs],
                wrap=(lambda r: {"reference": r}) if r5 else (lambda r: r),
                unwrap=(lambda i: i.get("reference")) if r5 else (lambda i: i),
                derived=True,
            ),
            refs("goals", ("goal",), "Goal", get=lambda c, ctx: [g.id for g in c.goals], derived=True),
            refs(
                "activities",
                ("activity",),
                "ServiceRequest",
                get=lambda c, ctx: [r.id for r in c.referrals],
                wrap=lambda r: {activity_key: r},
                unwrap=lambda i: i.get(activity_key),
                derived=True,
            ),
            refs("care_team", ("careTeam",), "CareTeam", get=_team, derived=True),
            party("case_manager", ("custodian",) if r5 else ("author",), derived=True),
            refs("episode", ("supportingInfo",), "EpisodeOfCare", get=lambda c, ctx: [c.id], derived=True),
        )
    )


CARE_PLAN = ResourceSpec(
    "CarePlan",
    {"R4": _shape("R4"), "R5": _shape("R5")},
    skeleton=lambda ctx: {"intent": "plan", "category": clone(CAREPLAN_CATEGORIES)},
)
