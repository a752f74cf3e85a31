"""``mappings/outcome-rules.json``: which stays are a case's (a programme's rule, so data)."""

from __future__ import annotations

import functools

from pydantic import BaseModel, ConfigDict, Field

from fhir_cm.terminology import mappings_dir, read_rules

__all__ = ["RULES_FILE", "OutcomeRules", "load_outcome_rules"]

RULES_FILE = "outcome-rules.json"


class OutcomeRules(BaseModel):
    """``mappings/outcome-rules.json``: which stays are a case's (a programme's rule, so data)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    look_back_days: int = Field(ge=0, le=366)


@functools.cache
def load_outcome_rules() -> OutcomeRules:
    """The rules of ``mappings/outcome-rules.json`` (read once per process; the kept parts are per
    process too, so a changed window is applied to every case after a restart).

    ``MappingFileError`` when the file cannot be used: the API reads it when it is made, so a broken
    file stops ``fhir-cm serve`` with its reason instead of failing the first outcomes request."""
    return read_rules(mappings_dir() / RULES_FILE, OutcomeRules)
