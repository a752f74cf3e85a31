"""Rules are data a hospital edits, and a screening keeps facts and reads only what changed: an edit
of what the facts depend on (an encounter class, an ignored status, a screening panel) makes the next
run read everything again and say why; an edit of weights, sentences or thresholds does not. Against
a real server, since what is "changed since" is the server's answer."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from fhir_cm.fhir import AsyncFhirClient, BulkSettings
from fhir_cm.identify import EligibilityRules, facts_digest, load_rules, screen_population, watermark_key
from fhir_cm.store import Store, get_watermark, list_candidates, open_store

from .population import encounter, patient, transaction

TODAY = dt.date.today()
#: By export, which reads exactly what changed since (the paged searches read a minute more, which
#: would have read these resources again anyway).
EXPORT = BulkSettings(poll_interval=0.25, max_retry_after=0.25, max_wait=300)


@pytest.fixture
def store(tmp_path: Any) -> Any:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


def with_class(rules: EligibilityRules, code: str) -> EligibilityRules:
    classes = {**rules.encounter_classes, "inpatient": rules.encounter_classes["inpatient"] | {code}}
    return rules.model_copy(update={"encounter_classes": classes})


def candidate(store: Store, server: str, pid: str) -> bool:
    with store.session(read_only=True) as s:
        return pid in {c.patient_id for c in list_candidates(s, server, limit=100_000)}


@pytest.mark.server
async def test_a_rules_edit_that_changes_facts_reads_everything_again_and_says_so(
    fhir_server: str, store: Store
) -> None:
    pid = f"rules-{uuid.uuid4().hex[:10]}"
    stays = [encounter(pid, "OBSENC", TODAY - dt.timedelta(days=d), 1, rid=f"{pid}-{d}") for d in (20, 80)]
    said: list[str] = []
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as fhir:
        await fhir.transaction(transaction([patient(pid), *stays])["entry"])
        server = fhir.base_url

        async def run(rules: EligibilityRules) -> Any:
            return await screen_population(
                store, fhir, use_export=True, bulk_settings=EXPORT, rules=rules, on_progress=said.append
            )

        first = await run(load_rules())
        assert first.source == "export" and first.since is None and first.reread is None
        assert not candidate(store, server, pid)  # an observation stay is no admission, by these rules

        widened = with_class(load_rules(), "OBSENC")  # the hospital counts them now
        second = await run(widened)
        assert second.since is None and second.read.get("Encounter", 0) >= 2
        assert second.reread is not None and second.reread in said
        assert candidate(store, server, pid)

        reweighed = widened.model_copy(update={"minimum_score": 2, "rules": widened.rules[:1]})
        third = await run(reweighed)
        assert third.since is not None and third.reread is None  # no fact depends on these
        assert candidate(store, server, pid)

        back = await run(load_rules())  # the edit undone: facts of the edit are not continued from
        assert back.since is None and back.reread is not None
        assert not candidate(store, server, pid)
    with store.session(read_only=True) as s:
        assert get_watermark(s, server, watermark_key(None, widened)) is None
        assert get_watermark(s, server, watermark_key(None)) == back.transaction_time


def test_the_rules_digest_names_only_what_facts_depend_on_and_is_the_same_in_every_process() -> None:
    rules = load_rules()
    same = [
        rules.model_copy(update={"window_days": 90}),
        rules.model_copy(update={"minimum_score": 5}),
        rules.model_copy(update={"value_sets": {**rules.value_sets, "chronic": {}}}),
        rules.model_copy(
            update={
                "screens": rules.screens.model_copy(
                    update={"panels": {k: f"renamed {v}" for k, v in rules.screens.panels.items()}}
                )
            }
        ),  # fmt: skip
    ]
    other = [
        with_class(rules, "OBSENC"),
        rules.model_copy(update={"ignored_encounter_statuses": rules.ignored_encounter_statuses - {"unknown"}}),
        rules.model_copy(update={"ignored_condition_statuses": frozenset({"resolved"})}),
        rules.model_copy(
            update={
                "screens": rules.screens.model_copy(
                    update={"panels": {**rules.screens.panels, "http://loinc.org|71802-3": "housing"}}
                )
            }
        ),  # fmt: skip
        rules.model_copy(update={"screens": rules.screens.model_copy(update={"positive_answers": frozenset()})}),
        rules.model_copy(update={"screens": rules.screens.model_copy(update={"questions": {}})}),
        rules.model_copy(update={"screens": rules.screens.model_copy(update={"answer_categories": frozenset()})}),
    ]
    digest = facts_digest(rules)
    assert [facts_digest(r) for r in same] == [digest] * len(same)
    assert len({facts_digest(r) for r in other} | {digest}) == len(other) + 1
    # The rules' sets are frozensets, whose order follows the process's string hashing.
    script = "from fhir_cm.identify import facts_digest, load_rules; print(facts_digest(load_rules()))"
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == digest
