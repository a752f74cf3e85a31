"""The worker when its database goes away (PostgreSQL stopped, the database dropped, the disk full):
each failed round's log line says why — what an operator reading the worker's log acts on."""

from __future__ import annotations

import asyncio
import logging

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from fhir_cm.config import Settings
from fhir_cm.jobs import run_sync_worker
from fhir_cm.store import open_store
from tests.pg import require_postgres, temporary_database

pytestmark = [pytest.mark.server, pytest.mark.postgres]


async def test_a_round_failing_on_the_database_logs_its_cause(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    admin = require_postgres()
    rounds = 0

    async def pause(stop: asyncio.Event, _seconds: float) -> None:
        nonlocal rounds
        rounds += 1
        if rounds == 2:
            stop.set()

    with temporary_database() as url, open_store(url) as store:
        name = make_url(url).database or ""
        with psycopg.connect(host=admin.host, port=admin.port, user=admin.username, dbname=admin.database) as conn:
            conn.autocommit = True
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        with caplog.at_level(logging.WARNING, logger="fhir_cm.sync"):
            await run_sync_worker(store, settings.model_copy(update={"database_url": url}), pause=pause)

    failed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sync round failed")]
    assert len(failed) == 2
    assert all(f'database "{name}" does not exist' in line for line in failed), failed
