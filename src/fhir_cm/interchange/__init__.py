"""Files in and out of the store: ``fhir-cm import`` and ``fhir-cm export``.

Import reads FHIR resources and Bundles (R4 or R5) — and the domain's case JSON — groups the
resources into cases, reads what the domain understands and stores *every* resource raw with its
version, so nothing is lost. Export gives each case back as a ``collection`` Bundle: what was
imported comes back as it came, with only what the domain changed since written into it. Sits above
the mapping and the store, below the CLI.
"""

from ._errors import BadInputError, InterchangeError, UnknownCaseError
from ._export import EXPORT_CHUNK, case_resources, export_cases, write_export
from ._import import ImportReport, import_files
from ._view import DEFAULT_PROGRAMME

__all__ = [
    "DEFAULT_PROGRAMME",
    "EXPORT_CHUNK",
    "BadInputError",
    "ImportReport",
    "InterchangeError",
    "UnknownCaseError",
    "case_resources",
    "export_cases",
    "import_files",
    "write_export",
]
