"""Subscriptions asked of an R5 server (HAPI FHIR JPA in R5, 5.0.0).

fhir-cm makes R4 criteria subscriptions and R4/R4B backport topic subscriptions. An R5 server takes
only its own topic-based Subscription (``topic``, ``filterBy``, ``channelType``): the R4 shape sent
there was refused by HAPI with 'HAPI-2322: No SubscriptionTopic exists with topic: null', which said
nothing a user could act on. It is refused here before anything is asked of the server.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case, Party, Period
from fhir_cm.jobs import subscribe
from fhir_cm.store import list_subscriptions, open_store, save_case
from fhir_cm.sync import SubscriptionRefused
from tests.servers import RunningServer
from tests.sync.faulty_proxy import faulty_proxy

pytestmark = pytest.mark.server


@pytest.mark.parametrize("topic", [None, "http://example.org/fhir/SubscriptionTopic/encounters"])
async def test_subscribe_on_an_r5_server_says_why_and_asks_nothing_of_it(
    tmp_path: Path, hapi_r5: RunningServer, topic: str | None
) -> None:
    tag = uuid.uuid4().hex[:10]
    case = Case(
        id=f"case-{tag}",
        programme="health-care",
        period=Period.model_validate({"start": "2024-02-20"}),
        patient=Party(kind="patient", id=f"pat-{tag}"),
    )
    async with faulty_proxy(hapi_r5.root_url, rate=0.0) as (root, proxy):
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'store.db'}",
            fhir_base=f"{root}/fhir",
            identifier_system=f"urn:fhir-cm:test:{tag}",
            fhir_version="auto",
        )
        with open_store(settings.database_url) as store:
            with store.session() as s:
                save_case(s, case)
            with pytest.raises(SubscriptionRefused, match=r"R5.*topic-based") as refused:
                await subscribe(store, settings, "http://127.0.0.1:9/notifications", topic=topic)
            with store.session(read_only=True) as s:
                held = list_subscriptions(s, settings.fhir_base)

    assert "R4" in str(refused.value)
    assert [seen for seen in proxy.seen if not seen.startswith("GET /fhir/metadata")] == []
    assert held == []
