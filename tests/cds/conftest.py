"""CDS Hooks fixtures: real keys, a JWKS served over loopback HTTP, an app that trusts that issuer."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient

from fhir_cm.api import create_app
from fhir_cm.config import Settings
from fhir_cm.store import Store, open_store

TODAY = dt.date(2026, 6, 1)
ISSUER = "https://ehr.example.org"
BASE = "http://testserver"


@dataclass
class Signer:
    """Signs CDS Hooks JWTs the way an EHR does (RS384 by default, or ES384), with any claims changed."""

    rsa_key: Any
    ec_key: Any

    def token(self, aud: str, *, alg: str = "RS384", key: Any = None, kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "sub": "ehr-client", "aud": aud, "exp": now + 300, "iat": now, "jti": uuid.uuid4().hex}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        if key is None:
            key = self.ec_key if alg.startswith("ES") else self.rsa_key
        kid = kid or ("ec-1" if alg.startswith("ES") else "rsa-1")
        return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})

    def headers(self, path: str, **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(BASE + path, **kw)}"}


def _jwks(rsa_key: Any, ec_key: Any) -> dict[str, Any]:
    keys = []
    for kid, key, alg in (("rsa-1", rsa_key, "RS384"), ("ec-1", ec_key, "ES384")):
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
        keys.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
    return {"keys": keys}


@contextlib.contextmanager
def serve_jwks(answer: Callable[[], tuple[int, bytes]]) -> Iterator[str]:
    """An issuer's JWKS endpoint on loopback (its URL), answering each GET with ``answer()``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            status, body = answer()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()


@pytest.fixture(scope="session")
def signer_and_jwks() -> Iterator[tuple[Signer, str]]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP384R1())
    body = json.dumps(_jwks(rsa_key, ec_key)).encode()
    with serve_jwks(lambda: (200, body)) as url:
        yield Signer(rsa_key, ec_key), url


@pytest.fixture
def signer(signer_and_jwks: tuple[Signer, str]) -> Signer:
    return signer_and_jwks[0]


@pytest.fixture
def cds_store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'cds.db'}") as store:
        yield store


@pytest.fixture
def cds_settings(tmp_path: Path, signer_and_jwks: tuple[Signer, str]) -> Settings:
    return Settings(
        database_url="sqlite://", fhir_base=None, cds_issuers=json.dumps({ISSUER: signer_and_jwks[1]}), public_url=BASE
    )


@pytest.fixture
def cds_client(cds_store: Store, cds_settings: Settings) -> Iterator[TestClient]:
    app = create_app(cds_settings, store=cds_store, clock=lambda: TODAY)
    with TestClient(app, base_url=BASE) as client:
        yield client
