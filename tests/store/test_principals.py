"""API keys: shown once, hashed at rest, found by their id, refused when wrong or revoked."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import text

from fhir_cm.store import (
    ApiRole,
    NotFound,
    Store,
    authenticate_api_key,
    create_api_key,
    get_api_key,
    list_api_keys,
    revoke_api_key,
)


def test_a_key_authenticates_as_its_principal(store: Store) -> None:
    with store.session() as s:
        created, secret = create_api_key(s, name="Ann", role=ApiRole.CASE_MANAGER, practitioner_id="cm-1")
    with store.session() as s:
        found = authenticate_api_key(s, secret)
    assert found == created
    assert (found.role, found.practitioner_id, found.active) == (ApiRole.CASE_MANAGER, "cm-1", True)
    assert secret.startswith(f"fcm_{created.key_id}_")


def test_only_a_hash_is_stored(store: Store) -> None:
    with store.session() as s:
        _, secret = create_api_key(s, name="svc", role=ApiRole.SERVICE)
    with store.session() as s:
        rows = s.execute(text("SELECT * FROM api_keys")).mappings().all()
    assert len(rows) == 1
    assert secret not in str(dict(rows[0]))
    assert rows[0]["key_hash"] == hashlib.sha256(secret.encode()).hexdigest()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k[:-1] + ("x" if k[-1] != "x" else "y"),
        lambda k: k + "x",
        str.upper,
        lambda k: "",
        lambda k: "fcm_0000000000000000_" + k.rsplit("_", 1)[1],
    ],
)
def test_wrong_keys_authenticate_as_nobody(store: Store, mangle) -> None:  # type: ignore[no-untyped-def]
    with store.session() as s:
        _, secret = create_api_key(s, name="svc", role=ApiRole.SERVICE)
        assert authenticate_api_key(s, mangle(secret)) is None


def test_a_revoked_key_authenticates_as_nobody(store: Store) -> None:
    with store.session() as s:
        created, secret = create_api_key(s, name="svc", role=ApiRole.SERVICE)
        revoked = revoke_api_key(s, created.key_id)
        assert revoked.revoked_at is not None and not revoked.active
        assert authenticate_api_key(s, secret) is None
        # Revoking again keeps the first time.
        assert revoke_api_key(s, created.key_id).revoked_at == revoked.revoked_at


def test_revoking_an_unknown_key_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound), store.session() as s:
        revoke_api_key(s, "0123456789abcdef")


def test_a_case_manager_key_needs_a_practitioner(store: Store) -> None:
    with pytest.raises(ValueError, match="practitioner"), store.session() as s:
        create_api_key(s, name="x", role=ApiRole.CASE_MANAGER)


def test_listing_shows_every_key_without_secrets(store: Store) -> None:
    with store.session() as s:
        a, _ = create_api_key(s, name="a", role=ApiRole.SUPERVISOR, programme="health-care")
        b, _ = create_api_key(s, name="b", role=ApiRole.SERVICE)
        revoke_api_key(s, b.key_id)
    with store.session() as s:
        assert {k.key_id for k in list_api_keys(s)} == {a.key_id, b.key_id}
        assert [k.key_id for k in list_api_keys(s, include_revoked=False)] == [a.key_id]
        assert get_api_key(s, a.key_id) == a
        assert get_api_key(s, "ffffffffffffffff") is None
