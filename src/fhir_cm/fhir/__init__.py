"""fhir_cm.fhir: the FHIR client the sync layer stands on, made to survive real servers.

One pooled async HTTP client (plus a blocking facade for the CLI); capabilities read once from
``/metadata`` and enforced; fluent, streaming, origin-safe searches with lenient validation;
versioned and conditional writes; transaction/batch bundles that degrade safely; one error
hierarchy; retries only where repeating is safe; none/bearer/basic/SMART Backend Services auth.
"""

from ._auth import BearerAuth, SmartBackendAuth, header_token
from ._bundles import BundleEntry
from ._capabilities import (
    CASE_MANAGEMENT_TYPES,
    Capabilities,
    CaseManagementView,
    FhirRelease,
    ResourceCapabilities,
    TypeSupport,
    model_class,
    release_from_version,
)
from ._bulk import (
    BulkExport,
    BulkExportFailed,
    BulkFile,
    BulkManifest,
    BulkRequest,
    BulkSettings,
    NotNdjson,
    PagedPopulation,
    bulk_export,
    missing_group,
    read_population,
)
from ._client import AsyncFhirClient
from ._validate import validate
from ._config import auth_from_settings, check_fhir_settings, client_from_settings, sync_client_from_settings
from ._errors import (
    AmbiguousMatch,
    Conflict,
    FhirError,
    Forbidden,
    InvalidRequest,
    InvalidResource,
    InvalidResponse,
    PageLimitExceeded,
    PagingError,
    PayloadTooLarge,
    ResourceGone,
    ResourceNotFound,
    TransientError,
    Unauthorized,
    UnsafeLink,
    UnsupportedByServer,
    VersionConflict,
)
from ._limits import TransactionLimit
from ._reasons import ServerReason, server_reason, server_warnings
from ._words import a_resource
from ._results import BundleResult, WriteResult
from ._retry import DEFAULT_RETRY, NO_RETRY, RetryPolicy
from ._search import HistorySet, Page, Quarantined, SearchSet
from ._sync import FhirClient, SyncSearchSet
from ._urls import check_id, safe_for_tokens

__all__ = [
    "a_resource",
    "AmbiguousMatch",
    "AsyncFhirClient",
    "BearerAuth",
    "BulkExport",
    "BulkExportFailed",
    "BulkFile",
    "BulkManifest",
    "BulkRequest",
    "BulkSettings",
    "BundleEntry",
    "BundleResult",
    "CASE_MANAGEMENT_TYPES",
    "Capabilities",
    "CaseManagementView",
    "Conflict",
    "DEFAULT_RETRY",
    "FhirClient",
    "FhirError",
    "FhirRelease",
    "Forbidden",
    "HistorySet",
    "InvalidRequest",
    "InvalidResource",
    "InvalidResponse",
    "NO_RETRY",
    "NotNdjson",
    "Page",
    "PageLimitExceeded",
    "PagedPopulation",
    "PagingError",
    "PayloadTooLarge",
    "Quarantined",
    "ResourceCapabilities",
    "ResourceGone",
    "ResourceNotFound",
    "RetryPolicy",
    "SearchSet",
    "ServerReason",
    "SmartBackendAuth",
    "SyncSearchSet",
    "TransactionLimit",
    "TransientError",
    "TypeSupport",
    "Unauthorized",
    "UnsafeLink",
    "UnsupportedByServer",
    "VersionConflict",
    "WriteResult",
    "auth_from_settings",
    "bulk_export",
    "missing_group",
    "check_fhir_settings",
    "check_id",
    "client_from_settings",
    "header_token",
    "model_class",
    "validate",
    "read_population",
    "release_from_version",
    "safe_for_tokens",
    "server_reason",
    "server_warnings",
    "sync_client_from_settings",
]
