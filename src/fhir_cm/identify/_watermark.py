"""The watermark of a screening scope: the key it is kept under, naming what its facts depend on.

A screening continues from the export's ``transactionTime`` kept per scope (the server's whole
population, or one Group). The key names the generation of facts (``FACTS_GENERATION``) and a digest
of the rules' part facts depend on (``facts_digest``): facts kept otherwise — by an earlier version,
or under rules that kept other facts — are never continued from, so such a change reads everything.
"""

from __future__ import annotations

import hashlib

from ._facts import facts_digest
from ._rules import EligibilityRules, load_rules

__all__ = ["FACTS_GENERATION", "KEY_PREFIX", "watermark_key"]

#: What a fact keeps of a resource, by generation: 2 keeps the Patient's birth date (the age rules), 3
#: the visits and screens dated to a month or a year, a Condition's partial onset, and a screen dated
#: by ``effectiveInstant`` (``_facts``), 4 a panel's members (``hasMember``) and the positive answers
#: they hold, 5 none of a resource about another server's patient (an absolute reference at another
#: base, read before as the local patient's), nor another server's member or parent Encounter, 6 an
#: answer judged by its question (``screens.questions``), one recorded with no panel kept with its
#: date and the panel it stands for, and a cancelled or entered-in-error panel's members.
#: The watermark names it, so a store screened by an earlier generation, whose Patient facts hold no
#: birth date, reads everything once — an incremental run would leave every unchanged patient ageless.
FACTS_GENERATION = 6
#: The longest watermark key the store keeps (its key column, as long as a FHIR id).
_KEY_LENGTH = 64
#: What every screening watermark key starts with (then the generation, the rules' digest, the scope;
#: the first generation's keys had neither: ``identify:system``).
KEY_PREFIX = "identify"


def watermark_key(group: str | None, rules: EligibilityRules | None = None) -> str:
    """The watermark row of a screening scope (the store keeps one per server and key), of the
    generation of facts (``FACTS_GENERATION``) and of the rules facts depend on (``facts_digest``):
    facts kept otherwise are not continued from. A Group id may take 64 characters, the whole key no
    more: a key that would not fit names the Group by a digest of its id instead (PostgreSQL refused
    the longer one at the end of the run, which was then read again in full each time and failed again)."""
    head = f"{KEY_PREFIX}.v{FACTS_GENERATION}.{facts_digest(rules or load_rules())}:"
    key = head + (f"Group/{group}" if group else "system")
    if group and len(key) > _KEY_LENGTH:
        key = head + f"Group#{hashlib.sha256(group.encode()).hexdigest()[: _KEY_LENGTH - len(head) - 6]}"
    return key
