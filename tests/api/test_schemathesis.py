"""Property-based fuzzing of every operation in the OpenAPI document: no input makes the server fail.

Schemathesis generates requests from the schema — valid and invalid bodies, parameters and headers —
and sends them, authenticated as a supervisor of all programmes so they reach the handlers, to an
app on a store holding a few synthetic cases. Bounded: a few examples per operation and mode.
(Schemathesis' own pytest plugin does not run on this pytest; its strategies are used directly.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from fhir_cm.api import create_app
from fhir_cm.config import Settings
from fhir_cm.store import ApiRole, Store, create_api_key, open_store, save_case
from fhir_cm.synthetic import generate_cases

from .conftest import TODAY

EXAMPLES = 8


def _labels() -> list[str]:
    with open_store("sqlite://") as store:
        document = create_app(Settings(database_url="sqlite://"), store=store).openapi()
    return [op.ok().label for op in schemathesis.openapi.from_dict(document).get_all_operations()]


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, str]]:
    """A schema bound to an app with three synthetic cases, a supervisor key, and one case's id."""
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    store: Store
    with open_store(f"sqlite:///{path}") as store:
        with store.session() as s:
            cases = list(generate_cases(3, seed=7))
            for case in cases:
                save_case(s, case)
            _, key = create_api_key(s, name="fuzzer", role=ApiRole.SUPERVISOR)
        app = create_app(Settings(database_url="sqlite://", fhir_base=None), store=store, clock=lambda: TODAY)
        yield schemathesis.openapi.from_asgi("/openapi.json", app), key, cases[0].id


@pytest.mark.parametrize("label", _labels())
def test_no_input_makes_the_server_fail(fuzz_env: tuple[Any, str, str], label: str) -> None:
    schema, key, case_id = fuzz_env
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
        case.validate_response(response, checks=[not_a_server_error])
        if response.status_code >= 400 and not case.path.startswith("/fhir"):
            media = response.headers.get("content-type")
            media = media[0] if isinstance(media, list) else media
            assert media == "application/problem+json", (case.path, response.status_code)

    fuzz()
