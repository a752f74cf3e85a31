"""A loopback proxy in front of the real test server that refuses transactions the way Medplum does.

Medplum (``packages/fhir-router/src/batch.ts``) refuses a transaction that needs strict isolation —
any conditional entry — and holds more than ``maxSerializableTransactionEntries`` (8) entries, with
HTTP 400 and ``badRequest("Transaction requires strict isolation but has too many entries")``:

    {"resourceType": "OperationOutcome",
     "issue": [{"severity": "error", "code": "invalid",
                "details": {"text": "Transaction requires strict isolation but has too many entries"}}]}

Here an entry is conditional when it has ``ifNoneExist``, ``ifMatch`` or a conditional URL
(``Type?criteria``). ``refuse_all`` refuses every transaction instead, HAPI-style (400, issue
``processing``, the given ``diagnostics`` — a function of the bundle, so a test can make the server
quote our data back). Everything else is forwarded to the real server, and its base URL in answers
is rewritten to the proxy's, so Location headers and paging links stay on the proxy.

``versioning`` makes it a server that does not check versions: its CapabilityStatement declares that
``versioning`` for every type (``versioned`` or ``no-version`` rather than ``versioned-update``), and
every ``If-Match`` (header or bundle entry ``ifMatch``) is dropped before the real server sees it, as
a server that keeps histories but ignores preconditions on update would; with ``no-version`` no
answer carries a ``versionId`` or ETag either.

``warn`` makes it a server that takes what it is sent but warns about it, as one validating against
a profile in "warn" mode does: each transaction-response entry whose resource ``warn`` has words for
gets an issue of severity ``warning`` in its ``response.outcome`` (beside the server's own issues).

``refuse_entries`` makes it a server that refuses some entries of a batch on their own, as one
checking a profile does (HTTP 422, issue ``processing``): for each batch entry it has words for, the
entry is not forwarded and its place in the batch-response holds the refusal; the others go to the
real server as a smaller batch and their answers are put back in their places.

``short_batches`` (an attribute, set while the proxy runs) makes it a server whose batch-responses
are malformed: that many batches of writes (a batch of reads, the push's lookups, is spared) are
forwarded whole, applied by the real server, and answered with
their last answer entry cut off (``short_batches`` counts down; -1 cuts every one) — or, with
``statusless``, with their first answer left without its ``response.status`` (FHIR requires it, 1..1).

The proxy is an ASGI app served by uvicorn on its own thread and socket, so both async tests and
the CLI (whose ``asyncio.run`` needs a thread without a running loop) can use it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from tests.servers import _bind_localhost, _wait_ready

__all__ = ["MEDPLUM_TOO_MANY", "LimitingProxy", "limiting_proxy"]

MEDPLUM_TOO_MANY = "Transaction requires strict isolation but has too many entries"
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


def medplum_refusal() -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "details": {"text": MEDPLUM_TOO_MANY}}],
    }


def _conditional(entry: dict[str, Any]) -> bool:
    request = entry.get("request") or {}
    return bool(request.get("ifNoneExist") or request.get("ifMatch") or "?" in str(request.get("url", "")))


@dataclass
class LimitingProxy:
    """The ASGI app; its counters say what it saw (read them after the requests have finished)."""

    upstream_base: str
    base_path: str
    max_entries: int = 8
    refuse_all: Callable[[dict[str, Any]], str] | None = None
    versioning: str | None = None
    warn: Callable[[dict[str, Any]], str | None] | None = None
    refuse_entries: Callable[[dict[str, Any]], str | None] | None = None
    refusals: int = 0
    short_batches: int = 0
    statusless: bool = False
    transactions: list[int] = field(default_factory=list)  # sizes of the transactions forwarded
    public_base: str = ""
    _http: httpx.AsyncClient | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self._http = httpx.AsyncClient(timeout=60)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if self._http is not None:
                        await self._http.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        refusal = self._refusal(scope["method"], scope["path"], body)
        if refusal is not None:
            await self._answer(send, 400, {"content-type": "application/fhir+json"}, json.dumps(refusal).encode())
            return
        if self.versioning is not None:
            body = _without_if_match(body)
        if self.refuse_entries is not None and (batch := self._batch(scope, body)) is not None:
            await self._answer(send, *await self._batch_refusing(scope, batch))
            return
        if self.short_batches and _writes((batch := self._batch(scope, body)) or {}):
            self.short_batches -= 1 if self.short_batches > 0 else 0
            status, headers, content = await self._relay(scope, body)
            answer = json.loads(content)
            if self.statusless:
                answer["entry"][0]["response"].pop("status", None)
            else:
                answer["entry"] = (answer.get("entry") or [])[:-1]
            await self._answer(send, status, headers, json.dumps(answer).encode())
            return
        await self._forward(scope, body, send)

    def _batch(self, scope: dict[str, Any], body: bytes) -> dict[str, Any] | None:
        if scope["method"] != "POST" or scope["path"].rstrip("/") != self.base_path.rstrip("/"):
            return None
        bundle = _bundle(body)
        return bundle if bundle is not None and bundle.get("type") == "batch" else None

    async def _batch_refusing(self, scope: dict[str, Any], batch: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        """A batch-response: ``refuse_entries``' refusals in their places, the real server's answers in the others."""
        assert self.refuse_entries is not None
        entries = batch.get("entry") or []
        said = [self.refuse_entries(entry) for entry in entries]
        kept = [entry for entry, words in zip(entries, said, strict=True) if words is None]
        answers: list[Any] = []
        headers = {"content-type": "application/fhir+json"}
        if kept:
            status, headers, content = await self._relay(scope, json.dumps({**batch, "entry": kept}).encode())
            if status != 200:
                return status, headers, content
            answers = json.loads(content).get("entry") or []
        replies = iter(answers)
        out = []
        for words in said:
            if words is None:
                out.append(next(replies))
                continue
            self.refusals += 1
            issue = {"severity": "error", "code": "processing", "diagnostics": words}
            outcome = {"resourceType": "OperationOutcome", "issue": [issue]}
            out.append({"response": {"status": "422 Unprocessable Entity", "outcome": outcome}})
        answer = {"resourceType": "Bundle", "type": "batch-response", "entry": out}
        return 200, {k: v for k, v in headers.items() if k.lower() != "etag"}, json.dumps(answer).encode()

    def _refusal(self, method: str, path: str, body: bytes) -> dict[str, Any] | None:
        if method != "POST" or path.rstrip("/") != self.base_path.rstrip("/"):
            return None
        bundle = _bundle(body)
        if bundle is None or bundle.get("type") != "transaction":
            return None
        entries = bundle.get("entry") or []
        if self.refuse_all is not None:
            self.refusals += 1
            issue = {"severity": "error", "code": "processing", "diagnostics": self.refuse_all(bundle)}
            return {"resourceType": "OperationOutcome", "issue": [issue]}
        if len(entries) > self.max_entries and any(_conditional(e) for e in entries):
            self.refusals += 1
            return medplum_refusal()
        self.transactions.append(len(entries))
        return None

    async def _forward(self, scope: dict[str, Any], body: bytes, send: Any) -> None:
        await self._answer(send, *await self._relay(scope, body))

    async def _relay(self, scope: dict[str, Any], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """The real server's answer to the request (``body`` as given), made to read as the proxy's."""
        assert self._http is not None
        query = scope.get("query_string", b"").decode("latin-1")
        url = self.upstream_base.removesuffix(self.base_path) + scope["path"] + (f"?{query}" if query else "")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        dropped = _HOP | ({"if-match"} if self.versioning is not None else set())
        forwarded = {k: v for k, v in headers if k.lower() not in dropped}
        answer = await self._http.request(scope["method"], url, headers=forwarded, content=body)
        upstream, public = self.upstream_base.encode(), self.public_base.encode()
        out = {
            k: v.replace(self.upstream_base, self.public_base)
            for k, v in answer.headers.items()
            if k.lower() not in _HOP
        }
        content = answer.content
        if self.versioning is not None and scope["path"].rstrip("/").endswith("/metadata"):
            content = self._declared(content)
        elif self.warn is not None and answer.status_code == 200 and (sent := _bundle(body)) is not None:
            content = _warned(content, sent, self.warn)
        elif self.versioning == "no-version" and content:
            content = _without_versions(content)
            out = {k: v for k, v in out.items() if k.lower() != "etag"}
        return answer.status_code, out, content.replace(upstream, public)

    def _declared(self, content: bytes) -> bytes:
        statement = json.loads(content)
        for rest in statement.get("rest") or []:
            for resource in rest.get("resource") or []:
                resource["versioning"] = self.versioning
        return json.dumps(statement).encode()

    @staticmethod
    async def _answer(send: Any, status: int, headers: dict[str, str], content: bytes) -> None:
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": content})


def _bundle(body: bytes) -> dict[str, Any] | None:
    """The Bundle a request body holds, else None."""
    try:
        bundle = json.loads(body)
    except ValueError:
        return None
    return bundle if isinstance(bundle, dict) and bundle.get("resourceType") == "Bundle" else None


def _writes(bundle: dict[str, Any]) -> bool:
    """Whether a Bundle asks for anything but reads."""
    return any((e.get("request") or {}).get("method") != "GET" for e in bundle.get("entry") or [])


def _without_versions(content: bytes) -> bytes:
    """An answer with every ``versionId`` and entry ``etag`` left out: a server that keeps no versions."""
    try:
        body = json.loads(content)
    except ValueError:
        return content

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: strip(v) for k, v in node.items() if not (k == "versionId" or (k == "etag" and isinstance(v, str)))
            }
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return json.dumps(strip(body)).encode()


def _warned(content: bytes, sent: dict[str, Any], warn: Callable[[dict[str, Any]], str | None]) -> bytes:
    """A transaction-response with ``warn``'s warning in the outcome of each entry it has one for."""
    answer = _bundle(content)
    if answer is None or sent.get("type") != "transaction":
        return content
    for asked, entry in zip(sent.get("entry") or [], answer.get("entry") or [], strict=False):
        words = warn(asked.get("resource") or {})
        if words is None:
            continue
        response = entry.setdefault("response", {})
        outcome = response.setdefault("outcome", {"resourceType": "OperationOutcome", "issue": []})
        outcome.setdefault("issue", []).append({"severity": "warning", "code": "code-invalid", "diagnostics": words})
    return json.dumps(answer).encode()


def _without_if_match(body: bytes) -> bytes:
    """A transaction or batch with its entries' ``ifMatch`` dropped (anything else as it came)."""
    bundle = _bundle(body)
    if bundle is None:
        return body
    for entry in bundle.get("entry") or []:
        (entry.get("request") or {}).pop("ifMatch", None)
    return json.dumps(bundle).encode()


@contextmanager
def limiting_proxy(
    upstream_base: str,
    *,
    max_entries: int = 8,
    refuse_all: Callable[[dict[str, Any]], str] | None = None,
    versioning: str | None = None,
    warn: Callable[[dict[str, Any]], str | None] | None = None,
    refuse_entries: Callable[[dict[str, Any]], str | None] | None = None,
) -> Iterator[tuple[str, LimitingProxy]]:
    """Serve a :class:`LimitingProxy` for ``upstream_base`` on 127.0.0.1 for the block: yields (base URL, proxy)."""
    base_path = httpx.URL(upstream_base).path.rstrip("/")
    proxy = LimitingProxy(
        upstream_base.rstrip("/"), base_path, max_entries, refuse_all, versioning, warn, refuse_entries
    )
    sock = _bind_localhost()
    proxy.public_base = f"http://127.0.0.1:{sock.getsockname()[1]}{base_path}"
    server = uvicorn.Server(uvicorn.Config(proxy, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="limiting-proxy", daemon=True)
    thread.start()
    try:
        _wait_ready(f"{proxy.public_base}/metadata", thread)
        yield proxy.public_base, proxy
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
