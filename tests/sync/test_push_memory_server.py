"""The push's server tests against the third reference server of the push benchmark: a
single-threaded in-memory FHIR server (``tests/memory_server.py``) that takes a conditional create
for every type — so here, unlike on sekmet, Goal and CareTeam are found by identifier too.

The benchmark's figures for that server mean something only if the push lands there exactly as on
the others: the same tests, the same assertions, this server under them.
"""

from __future__ import annotations


import pytest

from tests.servers import RunningServer
from tests.sync.test_push import (  # noqa: F401  (collected here again, against this server)
    cases,
    test_a_clash_with_a_server_edit_is_recorded_as_a_conflict_and_not_overwritten,
    test_a_local_edit_gives_new_versions_to_the_changed_resources_only,
    test_a_push_from_a_brand_new_store_duplicates_nothing,
    test_a_second_push_changes_nothing_and_makes_no_new_versions,
    test_a_server_edit_to_an_element_the_adapter_does_not_own_survives_a_local_update,
    test_each_transaction_carries_a_provenance_naming_the_adapter_and_the_case_manager,
    test_pipelined_waves_and_batches_land_whole_and_a_second_store_adds_nothing,
    test_push_creates_every_resource_exactly_once_with_resolving_references,
)

pytestmark = pytest.mark.server


@pytest.fixture
def fhir_server(memory_fhir: RunningServer) -> str:
    return memory_fhir.base_url
