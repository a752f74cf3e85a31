"""Watermarks: per server and type, kept as the server wrote them, never moving back."""

from __future__ import annotations

import pytest

from fhir_cm.store import Store, get_watermark, set_watermark

HAPI = "http://hapi.example/fhir"


def test_a_watermark_is_kept_per_server_and_type(store: Store) -> None:
    with store.session() as s:
        assert get_watermark(s, HAPI, "Encounter") is None
        assert set_watermark(s, HAPI, "Encounter", "2024-05-01T10:00:00.123+02:00") == "2024-05-01T10:00:00.123+02:00"
        set_watermark(s, "https://other.example/fhir", "Encounter", "2030-01-01T00:00:00Z")
        set_watermark(s, HAPI, "CarePlan", "2020-01-01T00:00:00Z")
    with store.session(read_only=True) as s:
        assert get_watermark(s, HAPI + "/", "Encounter") == "2024-05-01T10:00:00.123+02:00"
        assert get_watermark(s, HAPI, "CarePlan") == "2020-01-01T00:00:00Z"


def test_it_only_moves_forward_comparing_instants_not_text(store: Store) -> None:
    with store.session() as s:
        set_watermark(s, HAPI, "Goal", "2024-05-01T10:00:00+02:00")  # 08:00Z
        # Later as text, earlier as an instant (07:30Z): ignored.
        assert set_watermark(s, HAPI, "Goal", "2024-05-01T09:30:00+02:00") == "2024-05-01T10:00:00+02:00"
        assert set_watermark(s, HAPI, "Goal", "2024-05-01T07:59:59Z") == "2024-05-01T10:00:00+02:00"
        # Earlier as text, later as an instant (08:30Z): taken.
        assert set_watermark(s, HAPI, "Goal", "2024-05-01T08:30:00Z") == "2024-05-01T08:30:00Z"
    with store.session(read_only=True) as s:
        assert get_watermark(s, HAPI, "Goal") == "2024-05-01T08:30:00Z"


def test_a_watermark_must_be_an_instant(store: Store) -> None:
    with pytest.raises(ValueError, match="not a FHIR instant"), store.session() as s:
        set_watermark(s, HAPI, "Goal", "yesterday")


def test_watermarks_are_forgotten_by_the_start_of_their_key_server_by_server(store: Store) -> None:
    """Screening forgets the watermarks of facts kept under other rules (``identify.v3.<digest>:``) or
    by an earlier generation (``identify:``); its own, the pulls' and another server's stay."""
    from fhir_cm.store import forget_watermarks

    keys = [
        "identify:system",
        "identify.v2:system",
        "identify.v3.00000000:Group/g",
        "identify.v3.abc:system",
        "Patient",
    ]
    with store.session() as s:
        for key in keys:
            set_watermark(s, HAPI, key, "2026-06-01T10:00:00Z")
        set_watermark(s, "https://other.example/fhir", "identify:system", "2026-06-01T10:00:00Z")
    with store.session() as s:
        assert forget_watermarks(s, HAPI, starting="identify", keeping="identify.v3.abc:") == sorted(keys[:3])
        assert forget_watermarks(s, HAPI, starting="identify_", keeping="x") == []  # a LIKE wildcard is a character
    with store.session(read_only=True) as s:
        assert [get_watermark(s, HAPI, k) is not None for k in keys] == [False, False, False, True, True]
        assert get_watermark(s, "https://other.example/fhir", "identify:system") is not None
