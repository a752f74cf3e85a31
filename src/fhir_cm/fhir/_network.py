"""What a failure with no HTTP status was, in one line a person can act on, without PHI.

A push failing on the network or on a malformed answer showed only the error's class
("TransientError; will retry"): whether the server was down, unreachable by name, refusing the
connection, too slow, or answering something that is not FHIR, the person could not tell which to
look at. These lines name the host (never the path, query or credentials of the URL: an id or an
identifier may be in them), the timeout that ran out, and what was wrong with the answer.
"""

from __future__ import annotations

import socket
import ssl

import httpx

__all__ = ["host_of", "network_summary"]


def host_of(url: httpx.URL) -> str:
    """``host[:port]`` of ``url``: no credentials, no path, no query."""
    return f"{url.host}:{url.port}" if url.port else url.host or "the server"


def _seconds(request: httpx.Request | None, phase: str) -> str:
    """The timeout the request ran with for ``phase`` (httpx keeps it on the request), as "after N s"."""
    timeouts = request.extensions.get("timeout") if request is not None else None
    value = timeouts.get(phase) if isinstance(timeouts, dict) else None
    return f" after {value:g} s" if isinstance(value, int | float) else ""


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it came from (httpx wraps httpcore wraps anyio wraps the socket's error)."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return chain


#: Each kind of transport failure (first match wins; a timeout's ``{after}`` is " after N s" when known).
_SAID: tuple[tuple[type[httpx.TransportError], str], ...] = (
    (httpx.ConnectTimeout, "timed out{after} connecting to {host}"),
    (httpx.ReadTimeout, "{host} did not answer in time (timed out{after} waiting for the answer)"),
    (httpx.WriteTimeout, "timed out{after} sending the request to {host}"),
    (httpx.PoolTimeout, "no connection to {host} came free in time (timed out{after})"),
    (httpx.ProxyError, "the proxy refused to connect to {host}"),
    (httpx.RemoteProtocolError, "{host} closed the connection without a complete answer"),
    (httpx.ReadError, "the connection to {host} broke while reading the answer"),
    (httpx.WriteError, "the connection to {host} broke while sending the request"),
)
_PHASES: dict[type[httpx.TransportError], str] = {
    httpx.ConnectTimeout: "connect",
    httpx.ReadTimeout: "read",
    httpx.WriteTimeout: "write",
}
#: Why a connection could not be made, by the error underneath httpx's ``ConnectError``.
_NOT_CONNECTED: tuple[tuple[type[BaseException], str], ...] = (
    (ConnectionRefusedError, "connection refused by {host} (nothing listening there?)"),
    (socket.gaierror, "the name {name} could not be resolved"),
)
#: OpenSSL's reasons when what answered the ClientHello was no TLS at all (a plain-HTTP server's
#: "400 Bad Request"): 1.1/3.0 say the first, 3.2 and later the second.
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"})


def _tls_failure(error: ssl.SSLError, host: str) -> str:
    """What went wrong in the handshake: no TLS spoken at all (an https:// base for an http://
    server), a certificate not trusted (with why: expired, self-signed, another host's), or else
    OpenSSL's reason."""
    if isinstance(error, ssl.SSLCertVerificationError):
        why = f" ({error.verify_message})" if error.verify_message else ""
        return f"the TLS handshake with {host} failed: its certificate is not trusted{why}"
    if error.reason in _NOT_TLS:
        return f"{host} does not speak TLS (a plain-HTTP server? try http:// in the FHIR base)"
    return f"the TLS handshake with {host} failed ({error.reason or type(error).__name__})"


def network_summary(exc: httpx.TransportError, request: httpx.Request | None) -> str:
    """One line for a transport failure: what happened, with which host."""
    host = host_of(request.url) if request is not None else "the server"
    name = request.url.host if request is not None else "of the server"
    if isinstance(exc, httpx.ConnectError):
        causes = _causes(exc)
        for kind, said in _NOT_CONNECTED:
            if any(isinstance(c, kind) for c in causes):
                return said.format(host=host, name=name)
        for cause in causes:
            if isinstance(cause, ssl.SSLError):
                return _tls_failure(cause, host)
        return f"could not connect to {host}"
    for kind, said in _SAID:
        if isinstance(exc, kind):
            after = _seconds(request, _PHASES.get(kind, "pool"))
            return said.format(host=host, after=after)
    return f"network error with {host} ({type(exc).__name__})"
