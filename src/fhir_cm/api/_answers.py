"""Answers serialised once, straight from pydantic's serializer.

A route that returns a model has FastAPI dump it to Python objects, validate those again against the
response model and serialise the result. For a case — hundreds of fields, the domain's validators on
each — that second validation costs more than reading the case from the store. The busy read routes
return their body through :func:`json_answer` instead, which serialises it once; ``response_model``
still documents the shape, and the schemathesis tests check every answer against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fastapi import Response
from pydantic import BaseModel

__all__ = ["JSON", "json_answer", "json_bytes"]

JSON = "application/json"


def json_bytes(body: BaseModel | Sequence[BaseModel]) -> bytes:
    """The JSON of a model, or of a list of models, as FastAPI would write it (no aliases here)."""
    if isinstance(body, BaseModel):
        return body.__pydantic_serializer__.to_json(body)
    return b"[" + b",".join(item.__pydantic_serializer__.to_json(item) for item in body) + b"]"


def json_answer(
    body: BaseModel | Sequence[BaseModel] | bytes, *, headers: Mapping[str, str] | None = None, status_code: int = 200
) -> Response:
    """A JSON response of ``body`` (a model, a list of models, or JSON already serialised)."""
    content = body if isinstance(body, bytes) else json_bytes(body)
    return Response(content, status_code=status_code, media_type=JSON, headers=dict(headers or {}))
