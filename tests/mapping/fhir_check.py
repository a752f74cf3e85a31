"""Test helpers: validate mapped output with the fhir.resources models, and check the US Core rules.

The US Core check, written out: CarePlan assess-plan category, narrative
(text.status + div), status, intent, subject; CareTeam participant role + member; Goal
lifecycleStatus, description, subject and target.dueDate or startDate; ServiceRequest status,
intent, category, code, subject; every resource carries the business identifier; references between
a transaction's resources are its urn:uuid fullUrls, or ``Type/id`` of resources already on the server.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from fhir_cm.mapping._refs import parse_reference

__all__ = ["model", "us_core_problems", "validate", "validate_bundle"]

_PACKAGES = {"R4": "fhir.resources.R4B", "R5": "fhir.resources"}
_ASSESS_PLAN = ("http://hl7.org/fhir/us/core/CodeSystem/careplan-category", "assess-plan")


def model(version: str, resource_type: str) -> type:
    module = importlib.import_module(f"{_PACKAGES[version]}.{resource_type.lower()}")
    return getattr(module, resource_type)


def validate(resource: Mapping[str, Any], version: str) -> None:
    """Raise if ``resource`` is not a valid resource of its type in ``version``."""
    model(version, resource["resourceType"]).model_validate(resource)


def validate_bundle(bundle: Mapping[str, Any], version: str) -> None:
    """Validate the Bundle and each of its resources on its own."""
    model(version, "Bundle").model_validate(bundle)
    for entry in bundle.get("entry", ()):
        validate(entry["resource"], version)


def _codes(concepts: Iterable[Mapping[str, Any]] | None) -> set[tuple[str, str]]:
    return {(c.get("system"), c.get("code")) for cc in concepts or () for c in cc.get("coding", ())}


def _references(obj: Any) -> Iterable[str]:
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from _references(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from _references(item)


def us_core_problems(bundle: Mapping[str, Any], identifier_system: str, version: str = "R4") -> list[str]:
    """Everything in a transaction Bundle that breaks the US Core rules fhir-cm promises (empty: fine)."""
    problems: list[str] = []
    entries = bundle.get("entry", [])
    full_urls = {e.get("fullUrl") for e in entries}
    for n, entry in enumerate(entries):
        r = entry["resource"]
        t = r["resourceType"]
        where = f"entry {n} ({t})"
        if not any(i.get("system") == identifier_system and i.get("value") for i in r.get("identifier", ())):
            problems.append(f"{where}: no business identifier")
        if not str(entry.get("fullUrl", "")).startswith("urn:uuid:"):
            problems.append(f"{where}: fullUrl is not a urn:uuid")
        for ref in _references(r):
            if ref.startswith("urn:uuid:") and ref not in full_urls:
                problems.append(f"{where}: reference {ref} is not the fullUrl of an entry")
            elif not ref.startswith("urn:uuid:") and parse_reference(ref) is None:
                problems.append(f"{where}: reference {ref} is neither a urn:uuid nor Type/id")
        if t == "CarePlan":
            if _ASSESS_PLAN not in _codes(r.get("category")):
                problems.append(f"{where}: no assess-plan category")
            text = r.get("text") or {}
            if text.get("status") not in ("generated", "additional") or not str(text.get("div", "")).startswith("<div"):
                problems.append(f"{where}: no narrative")
            for element in ("status", "intent", "subject"):
                if not r.get(element):
                    problems.append(f"{where}: no {element}")
        elif t == "CareTeam":
            for p in r.get("participant", []):
                if not p.get("role") or not p.get("member"):
                    problems.append(f"{where}: a participant lacks role or member")
            if not r.get("participant"):
                problems.append(f"{where}: no participant")
        elif t == "Goal":
            for element in ("lifecycleStatus", "description", "subject"):
                if not r.get(element):
                    problems.append(f"{where}: no {element}")
            if not r.get("startDate") and not any(tg.get("dueDate") for tg in r.get("target", ())):
                problems.append(f"{where}: neither startDate nor target.dueDate")
        elif t == "ServiceRequest":
            for element in ("status", "intent", "category", "code", "subject"):
                if not r.get(element):
                    problems.append(f"{where}: no {element}")
            code = r.get("code", {}).get("concept") if version == "R5" else r.get("code")
            if not (code or {}).get("coding"):
                problems.append(f"{where}: code has no coding")
    return problems
