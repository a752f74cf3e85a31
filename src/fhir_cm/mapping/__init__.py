"""Domain ⇄ FHIR (R4 and R5), on plain JSON dicts, never dropping what it does not own.

A case becomes an EpisodeOfCare, one CarePlan, one CareTeam, a Condition per need, a Goal per goal,
a ServiceRequest + Task per referral, a Communication per contact and an Encounter per stay; every
one carries the business identifier ``<identifier_system>|<entity id>``. Updates start from the last
known server copy and change only what the domain changed. Codes come from ``mappings/`` through
:mod:`fhir_cm.terminology`. This layer imports only the domain and the terminology.
"""

from ._base import (
    AUTO_FHIR_VERSION,
    DEFAULT_FHIR_VERSION,
    FhirVersion,
    MappingError,
    ResourceKey,
    UnreadableResourceError,
    UnsupportedVersionError,
    check_version,
    explicit_fhir_version,
    fhir_version_without_server,
)
from ._bundle import case_to_bundle
from ._careplan import render_narrative, xhtml_text
from ._case import CaseReads, case_plan, case_to_resources, read_resource, resources_to_case
from ._entries import PlannedEntry, if_none_exist, plan_entry, same_content
from ._encounter import recognise_disposition, recognise_setting
from ._json import read_date, read_day
from ._keys import careplan_key, careteam_key, episode_key, resource_key, task_key
from ._refs import (
    ELSEWHERE,
    PATIENT_PATHS,
    References,
    foreign_reference,
    base_key,
    full_url_bases,
    iter_references,
    local_reference,
    parse_reference,
    party_reference,
    patient_of,
    reference_base,
    read_party,
    replace_references,
)
from ._written import dates_as_written, keep_dates_as_written
from ._versions import (
    Elem,
    UnrepresentableElementError,
    UnsupportedResourceError,
    VersionConversionError,
    convert_resource,
    element_map,
    model_class,
)

__all__ = [
    "ELSEWHERE",
    "AUTO_FHIR_VERSION",
    "CaseReads",
    "Elem",
    "DEFAULT_FHIR_VERSION",
    "PATIENT_PATHS",
    "FhirVersion",
    "MappingError",
    "References",
    "ResourceKey",
    "UnreadableResourceError",
    "UnrepresentableElementError",
    "UnsupportedResourceError",
    "UnsupportedVersionError",
    "VersionConversionError",
    "careplan_key",
    "careteam_key",
    "case_plan",
    "case_to_bundle",
    "dates_as_written",
    "keep_dates_as_written",
    "PlannedEntry",
    "plan_entry",
    "same_content",
    "case_to_resources",
    "check_version",
    "convert_resource",
    "episode_key",
    "explicit_fhir_version",
    "fhir_version_without_server",
    "foreign_reference",
    "base_key",
    "full_url_bases",
    "if_none_exist",
    "iter_references",
    "local_reference",
    "parse_reference",
    "party_reference",
    "patient_of",
    "read_date",
    "read_day",
    "read_party",
    "read_resource",
    "replace_references",
    "recognise_disposition",
    "reference_base",
    "recognise_setting",
    "render_narrative",
    "xhtml_text",
    "resource_key",
    "resources_to_case",
    "task_key",
    "element_map",
    "model_class",
]
