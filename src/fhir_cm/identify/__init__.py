"""Identification: who among a hospital's patients would a case-management programme want to see.

Eligibility rules are data (``mappings/eligibility-rules.json``); a patient's resources are reduced
to small facts (``facts_from_resources``, ``fact_of``) that the rules assess (``assess``) into a
score and reasons. ``screen_population`` does it for a whole server — Bulk Data ``$export`` or paged
searches, facts kept per resource in the store, incremental by ``transactionTime`` — and
``enrol_candidates`` turns chosen candidates into referred cases. The CDS Hooks service applies the
same rules to one patient's prefetch.
"""

from ._assess import Assessment, Reason, assess
from ._enrol import EnrolReport, enrol_candidates
from ._group import group_members
from ._facts import (
    ANSWER,
    ConditionFact,
    EncounterFact,
    PatientFacts,
    ScreenFact,
    fact_of,
    facts_digest,
    facts_from_resources,
    members_of,
)
from ._rules import EligibilityRules, Rule, RulesError, ScreenRules, load_rules
from ._screen import SCREENED_TYPES, ScreeningReport, rank, screen_files, screen_population, watermark_key

__all__ = [
    "ANSWER",
    "SCREENED_TYPES",
    "Assessment",
    "ConditionFact",
    "EligibilityRules",
    "EncounterFact",
    "EnrolReport",
    "PatientFacts",
    "Reason",
    "Rule",
    "RulesError",
    "ScreenFact",
    "ScreenRules",
    "ScreeningReport",
    "assess",
    "enrol_candidates",
    "fact_of",
    "facts_digest",
    "facts_from_resources",
    "group_members",
    "load_rules",
    "members_of",
    "rank",
    "screen_files",
    "screen_population",
    "watermark_key",
]
