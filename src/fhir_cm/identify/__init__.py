"""Identification: who among a hospital's patients would a case-management programme want to see.

Eligibility rules are data (``mappings/eligibility-rules.json``); a patient's resources are reduced
to small facts (``facts_from_resources``, ``fact_of``) that the rules assess (``assess``) into a
score and reasons. ``screen_population`` does it for a whole server or a Group (and the Groups it
lists) — Bulk Data ``$export`` or paged searches, facts kept per resource in the store, incremental by
``transactionTime`` — and
``enrol_candidates`` turns chosen candidates into referred cases. The CDS Hooks service applies the
same rules to one patient's prefetch.
"""

from ._assess import Assessment, Reason, assess
from ._enrol import EnrolReport, enrol_candidates
from ._group import GROUP_DEPTH, GroupNotListed, GroupScope, expand_group, group_members, members_unlisted
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
    "GROUP_DEPTH",
    "SCREENED_TYPES",
    "Assessment",
    "ConditionFact",
    "EligibilityRules",
    "EncounterFact",
    "EnrolReport",
    "GroupNotListed",
    "GroupScope",
    "PatientFacts",
    "Reason",
    "Rule",
    "RulesError",
    "ScreenFact",
    "ScreenRules",
    "ScreeningReport",
    "assess",
    "enrol_candidates",
    "expand_group",
    "fact_of",
    "facts_digest",
    "facts_from_resources",
    "group_members",
    "load_rules",
    "members_of",
    "members_unlisted",
    "rank",
    "screen_files",
    "screen_population",
    "watermark_key",
]
