"""What differs between SQLite and PostgreSQL in the statements the store writes."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

__all__ = ["insert", "is_postgresql", "normal_base"]


def is_postgresql(session: Session) -> bool:
    """Whether the session talks to PostgreSQL (row locks, ``SKIP LOCKED``) rather than SQLite."""
    return session.get_bind().dialect.name == "postgresql"


def insert(session: Session | str, model: Any) -> Any:
    """An INSERT with ``on_conflict_do_update`` / ``on_conflict_do_nothing``: both backends spell upserts the same.

    Built on the model's table rather than the ORM class, so it is a plain statement whose results
    (``RETURNING`` rows) come back as written; know whether a row was inserted from ``RETURNING``,
    not ``rowcount``, which drivers do not all report for upserts. ``session`` may be the dialect's
    name instead (for statements built once per backend and reused).
    """
    table = getattr(model, "__table__", model)
    pg = session == "postgresql" if isinstance(session, str) else is_postgresql(session)
    return (postgresql.insert if pg else sqlite.insert)(table)


def normal_base(server_base: str) -> str:
    """A server base URL without a trailing slash, so ``…/fhir`` and ``…/fhir/`` are one server."""
    return server_base.rstrip("/")
