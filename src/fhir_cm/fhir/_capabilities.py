"""What a server says it can do, read once from ``/metadata``, and the models for its FHIR release.

Servers differ wildly (US Core makes every write a MAY; Epic supports few search parameters; HAPI
answers 400 to a parameter it does not know), so the client asks the CapabilityStatement before it
sends. Where the statement is silent — no resource list at all, a type without interactions, a type
without search parameters — nothing is refused: silence is not a "no".
"""

from __future__ import annotations

import enum
import functools
import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel

from ._errors import UnsupportedByServer

__all__ = [
    "CASE_MANAGEMENT_TYPES",
    "RESULT_PARAMETERS",
    "Capabilities",
    "CaseManagementView",
    "FhirRelease",
    "ResourceCapabilities",
    "TypeSupport",
    "model_class",
    "release_from_version",
]

CASE_MANAGEMENT_TYPES = (
    "EpisodeOfCare",
    "CarePlan",
    "Goal",
    "ServiceRequest",
    "CareTeam",
    "Condition",
    "Encounter",
    "Task",
    "Provenance",
    "Patient",
)
# Search result parameters: they shape the answer, are never listed as searchParam, always allowed.
RESULT_PARAMETERS = frozenset(
    {
        "_count",
        "_sort",
        "_include",
        "_revinclude",
        "_summary",
        "_elements",
        "_total",
        "_contained",
        "_containedType",
        "_format",
        "_pretty",
    }
)


class FhirRelease(enum.StrEnum):
    """FHIR releases the adapter speaks; R4 uses the R4B models (fhir.resources has no R4 package)."""

    R4 = "R4"
    R4B = "R4B"
    R5 = "R5"


def release_from_version(fhir_version: str) -> FhirRelease:
    """``4.0.1`` → R4, ``4.3.0`` → R4B, ``5.0.0`` → R5; anything else is unsupported."""
    major_minor = ".".join(fhir_version.strip().split(".")[:2])
    if major_minor == "4.0":
        return FhirRelease.R4
    if major_minor in ("4.1", "4.3"):
        return FhirRelease.R4B
    if major_minor in ("4.2", "4.4", "4.5", "4.6", "5.0"):
        return FhirRelease.R5
    raise UnsupportedByServer(f"FHIR version {fhir_version!r} is not supported (R4, R4B and R5 are)")


@functools.cache
def model_class(release: FhirRelease, resource_type: str) -> type[Any]:
    """The fhir.resources model for ``resource_type`` in ``release`` (R4 → the R4B package).

    Kept once found: a check asks for it for every resource a pull takes in. A name without a model
    raises, so what is kept is bounded by the types the releases have.

    Raises ``UnsupportedByServer`` for a type the release does not have (a server may send one, an
    R5 type from an R4 server say), so that callers quarantine the resource rather than fail.
    """
    package = "fhir.resources" if release is FhirRelease.R5 else "fhir.resources.R4B"
    module = importlib.import_module(package)
    try:
        model: type[Any] = module.get_fhir_model_class(resource_type)
    except ValueError:  # what fhir.resources answers for a name it has no model for
        raise UnsupportedByServer(f"{resource_type} is not a {release} resource type") from None
    return model


@dataclass(frozen=True)
class ResourceCapabilities:
    """One ``rest.resource`` entry: interactions, search parameters and conditional support."""

    type: str
    interactions: frozenset[str] = frozenset()
    search_params: Mapping[str, str] = field(default_factory=dict)  # name → type
    search_include: tuple[str, ...] = ()
    search_revinclude: tuple[str, ...] = ()
    conditional_create: bool | None = None
    conditional_update: bool | None = None
    conditional_delete: str | None = None
    versioning: str | None = None

    @classmethod
    def from_statement(cls, entry: Mapping[str, Any]) -> ResourceCapabilities:
        params = _search_params(entry)
        return cls(
            type=entry["type"],
            interactions=frozenset(i.get("code") for i in entry.get("interaction") or [] if i.get("code")),
            search_params=params,
            search_include=tuple(entry.get("searchInclude") or ()),
            search_revinclude=tuple(entry.get("searchRevInclude") or ()),
            conditional_create=entry.get("conditionalCreate"),
            conditional_update=entry.get("conditionalUpdate"),
            conditional_delete=entry.get("conditionalDelete"),
            versioning=entry.get("versioning"),
        )


def _search_params(element: Mapping[str, Any]) -> Mapping[str, str]:
    """An element's ``searchParam`` list (a ``rest.resource``, or ``rest`` itself): name → type."""
    return MappingProxyType(
        {
            p["name"]: p.get("type", "")
            for p in element.get("searchParam") or []
            if isinstance(p, Mapping) and isinstance(p.get("name"), str)
        }
    )


class TypeSupport(BaseModel):
    """One row of the case-management view."""

    type: str
    declared: bool
    interactions: list[str]
    search_params: list[str]
    conditional_create: bool | None = None
    conditional_update: bool | None = None
    versioning: str | None = None


class CaseManagementView(BaseModel):
    """What matters to case management about a server, as ``fhir-cm capabilities`` prints it."""

    fhir_version: str
    release: str | None
    software: str | None
    software_version: str | None
    transaction: bool
    batch: bool
    patch_formats: list[str]
    types: list[TypeSupport]


def _param_base(name: str) -> str:
    """``patient:Patient.name`` → ``patient``; ``code:in`` → ``code``; ``_include:iterate`` → ``_include``."""
    return name.split(":", 1)[0].split(".", 1)[0]


@dataclass(frozen=True)
class Capabilities:
    """A parsed CapabilityStatement (server mode), with the checks the client runs before sending."""

    fhir_version: str
    software_name: str | None = None
    software_version: str | None = None
    formats: tuple[str, ...] = ()
    patch_formats: tuple[str, ...] = ()
    system_interactions: frozenset[str] = frozenset()
    resources: Mapping[str, ResourceCapabilities] = field(default_factory=dict)
    # ``rest.searchParam``: the parameters taken on every type (``_id``, ``_lastUpdated``…), which a
    # statement may declare there once rather than under each type.
    common_search_params: Mapping[str, str] = field(default_factory=dict)
    statement: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_statement(cls, statement: Mapping[str, Any]) -> Capabilities:
        """Parse a CapabilityStatement dict (only the first ``rest`` of mode ``server`` counts)."""
        if not isinstance(statement, Mapping) or statement.get("resourceType") != "CapabilityStatement":
            raise UnsupportedByServer("/metadata did not return a CapabilityStatement")
        try:
            return cls._parse(statement)
        except (AttributeError, TypeError, KeyError):  # an element of the wrong JSON type
            raise UnsupportedByServer("/metadata returned a CapabilityStatement that is not valid FHIR") from None

    @classmethod
    def _parse(cls, statement: Mapping[str, Any]) -> Capabilities:
        rests = [r for r in statement.get("rest") or [] if r.get("mode", "server") == "server"]
        rest: Mapping[str, Any] = rests[0] if rests else {}
        resources = {
            entry["type"]: ResourceCapabilities.from_statement(entry)
            for entry in rest.get("resource") or []
            if isinstance(entry, Mapping) and isinstance(entry.get("type"), str)
        }
        software = statement.get("software") or {}
        return cls(
            fhir_version=str(statement.get("fhirVersion") or ""),
            software_name=software.get("name"),
            software_version=software.get("version"),
            formats=tuple(statement.get("format") or ()),
            patch_formats=tuple(statement.get("patchFormat") or ()),
            system_interactions=frozenset(i.get("code") for i in rest.get("interaction") or [] if i.get("code")),
            resources=MappingProxyType(resources),
            common_search_params=_search_params(rest),
            statement=statement,
        )

    @property
    def release(self) -> FhirRelease | None:
        """The FHIR release, or None when the statement names a version the adapter does not speak."""
        try:
            return release_from_version(self.fhir_version)
        except UnsupportedByServer:
            return None

    @property
    def supports_transaction(self) -> bool:
        return "transaction" in self.system_interactions

    @property
    def supports_batch(self) -> bool:
        return "batch" in self.system_interactions

    def resource(self, resource_type: str) -> ResourceCapabilities | None:
        return self.resources.get(resource_type)

    def supports(self, resource_type: str, interaction: str) -> bool:
        """False only when the statement lists resources but not this type, or lists this type's
        interactions without ``interaction``."""
        if not self.resources:
            return True
        entry = self.resources.get(resource_type)
        if entry is None:
            return False
        return not entry.interactions or interaction in entry.interactions

    def ensure_supported(self, resource_type: str, interaction: str) -> None:
        """Raise ``UnsupportedByServer`` when the server says it does not do ``interaction`` on the type."""
        if not self.supports(resource_type, interaction):
            declared = resource_type in self.resources
            why = "does not list this interaction" if declared else "does not list this resource type"
            raise UnsupportedByServer(
                f"server does not support {interaction} on {resource_type}: its CapabilityStatement {why}",
                resource_type=resource_type,
            )

    def ensure_system(self, interaction: str) -> None:
        """Raise unless the server declares a system-level interaction (``transaction``, ``batch``)."""
        if interaction not in self.system_interactions:
            raise UnsupportedByServer(f"server does not declare the {interaction} interaction")

    def ensure_conditional(self, resource_type: str, kind: str) -> None:
        """Refuse a conditional create/update only when the statement says ``false`` explicitly."""
        entry = self.resources.get(resource_type)
        flag = getattr(entry, f"conditional_{kind}", None) if entry else None
        if flag is False:
            raise UnsupportedByServer(
                f"server does not support conditional {kind} on {resource_type}", resource_type=resource_type
            )

    def checks_if_match(self, resource_type: str) -> bool:
        """Whether the server promises to refuse an update whose ``If-Match`` is stale: only
        ``versioning: versioned-update`` says so (``versioned`` keeps histories, ``no-version`` not
        even that, and a statement silent on it promises nothing)."""
        entry = self.resources.get(resource_type)
        return entry is not None and entry.versioning == "versioned-update"

    def declares_search_param(self, resource_type: str, name: str) -> bool:
        """Whether the statement names ``name`` for the type or, in ``rest.searchParam``, for every type."""
        entry = self.resources.get(resource_type)
        return name in self.common_search_params or (entry is not None and name in entry.search_params)

    def unknown_search_params(self, resource_type: str, names: Iterable[str]) -> list[str]:
        """The names (with their modifiers) the server does not declare for ``resource_type``."""
        entry = self.resources.get(resource_type)
        if entry is None or not entry.search_params:
            return []
        return [
            name
            for name in names
            if (base := _param_base(name)) not in RESULT_PARAMETERS
            and not self.declares_search_param(resource_type, base)
        ]

    def unknown_includes(self, resource_type: str, kind: str, specs: Iterable[str]) -> list[str]:
        """``_include``/``_revinclude`` values not declared in ``searchInclude``/``searchRevInclude``."""
        entry = self.resources.get(resource_type)
        declared = (entry.search_include if kind == "_include" else entry.search_revinclude) if entry else ()
        if not declared or "*" in declared:
            return []
        return [spec for spec in specs if spec not in declared]

    def ensure_search(self, resource_type: str, params: Iterable[tuple[str, str]]) -> None:
        """Refuse a search the server would answer with 400 (HAPI) or silently ignore (others)."""
        self.ensure_supported(resource_type, "search-type")
        params = list(params)
        unknown = self.unknown_search_params(resource_type, (name for name, _ in params))
        for kind in ("_include", "_revinclude"):
            specs = [value for name, value in params if _param_base(name) == kind]
            unknown += [f"{kind}={spec}" for spec in self.unknown_includes(resource_type, kind, specs)]
        if unknown:
            raise UnsupportedByServer(
                f"server does not declare search parameter(s) {', '.join(sorted(set(unknown)))} on {resource_type}",
                resource_type=resource_type,
            )

    def case_management_view(self, types: Iterable[str] = CASE_MANAGEMENT_TYPES) -> CaseManagementView:
        """Per-type support for the case-management resources, plus version and bundle support."""
        rows = []
        for name in types:
            entry = self.resources.get(name)
            rows.append(
                TypeSupport(
                    type=name,
                    declared=entry is not None,
                    interactions=sorted(entry.interactions) if entry else [],
                    search_params=sorted({*entry.search_params, *self.common_search_params}) if entry else [],
                    conditional_create=entry.conditional_create if entry else None,
                    conditional_update=entry.conditional_update if entry else None,
                    versioning=entry.versioning if entry else None,
                )
            )
        release = self.release
        return CaseManagementView(
            fhir_version=self.fhir_version,
            release=release.value if release else None,
            software=self.software_name,
            software_version=self.software_version,
            transaction=self.supports_transaction,
            batch=self.supports_batch,
            patch_formats=list(self.patch_formats),
            types=rows,
        )
