"""The days a case's resources wrote as a year or a month, stored with the case (``cases.dates_as_written``):
kept while the day they point at stays, gone once someone changes it, and worked out for the cases a
store held before the column, on both backends."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from alembic import command

from fhir_cm.config import DEFAULT_IDENTIFIER_SYSTEM
from fhir_cm.domain import Case, Contact
from fhir_cm.mapping import case_to_bundle
from fhir_cm.store import (
    CaseCache,
    OutboxStatus,
    Store,
    alembic_config,
    get_case_record,
    list_case_records,
    list_outbox,
    open_store,
    save_case,
)
from fhir_cm.store._engine import make_engine
from tests.api.test_follow_ups_as_written import FOLLOWED, due_in_july

JULY = {"/referrals/0/due": "2025-07"}
#: ``FOLLOWED`` as its resources read: the follow-up due by the end of July.
HELD = FOLLOWED.model_copy(
    update={"referrals": [FOLLOWED.referrals[0].model_copy(update={"due": dt.date(2025, 7, 31)})]}
)


def _record(store: Store) -> tuple[int, dict[str, str]]:
    with store.session(read_only=True) as s:
        record = get_case_record(s, FOLLOWED.id)
    assert record is not None
    return record.revision, record.dates_as_written


def test_what_was_written_stays_while_its_day_does(store: Store) -> None:
    with store.session() as s:
        save_case(s, HELD, written=JULY)
    assert _record(store) == (1, JULY)
    seen = HELD.model_copy(update={"contacts": [Contact(date=dt.date(2025, 6, 25), mode="face-to-face")]})
    with store.session() as s:  # a change elsewhere in the case: carried along
        save_case(s, seen)
    assert _record(store) == (2, JULY)
    with store.session(read_only=True) as s:  # through the case cache too
        cache = CaseCache()
        for _ in range(2):
            [record] = list_case_records(s, cache=cache)
            assert record.dates_as_written == JULY

    moved = seen.model_copy(update={"referrals": [seen.referrals[0].model_copy(update={"due": dt.date(2025, 7, 20)})]})
    with store.session() as s:  # the day changed: it is the case's own
        save_case(s, moved)
    assert _record(store) == (3, {})
    with store.session() as s:  # and the day put back is still the case's own
        save_case(s, seen)
    assert _record(store) == (4, {})


def test_a_change_of_what_was_written_alone_raises_the_revision_and_queues_no_push(store: Store) -> None:
    """Readers keep what they show by revision (the caseload's parts): the revision moves; the case's
    content is the same, so nothing is pushed."""
    with store.session() as s:
        save_case(s, HELD, enqueue=False)
        assert save_case(s, HELD, written={}) == 1
        assert save_case(s, HELD, written=JULY) == 2
        assert save_case(s, HELD) == 2
    with store.session(read_only=True) as s:
        assert list_outbox(s, status=OutboxStatus.PENDING) == []
    assert _record(store) == (2, JULY)


def _hospital_rows() -> list[dict[str, Any]]:
    """``FOLLOWED``'s resources as an import before the column stored them, the follow-up due in July."""
    bundle = case_to_bundle(FOLLOWED, "R4", DEFAULT_IDENTIFIER_SYSTEM)
    rows = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        due_in_july(resource)
        key = resource["identifier"][0]["value"]
        rows.append({"resource_type": resource["resourceType"], "key": key, "case_id": FOLLOWED.id, "raw": resource})
    return rows


def test_upgrading_works_out_what_the_stored_resources_wrote(empty_url: str) -> None:
    plain = Case.model_validate({**HELD.model_dump(mode="json"), "id": "case-plain"})
    now = dt.datetime(2025, 6, 30, 12, 0)
    cases = sa.table(
        "cases",
        *(
            sa.column(c)
            for c in ("case_id", "patient_id", "programme", "status", "revision", "created_at", "updated_at")
        ),
        sa.column("data", sa.JSON),
    )
    resources = sa.table(
        "resources",
        *(sa.column(c) for c in ("resource_type", "key", "case_id", "fhir_version", "content_hash", "updated_at")),
        sa.column("raw", sa.JSON),
    )
    engine = make_engine(empty_url)
    with engine.connect() as conn, conn.begin():
        command.upgrade(alembic_config(connection=conn), "0025_subscription_event_64")
        for case in (HELD, plain):
            conn.execute(
                cases.insert().values(
                    case_id=case.id,
                    patient_id=case.patient.id,
                    programme=case.programme.value,
                    status=case.status.value,
                    revision=1,
                    created_at=now,
                    updated_at=now,
                    data=case.model_dump(mode="json"),
                )
            )
        conn.execute(
            resources.insert(),
            [{**row, "fhir_version": "R4", "content_hash": "x", "updated_at": now} for row in _hospital_rows()],
        )
    engine.dispose()

    with open_store(empty_url) as store:
        assert _record(store) == (1, JULY)
        with store.session(read_only=True) as s:
            other = get_case_record(s, "case-plain")
        assert other is not None and other.dates_as_written == {}
