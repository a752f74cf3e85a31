"""``cases.dates_as_written``: the days of each case its stored resources wrote as a year or a month
(JSON pointer into the case → the date as written), so a list of cases (the caseload) can say them
without reading any case's resources.

The upgrade fills it for the cases already stored, from their stored resources, as a case's read
(``GET /api/v1/cases/{id}``) works it out. Unlike the quarantine's keys (0022), which a copy of the
code works out, this is derived data that the next pull or import of a case works out again: it is
the current reading's (``mapping.dates_as_written``), so the two never disagree. A case this version
cannot read is left empty, as its read is refused.

Revision ID: 0027_case_dates_as_written
Revises: 0026_candidate_scope
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from pydantic import ValidationError

from fhir_cm.config import DEFAULT_IDENTIFIER_SYSTEM
from fhir_cm.domain import Case
from fhir_cm.mapping import ResourceKey, dates_as_written

revision: str = "0027_case_dates_as_written"
down_revision: str | None = "0026_candidate_scope"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Cases read per batch (each with all its resources).
BATCH = 200

_CASES = sa.table(
    "cases", sa.column("case_id", sa.String), sa.column("data", sa.JSON), sa.column("dates_as_written", sa.JSON)
)
_RESOURCES = sa.table(
    "resources",
    sa.column("case_id", sa.String),
    sa.column("resource_type", sa.String),
    sa.column("key", sa.String),
    sa.column("fhir_version", sa.String),
    sa.column("raw", sa.JSON),
)


def _written(data: Any, stored: dict[ResourceKey, tuple[Any, Any]]) -> dict[str, str]:
    try:
        case = Case.model_validate(data)
    except ValidationError:
        return {}
    # Reading a date names no identifier: the system is only written into resources made here.
    return dates_as_written(case, stored, DEFAULT_IDENTIFIER_SYSTEM)


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("dates_as_written", sa.JSON(none_as_null=True), nullable=True))
    conn = op.get_bind()
    last = ""
    while True:
        rows = conn.execute(
            sa.select(_CASES.c.case_id, _CASES.c.data)
            .where(_CASES.c.case_id > last)
            .order_by(_CASES.c.case_id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        stored: dict[str, dict[ResourceKey, tuple[Any, Any]]] = {}
        held = sa.select(_RESOURCES).where(_RESOURCES.c.case_id.in_([row.case_id for row in rows]))
        for r in conn.execute(held):
            stored.setdefault(r.case_id, {})[ResourceKey(r.resource_type, r.key)] = (r.fhir_version, r.raw)
        values = []
        for row in rows:
            written = _written(row.data, stored[row.case_id]) if row.case_id in stored else {}
            if written:
                values.append({"b_case_id": row.case_id, "written": written})
        if values:
            conn.execute(
                _CASES.update()
                .where(_CASES.c.case_id == sa.bindparam("b_case_id"))
                .values(dates_as_written=sa.bindparam("written")),
                values,
            )
        last = rows[-1].case_id


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("dates_as_written")
