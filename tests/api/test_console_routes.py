"""The routes the console reads besides the case-management ones: who am I, sync health, and the
follow-ups on the caseload; and the page itself, served with headers that keep it to itself."""

from __future__ import annotations

from fastapi.testclient import TestClient

from fhir_cm.store import OutboxStatus, Store, claim_outbox, set_watermark
from fhir_cm.store import mark_push_failed as fail_push
from tests.api.conftest import Keys, bearer, create


def test_me_tells_a_key_its_role_and_scope_and_never_its_secret(client: TestClient, keys: Keys) -> None:
    cm = client.get("/api/v1/me", headers=bearer(keys.cm1)).json()
    assert (cm["role"], cm["practitioner_id"], cm["programme"]) == ("case-manager", "cm-1", None)
    hc = client.get("/api/v1/me", headers=bearer(keys.supervisor_hc)).json()
    assert (hc["role"], hc["programme"]) == ("supervisor", "health-care")
    assert keys.cm1 not in str(cm) and cm["key_id"] in keys.cm1
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/me", headers=bearer(keys.revoked)).status_code == 401


def test_sync_health_shows_the_outbox_failures_with_reasons_and_each_servers_watermarks(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    for case_id in ("a", "b", "c"):
        create(client, keys.supervisor, id=case_id)
    with api_store.session() as s:
        claimed = claim_outbox(s, "w1", limit=1)
        fail_push(s, claimed[0], "HTTP 422 from the server: Encounter.status is required", retry=False)
        set_watermark(s, "http://ehr.example/fhir/", "CarePlan", "2025-06-01T10:00:00Z")
        set_watermark(s, "http://ehr.example/fhir", "Encounter", "2025-06-02T10:00:00Z")
        set_watermark(s, "http://other.example/fhir", "Encounter", "2025-05-01T00:00:00Z")
    body = client.get("/api/v1/sync/health", headers=bearer(keys.supervisor)).json()
    assert (body["outbox"][OutboxStatus.PENDING], body["outbox"][OutboxStatus.FAILED]) == (2, 1)
    assert [(f["case_id"], f["reason"]) for f in body["failed"]] == [
        (claimed[0].case_id, "HTTP 422 from the server: Encounter.status is required")
    ]
    servers = {s["server_base"]: s for s in body["servers"]}
    assert sorted(servers) == ["http://ehr.example/fhir", "http://other.example/fhir"]
    assert [(w["resource_type"], w["last_updated"]) for w in servers["http://ehr.example/fhir"]["watermarks"]] == [
        ("CarePlan", "2025-06-01T10:00:00Z"),
        ("Encounter", "2025-06-02T10:00:00Z"),
    ]
    assert servers["http://ehr.example/fhir"]["last_pull"] is not None
    assert (body["quarantined"], body["open_conflicts"]) == (0, 0)
    assert body["subscriptions"] == []


def test_sync_health_lists_our_subscriptions_with_their_status(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    import datetime as dt

    from fhir_cm.store import HeldSubscription, put_subscription, secret_hash

    with api_store.session() as s:
        put_subscription(
            s,
            HeldSubscription(
                id="sub-1",
                server_base="http://ehr.example/fhir",
                server_id="9",
                kind="criteria",
                endpoint="http://cm/notifications",
                criteria="Encounter?patient=Patient/a,Patient/b",
                patients=["a", "b"],
                secret_hash=secret_hash("x"),
                status="error",
                error="endpoint unreachable",
                created_at=dt.datetime(2025, 6, 1, tzinfo=dt.UTC),
            ),
        )
    (sub,) = client.get("/api/v1/sync/health", headers=bearer(keys.supervisor)).json()["subscriptions"]
    assert (sub["id"], sub["status"], sub["error"], sub["patients"]) == ("sub-1", "error", "endpoint unreachable", 2)
    assert "secret" not in str(sub)


def test_sync_health_is_for_supervisors(client: TestClient, keys: Keys) -> None:
    assert client.get("/api/v1/sync/health", headers=bearer(keys.cm1)).status_code == 403
    assert client.get("/api/v1/sync/health").status_code == 401


def test_the_caseload_names_each_cases_next_follow_up_and_counts_the_overdue(client: TestClient, keys: Keys) -> None:
    create(client, keys.supervisor, id="a")
    for due, status in (("2025-06-20", "requested"), ("2025-07-05", "requested"), ("2025-06-10", "draft")):
        made = client.post(
            "/api/v1/cases/a/referrals",
            headers=bearer(keys.supervisor),
            json={
                "kind": "follow-up",
                "service": "follow-up visit",
                "authored": "2025-06-01",
                "due": due,
                "status": status,
            },
        )
        assert made.status_code == 201, made.text
    done = client.post(
        "/api/v1/cases/a/referrals",
        headers=bearer(keys.supervisor),
        json={
            "kind": "follow-up",
            "service": "seen",
            "authored": "2025-06-01",
            "due": "2025-06-05",
            "status": "requested",
        },
    )
    referral = done.json()["id"]
    for step in ("accepted", "completed"):
        moved = client.post(
            f"/api/v1/cases/a/referrals/{referral}/status", headers=bearer(keys.supervisor), json={"status": step}
        )
        assert moved.status_code == 200, moved.text
    (case,) = client.get("/api/v1/caseload", headers=bearer(keys.supervisor)).json()["managers"][0]["cases"]
    # Today is 2025-06-30: the 06-20 follow-up is overdue, the 07-05 one is next; a draft or a done one does not count.
    assert (case["next_follow_up_due"], case["follow_ups_overdue"]) == ("2025-06-20", 1)


def test_the_console_page_is_served_with_a_strict_policy_and_needs_no_key_to_load(client: TestClient) -> None:
    assert client.get("/console", follow_redirects=False).headers["location"] == "/console/"
    page = client.get("/console/")
    assert page.status_code == 200 and "Sign in" in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["referrer-policy"] == "no-referrer"
    assert client.get("/console/vendor/chart.umd.min.js").status_code == 200
    assert client.get("/console/../pyproject.toml").status_code == 404


def test_every_api_answer_is_kept_out_of_caches_and_never_sniffed(client: TestClient, keys: Keys) -> None:
    # Answers carry PHI: no browser or proxy may keep a copy (a shared computer's disk cache, the
    # back button after signing out of the console), and none may be read as anything but its type.
    create(client, keys.supervisor, id="a")
    for path, key, status in [
        ("/api/v1/cases/a", keys.supervisor, 200),
        ("/api/v1/caseload", keys.supervisor, 200),
        ("/fhir/EpisodeOfCare?patient=patient-1", keys.supervisor, 200),
        ("/api/v1/cases/nope", keys.supervisor, 404),
        ("/api/v1/caseload", None, 401),
    ]:
        answer = client.get(path, headers=bearer(key) if key else {})
        assert answer.status_code == status, path
        assert answer.headers["cache-control"] == "no-store", path
        assert answer.headers["x-content-type-options"] == "nosniff", path
    # The console's own files hold no PHI: they are revalidated (no-cache), not refetched each time.
    assert client.get("/console/console.js").headers["cache-control"] == "no-cache"


def test_sync_health_names_to_a_supervisor_of_one_programme_the_failed_pushes_of_its_cases_only(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    """A failed push names its case and the server's reason: of another programme's case, neither is
    the business of a supervisor limited to one (the case itself answers them 404)."""
    create(client, keys.supervisor, id="hc", programme="health-care")
    create(client, keys.supervisor, id="sw", programme="social-work", patient={"kind": "patient", "id": "patient-2"})
    with api_store.session() as s:
        for item in claim_outbox(s, "w1", limit=2):
            fail_push(s, item, f"HTTP 422 from the server: case {item.case_id} refused", retry=False)
    every = client.get("/api/v1/sync/health", headers=bearer(keys.supervisor)).json()
    assert sorted(f["case_id"] for f in every["failed"]) == ["hc", "sw"]
    for key, own in ((keys.supervisor_hc, "hc"), (keys.supervisor_sw, "sw")):
        body = client.get("/api/v1/sync/health", headers=bearer(key)).json()
        assert [(f["case_id"], f["reason"]) for f in body["failed"]] == [
            (own, f"HTTP 422 from the server: case {own} refused")
        ]
        assert (body["failed_total"], body["outbox"]["failed"]) == (1, 2)  # "the newest 1 of 2" hid one
