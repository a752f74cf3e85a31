"""`fhir-cm serve`: runs the API with uvicorn on loopback, JSON access log without PHI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.store import ApiRole, create_api_key, open_store

STARTUP_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _raw_head(port: int, path: str, key: str) -> tuple[bytes, bytes]:
    """A HEAD request on a socket of its own: the header block, and whatever came after it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        request = f"HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    return head, rest


@contextmanager
def serving(env: dict[str, str], port: int) -> Iterator[tuple[str, list[str]]]:
    """``fhir-cm serve`` on ``port``, once it answers: its base URL, and (after the block) its stderr lines."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from fhir_cm.cli import main; main()", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    logged: list[str] = []
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:  # wait for the server to accept connections (bounded)
            try:
                assert httpx.get(f"{base}/healthz", timeout=2).status_code == 200
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        yield base, logged
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
        logged.extend(stderr.splitlines())


def test_help_names_host_and_port() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--host" in result.stdout and "--port" in result.stdout


def test_serve_answers_on_loopback_and_logs_json_without_phi(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}"}
    env.pop("FHIR_CM_FHIR_BASE", None)
    with open_store(env["FHIR_CM_DATABASE_URL"]) as store, store.session() as s:
        _, key = create_api_key(s, name="t", role=ApiRole.SUPERVISOR)
    with serving(env, port) as (base, logged):
        body = {
            "programme": "health-care",
            "patient": {"kind": "patient", "id": "pat-9", "name": "Hidden Person"},
            "case_manager": {"kind": "practitioner", "id": "cm-1"},
        }
        created = httpx.post(f"{base}/api/v1/cases", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert created.status_code == 201
        assert (
            httpx.get(f"{base}/api/v1/cases?patient=pat-9", headers={"X-API-Key": key}, timeout=10).status_code == 200
        )
        path = f"/api/v1/cases/{created.json()['case']['id']}"
        length = len(httpx.get(f"{base}{path}", headers={"X-API-Key": key}, timeout=10).content)
        head, rest = _raw_head(port, path, key)
        assert head.startswith(b"HTTP/1.1 200") and f"content-length: {length}".encode() in head.lower()
        assert rest == b""  # the header fields GET sends, and not a byte of its body
    stderr = "\n".join(logged)
    lines = [json.loads(line) for line in logged if line.startswith("{")]
    requests = [line for line in lines if line.get("message") == "request"]
    assert [(r["method"], r["route"], r["status"]) for r in requests][-4:] == [
        ("POST", "/api/v1/cases", 201),
        ("GET", "/api/v1/cases", 200),
        ("GET", "/api/v1/cases/{case_id}", 200),
        ("HEAD", "/api/v1/cases/{case_id}", 200),
    ]
    for secret in ("Hidden Person", "pat-9", key):
        assert secret not in stderr


def test_the_fhir_requests_serve_makes_are_not_logged_with_their_urls(tmp_path: Path, sekmet_base: str) -> None:
    """A pull of one patient asks the server ``Encounter?patient=<id>``: the HTTP client's own log line
    (the full URL, query string and all) must not reach serve's log."""
    port = _free_port()
    env = {**os.environ, "FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}", "FHIR_CM_FHIR_BASE": sekmet_base}
    with open_store(env["FHIR_CM_DATABASE_URL"]) as store, store.session() as s:
        _, key = create_api_key(s, name="t", role=ApiRole.SUPERVISOR)
    with serving(env, port) as (base, logged):
        pulled = httpx.post(
            f"{base}/api/v1/sync/pull", json={"patient": "pat-secret-41"}, headers={"X-API-Key": key}, timeout=60
        )
        assert pulled.status_code == 200, pulled.text
    stderr = "\n".join(logged)
    requests = [json.loads(line) for line in logged if line.startswith("{")]
    assert ("POST", "/api/v1/sync/pull", 200) in [(r.get("method"), r.get("route"), r.get("status")) for r in requests]
    assert "pat-secret-41" not in stderr


def test_a_broken_outcome_rules_file_stops_serve_with_its_reason(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The outcome rules are data (``mappings/outcome-rules.json``); one that cannot be used is told
    when ``serve`` starts, not as a 500 to the first supervisor asking for outcomes."""
    import fhir_cm.api
    import fhir_cm.outcomes as outcomes
    import fhir_cm.outcomes._rules as rules_file
    from fhir_cm.cli import _serving

    rules = tmp_path / "mappings"
    rules.mkdir()
    (rules / outcomes.RULES_FILE).write_text('{"look_back_days": -3}', encoding="utf-8")
    monkeypatch.setattr(rules_file, "mappings_dir", lambda: rules)
    outcomes.load_outcome_rules.cache_clear()
    served: list[object] = []
    monkeypatch.setattr(_serving, "run", lambda *a, **k: served.append(a) or 0)
    # serve's JSON log handler would be left on the runner's stream, closed once the command ends
    monkeypatch.setattr(fhir_cm.api, "configure_logging", lambda *a, **k: None)
    monkeypatch.setenv("FHIR_CM_DATABASE_URL", f"sqlite:///{tmp_path / 'serve.db'}")
    try:
        result = CliRunner().invoke(app, ["serve"])
    finally:
        outcomes.load_outcome_rules.cache_clear()
    assert served == []
    assert result.exit_code == 1
    assert "outcome-rules.json cannot be used: look_back_days" in result.output


def test_serve_on_a_port_in_use_stops_with_one_line_naming_it(tmp_path: Path) -> None:
    """A serve still running, or another service on the port: one line and exit 1, not uvicorn's
    "Application startup complete" then the bind error as JSON log lines and exit 3."""
    env = {**os.environ, "FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-c", "from fhir_cm.cli import main; main()", "serve", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, done.stderr
    assert done.stderr == (
        f"fhir-cm: error: cannot listen on 127.0.0.1:{port}: address already in use; "
        "another process listens there: --port or FHIR_CM_PORT picks another\n"
    )
