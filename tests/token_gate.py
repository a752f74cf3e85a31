"""A SMART server (sekmet-fhir's token endpoint and FHIR API) behind a gate that counts what it asks.

sekmet issues and checks the tokens over real HTTP; the gate in front of it counts the token requests
and the discovery requests it answers, records the token each FHIR request bears, and answers 401 to
a token the test revokes (as a hospital does to a token revoked before it expires).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fhir_cm.config import Settings
from tests.servers import RunningServer, sekmet_server

__all__ = ["TokenGate", "gated_settings", "gated_smart_server"]

CLIENT_ID = "fhir-cm-gated"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class TokenGate:
    """ASGI middleware counting token and discovery requests, refusing revoked tokens with a 401."""

    def __init__(self) -> None:
        self.app: Any = None
        self.token_requests = 0
        self.discoveries = 0
        self.borne: list[str] = []  # the token of each FHIR request, in order
        self.revoked: set[str] = set()
        self.revoke_all = False
        self._lock = threading.Lock()  # the server thread counts, the test thread reads

    def wrapping(self, app: Any) -> TokenGate:
        self.app = app
        return self

    def reset(self) -> None:
        with self._lock:
            self.token_requests = self.discoveries = 0
            self.borne.clear()
            self.revoked.clear()
            self.revoke_all = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and await self._refused(scope):
            body = json.dumps({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]})
            headers = [
                (b"content-type", b"application/fhir+json"),
                (b"www-authenticate", b'Bearer error="invalid_token"'),
            ]
            await send({"type": "http.response.start", "status": 401, "headers": headers})
            await send({"type": "http.response.body", "body": body.encode()})
            return
        await self.app(scope, receive, send)

    async def _refused(self, scope: Scope) -> bool:
        path: str = scope["path"]
        with self._lock:
            if scope["method"] == "POST" and path.endswith("/auth/token"):
                self.token_requests += 1
                return False
            if path.endswith("/.well-known/smart-configuration"):
                self.discoveries += 1
                return False
            headers = dict(scope["headers"])
            token = headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
            if not token:
                return False
            self.borne.append(token)
            return self.revoke_all or token in self.revoked


@contextmanager
def gated_smart_server(workdir: Path) -> Iterator[tuple[RunningServer, TokenGate, Path]]:
    """A server taking only SMART tokens of one client (an ES384 key), behind a :class:`TokenGate`."""
    from sekmet.config import ServerAuth, SmartClient

    private = ec.generate_private_key(ec.SECP384R1())
    key, public = workdir / "gated.pem", workdir / "gated.pub.pem"
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    client = SmartClient(client_id=CLIENT_ID, public_key_path=str(public), scopes="system/*.*")
    gate = TokenGate()
    auth = ServerAuth(types=["smart"], smart_clients=[client])
    with sekmet_server(workdir, wrap=gate.wrapping, server_auth=auth) as server:
        yield server, gate, key


def gated_settings(server: RunningServer, key: Path, **more: Any) -> Settings:
    """Settings for the gated server's client; the token endpoint discovered."""
    return Settings(
        fhir_base=server.base_url,
        auth="smart",
        client_id=CLIENT_ID,
        private_key_file=str(key),
        private_key_alg="ES384",
        key_id="gated-1",
        **more,
    )
