"""Upgrading a store whose candidates were ranked before scopes were kept: the rows stay, with no scope
(which run made them was not recorded), and the next ranking writes its own, on both backends."""

from __future__ import annotations

import datetime as dt

from alembic import command
from sqlalchemy import text

from fhir_cm.store import CandidateRecord, alembic_config, list_candidates, open_store, replace_candidates
from fhir_cm.store._engine import make_engine

SERVER = "https://hospital.example/fhir"
ON = dt.date(2026, 12, 1)


def test_candidates_ranked_before_keep_their_rows_with_no_scope(empty_url: str) -> None:
    engine = make_engine(empty_url)
    with engine.connect() as conn, conn.begin():
        command.upgrade(alembic_config(connection=conn), "0025_subscription_event_64")
        for patient, score in (("a", 3), ("b", 5)):
            conn.execute(
                text(
                    "INSERT INTO candidates (server_base, patient_id, score, reasons, assessed_on, case_id, updated_at)"
                    " VALUES (:server, :patient, :score, '[]', :on, NULL, :at)"
                ),
                {"server": SERVER, "patient": patient, "score": score, "on": ON, "at": dt.datetime(2026, 12, 1, 9)},
            )
    engine.dispose()

    with open_store(empty_url) as store:
        with store.session(read_only=True) as s:
            before = [(c.patient_id, c.score, c.scope) for c in list_candidates(s, SERVER)]
        with store.session() as s:
            ranked = CandidateRecord(
                server_base=SERVER, patient_id="a", score=4, reasons=[], assessed_on=ON, scope="Group/north"
            )
            replace_candidates(s, SERVER, ["a"], [ranked])
        with store.session(read_only=True) as s:
            after = [(c.patient_id, c.score, c.scope) for c in list_candidates(s, SERVER)]
    assert before == [("b", 5, None), ("a", 3, None)]
    assert after == [("b", 5, None), ("a", 4, "Group/north")]
