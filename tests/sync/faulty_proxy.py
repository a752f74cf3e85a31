"""A loopback HTTP proxy that misbehaves like a bad network: 429, 503, dropped connections, lost answers.

Each request, with probability ``rate``, meets one fault (chosen at random, seeded):

* ``429`` with ``Retry-After: 0`` / ``503`` — answered by the proxy, never forwarded;
* ``drop`` — the connection closes before the request is forwarded;
* ``lost`` — the request is forwarded and applied by the server, then the connection closes
  without the answer (the case a pusher must not turn into a duplicate).

With ``only``, just the requests whose target starts with one of those prefixes may meet a fault.
Requests whose target starts with one of ``spared`` (``("/fhir/metadata",)``) never meet a fault.
With ``when``, only the requests it says yes to (method, target, body) may: one entry of a bundle
POSTed to the base like every other.
Every request reaching the proxy is listed in ``seen`` (``"GET /fhir/Patient?…"``), faulty or not.

``faults`` narrows the choice (``("429",)``: a server that rate-limits everything) and
``retry_after`` is the header its 429s and 503s carry.

With ``delay``, every request is also held that many seconds before it is forwarded: a slow server
(with ``rate=0``, nothing but slow).

With ``rewrite``, the upstream's root in an answer's body is replaced by the proxy's, as a reverse
proxy rewrites a server that names itself by its own address (sekmet's paging links do): the next
page is asked of the proxy too.

With ``edit``, every answer's body is replaced by what it returns for (target, body): a server that
answers otherwise (its Bundles without ``meta``, say), the headers as the upstream sent them.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx

__all__ = ["FaultyProxy", "faulty_proxy"]

FAULTS = ("429", "503", "drop", "lost")
# content-encoding: httpx hands over the body decoded, so the upstream's gzip header must not follow it.
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


class FaultyProxy:
    def __init__(
        self,
        upstream_root: str,
        rate: float,
        seed: int,
        delay: float = 0.0,
        faults: tuple[str, ...] = FAULTS,
        retry_after: int = 0,
        spared: tuple[str, ...] = (),
        only: tuple[str, ...] = ("",),
        when: Callable[[str, str, bytes], bool] | None = None,
        rewrite: bool = False,
        edit: Callable[[str, bytes], bytes] | None = None,
    ) -> None:
        self.when = when
        self.edit = edit
        self.rewrite = rewrite
        self.root = ""  # the proxy's own root, once it listens
        self.spared = spared
        self.only = only
        self.upstream = upstream_root
        self.choices = faults
        self.retry_after = retry_after
        self.rate = rate
        self.delay = delay
        self.rng = random.Random(seed)
        self.faults: Counter[str] = Counter()
        self.seen: list[str] = []
        self.enabled = True
        self._http = httpx.AsyncClient(timeout=30)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = [tuple(line.split(":", 1)) for line in lines[1:] if ":" in line]
                length = next((int(v) for k, v in headers if k.strip().lower() == "content-length"), 0)
                body = await reader.readexactly(length) if length else b""
                self.seen.append(f"{method} {target}")
                faulty = self.enabled and target.startswith(self.only) and not target.startswith(self.spared)
                faulty = faulty and (self.when is None or self.when(method, target, body))
                fault = self.rng.choice(self.choices) if faulty and self.rng.random() < self.rate else None
                if fault is not None:
                    self.faults[fault] += 1
                if fault in ("429", "503"):
                    reason = "Too Many Requests" if fault == "429" else "Service Unavailable"
                    writer.write(
                        f"HTTP/1.1 {fault} {reason}\r\nRetry-After: {self.retry_after}\r\nContent-Length: 0\r\n\r\n".encode()
                    )
                    await writer.drain()
                    continue
                if fault == "drop":
                    return
                if self.delay:
                    await asyncio.sleep(self.delay)
                forwarded = {k.strip(): v.strip() for k, v in headers if k.strip().lower() not in _HOP}
                answer = await self._http.request(method, self.upstream + target, headers=forwarded, content=body)
                if fault == "lost":
                    return
                content = answer.content
                if self.rewrite and self.root:
                    content = content.replace(self.upstream.encode(), self.root.encode())
                if self.edit is not None:
                    content = self.edit(target, content)
                out = [f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}"]
                out += [f"{k}: {v}" for k, v in answer.headers.items() if k.lower() not in _HOP]
                out.append(f"Content-Length: {len(content)}")
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + content)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


@asynccontextmanager
async def faulty_proxy(
    upstream_root: str,
    *,
    rate: float = 0.2,
    seed: int = 1,
    delay: float = 0.0,
    faults: tuple[str, ...] = FAULTS,
    retry_after: int = 0,
    spared: tuple[str, ...] = (),
    only: tuple[str, ...] = ("",),
    when: Callable[[str, str, bytes], bool] | None = None,
    rewrite: bool = False,
    edit: Callable[[str, bytes], bytes] | None = None,
) -> AsyncIterator[tuple[str, FaultyProxy]]:
    """Serve the proxy on 127.0.0.1 (a free port) for the block: yields (root URL, proxy)."""
    proxy = FaultyProxy(upstream_root, rate, seed, delay, faults, retry_after, spared, only, when, rewrite, edit)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy.root = f"http://127.0.0.1:{port}"
    try:
        yield proxy.root, proxy
    finally:
        server.close()
        await proxy._http.aclose()
