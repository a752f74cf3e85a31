"""A server settles its heap after start-up; an app built for tests does not."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient

from fhir_cm.api import create_app
from fhir_cm.api._heap import settle
from fhir_cm.config import Settings


def test_settling_freezes_what_is_alive_so_full_collections_skip_it() -> None:
    kept = [[i] for i in range(1000)]  # long-lived objects, as a server's caches are
    try:
        settle()
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()


def test_only_a_server_settles_its_heap(tmp_path: object) -> None:
    gc.unfreeze()
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/a.db"))
    with TestClient(app):
        assert app.state.facade_ready.wait(timeout=60)
    assert gc.get_freeze_count() == 0
    served = create_app(Settings(database_url=f"sqlite:///{tmp_path}/b.db"), serving=True)
    try:
        with TestClient(served):
            assert served.state.facade_ready.wait(timeout=60)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
