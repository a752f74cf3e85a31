"""Transaction limits per server: remembered between runs, replaced when learnt anew, forgettable."""

from __future__ import annotations

import pytest

from fhir_cm.store import Store, forget_server_limit, get_server_limit, set_server_limit

MEDPLUM = "https://api.medplum.example/fhir/R4"
REASON = "400 Transaction requires strict isolation but has too many entries"


def test_a_limit_is_kept_per_server_base(store: Store) -> None:
    with store.session() as s:
        assert get_server_limit(s, MEDPLUM) is None
        set_server_limit(s, MEDPLUM + "/", 8, REASON)
        set_server_limit(s, "http://hapi.example/fhir", 0, "405 transactions not supported")
    with store.session(read_only=True) as s:
        medplum = get_server_limit(s, MEDPLUM)
        hapi = get_server_limit(s, "http://hapi.example/fhir/")
    assert medplum is not None and (medplum.max_transaction_entries, medplum.reason) == (8, REASON)
    assert medplum.server_base == MEDPLUM and medplum.learnt_at.tzinfo is not None
    assert hapi is not None and hapi.max_transaction_entries == 0


def test_a_limit_learnt_again_replaces_the_old_one_and_can_be_forgotten(store: Store) -> None:
    with store.session() as s:
        set_server_limit(s, MEDPLUM, 8, REASON)
        again = set_server_limit(s, MEDPLUM, 4, "x" * 500)
    assert again.max_transaction_entries == 4 and len(again.reason or "") == 300
    with store.session() as s:
        assert forget_server_limit(s, MEDPLUM) is True
        assert forget_server_limit(s, MEDPLUM) is False
        assert get_server_limit(s, MEDPLUM) is None


def test_a_limit_is_never_negative(store: Store) -> None:
    with pytest.raises(ValueError), store.session() as s:
        set_server_limit(s, MEDPLUM, -1, None)
