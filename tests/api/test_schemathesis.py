"""Property-based fuzzing of every operation in the OpenAPI document: the document tells the truth.

Schemathesis generates requests from the schema — valid and invalid bodies, parameters and headers —
and sends them, as a supervisor of all programmes and as a case manager, to an app on a store
holding a few synthetic cases, and runs **every check** on each answer: no server error, status codes,
content types, headers (``Allow`` on 405) and bodies as documented, schema-violating input refused,
schema-valid input accepted. Bounded: a few examples per operation, mode and role. (Schemathesis' own
pytest plugin does not run on this pytest; its strategies are used directly.)

One setting, and why: a schema-valid request may still be answered 412 (an ``If-Match`` naming a
revision that is no longer current) or 422 (a rule across fields or over the stored case — a goal
needs a start or a due date, a referral's stay must exist, a status change cannot predate the
current one — which JSON Schema cannot state); both are documented answers, so the positive-data
check counts them among the expected ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from fhir_cm.api import create_app
from fhir_cm.config import Settings
from fhir_cm.store import ApiRole, Store, create_api_key, open_store, save_case
from fhir_cm.synthetic import generate_cases

from .conftest import TODAY

EXAMPLES = 8
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "412", "422", "429"]
            }
        }
    }
)


def _labels() -> list[str]:
    with open_store("sqlite://") as store:
        document = create_app(Settings(database_url="sqlite://"), store=store).openapi()
    return [op.ok().label for op in schemathesis.openapi.from_dict(document).get_all_operations()]


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, str], str]]:
    """A schema bound to an app with three synthetic cases, a key per role, and one case's id."""
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    store: Store
    with open_store(f"sqlite:///{path}") as store:
        with store.session() as s:
            cases = list(generate_cases(3, seed=7))
            for case in cases:
                save_case(s, case)
            _, supervisor = create_api_key(s, name="fuzzer", role=ApiRole.SUPERVISOR)
            manager = cases[0].case_manager
            assert manager is not None
            _, case_manager = create_api_key(s, name="fuzzer-cm", role=ApiRole.CASE_MANAGER, practitioner_id=manager.id)
        app = create_app(Settings(database_url="sqlite://", fhir_base=None), store=store, clock=lambda: TODAY)
        keys = {"supervisor": supervisor, "case-manager": case_manager}
        yield schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG), keys, cases[0].id


@pytest.mark.parametrize("role", ["supervisor", "case-manager"])
@pytest.mark.parametrize("label", _labels())
def test_every_answer_is_as_documented(fuzz_env: tuple[Any, dict[str, str], str], label: str, role: str) -> None:
    schema, keys, case_id = fuzz_env
    key = keys[role]
    operation = schema.find_operation_by_label(label)
    headers = {"Authorization": f"Bearer {key}"}
    strategies = [operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)]
    if "{case_id}" in operation.path:
        # Random ids mostly meet a 404; aim at a real case too, so the handlers' own checks run.
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters={"case_id": case_id}))
    cases = st.one_of(strategies)

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    def fuzz(case: Any) -> None:
        response = case.call(headers={**headers, **(case.headers or {})})
        case.validate_response(response, headers={**headers, **(case.headers or {})})  # every check
        if response.status_code >= 400 and not case.path.startswith("/fhir"):
            media = response.headers.get("content-type")
            media = media[0] if isinstance(media, list) else media
            assert media == "application/problem+json", (case.path, response.status_code)

    fuzz()
