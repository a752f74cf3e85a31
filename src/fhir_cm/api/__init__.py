"""fhir_cm.api: the FastAPI service — the case-management API, caseload and outcomes, sync control,
health and metrics, and the read-only FHIR facade — behind API keys with roles.

Build it with ``create_app(settings)``; run it with ``fhir-cm serve``.
"""

from ._access import can_see
from ._app import API_PREFIX, app_from_environment, create_app
from ._auth import Principal
from ._deps import (
    require_case_worker,
    require_fhir_reader,
    require_supervisor,
)
from ._logging import JsonFormatter, configure_logging
from ._problems import (
    PROBLEM_JSON,
    BadGateway,
    ConflictProblem,
    FieldError,
    ForbiddenProblem,
    InvalidInput,
    NotFoundProblem,
    NotImplementedProblem,
    PreconditionFailed,
    Problem,
    ProblemDocument,
    UnauthorizedProblem,
    Unavailable,
)

__all__ = [
    "app_from_environment",
    "API_PREFIX",
    "PROBLEM_JSON",
    "BadGateway",
    "ConflictProblem",
    "FieldError",
    "ForbiddenProblem",
    "InvalidInput",
    "JsonFormatter",
    "NotFoundProblem",
    "NotImplementedProblem",
    "PreconditionFailed",
    "Principal",
    "Problem",
    "ProblemDocument",
    "UnauthorizedProblem",
    "Unavailable",
    "can_see",
    "configure_logging",
    "create_app",
    "require_case_worker",
    "require_fhir_reader",
    "require_supervisor",
]
